"""Timing a network: its bare training step, its flip-TTA inference, and a whole epoch of the trainer's
own ``training.stage.fit_stage`` (batches, callbacks, validation score, checkpoint) against the bare
steps it contains."""
from __future__ import annotations

import tempfile
import time

import keras
import numpy as np

from bench.flops import forward_flops
from bench.hardware import log, peak_memory
from bench.subjects import Subject, fake_data
from training import stage
from training.batches import to_input
from training.predict import predict_outputs


def time_steps(step, warmup: int, steps: int, label: str) -> dict:
    """Runs `step` warmup + steps times; the first (compiling) step's and the timed steps' seconds."""
    def run(kind: str, n: int) -> list:
        seconds = []
        for i in range(n):
            start = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - start)
            log(f"{label}: {kind} step {i + 1}/{n} {seconds[-1]:.3f} s")
        return seconds

    times = run("warm-up", warmup)
    timed = run("timed", steps)
    return {"first_step_s": (times or timed)[0], "step_s": float(np.mean(timed)), "step_times_s": timed,
            "warmup_steps": warmup, "timed_steps": steps}


def measure(s: Subject, plan: dict, gpu: bool) -> dict:
    """Training throughput on a fixed batch, then flip-TTA inference throughput; + FLOPs and peak memory."""
    images, masks = fake_data(s.batch)
    x, y = to_input(images), s.targets(masks)
    res = {"params": int(s.model.count_params()), "batch": s.batch, "jit_compile": bool(s.model.jit_compile)}
    res.update(time_steps(lambda: s.model.train_on_batch(x, y), plan["warmup"], plan["steps"], f"{s.label} train"))
    res["train_images_per_s"] = s.batch / res["step_s"]
    n, bs = plan["infer_images"], plan["infer_batch"]
    test, _ = fake_data(n, seed=1)
    start = time.perf_counter()
    predict_outputs(s.model, test[:bs], tta=False, batch_size=bs)  # compiles the predict function
    log(f"{s.label} inference: warm-up {time.perf_counter() - start:.3f} s")
    start = time.perf_counter()
    predict_outputs(s.model, test, tta=True, batch_size=bs)
    res["infer_s"] = time.perf_counter() - start
    res["infer_images"], res["infer_batch"] = n, bs
    res["infer_images_per_s"] = n / res["infer_s"]
    log(f"{s.label} inference: {n} images with flip TTA {res['infer_s']:.3f} s")
    res["forward_flops"] = forward_flops(s.model)
    res["train_tflops"] = 3 * res["forward_flops"] * res["train_images_per_s"] / 1e12
    res["infer_tflops"] = 2 * res["forward_flops"] * res["infer_images_per_s"] / 1e12  # 2 passes per image
    res["peak_memory_bytes"] = peak_memory(gpu)
    return res


class _EpochStarts(keras.callbacks.Callback):
    """Wall time at the start of every epoch: the difference of two is a whole epoch, everything included."""

    def __init__(self):
        super().__init__()
        self.starts = []

    def on_epoch_begin(self, epoch, logs=None):
        self.starts.append(time.perf_counter())


def fit_vs_step(s: Subject, steps: int, val_images: int, epochs: int = 3) -> dict:
    """Seconds of one whole epoch of the trainer's ``stage.fit_stage`` (``steps`` batches, the validation
    score on ``val_images`` images, the learning-rate schedule, the checkpoint, the CSV log) and of the same
    number of bare training steps on one fixed batch; their ratio is what the pipeline around the step costs.

    The epoch measured is the second of ``epochs``: the first compiles, and its checkpoint is written as in
    training (the resume state about once a minute, best.keras when the score improves)."""
    images, masks = fake_data(steps * s.batch + val_images, seed=2)
    n = steps * s.batch
    data, callbacks = s.fit_parts(images[:n], masks[:n], images[n:], masks[n:], epochs)
    starts = _EpochStarts()
    with tempfile.TemporaryDirectory() as tmp:
        stage.fit_stage(s.model, tmp, data, epochs, s.monitor, s.mode, [starts, *callbacks], verbose=0)
    epoch_s = starts.starts[2] - starts.starts[1]
    x, y = to_input(images[:s.batch]), s.targets(masks[:s.batch])
    bare = time_steps(lambda: s.model.train_on_batch(x, y), 1, steps, f"{s.label} bare step")
    log(f"{s.label}: fit epoch {epoch_s:.3f} s, {steps} bare steps {steps * bare['step_s']:.3f} s")
    return {"steps": steps, "batch": s.batch, "val_images": val_images, "epoch_s": epoch_s,
            "step_s": bare["step_s"], "fit_over_step": epoch_s / (steps * bare["step_s"])}
