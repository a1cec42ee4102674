"""Benchmark: `python -m bench.run --out OUT/bench` (what `make bench` runs).

Measures, on the device it runs on (the active Keras backend's GPU, else the CPU), the training and
flip-TTA inference throughput of the full preset's segmenter (SE-ResNeXt50 U-Net at 128x128) and
classifier (DenseNet121 at 128x128) with the trainers' own compiled training steps on a fixed in-memory
batch, their analytic FLOPs, the achieved TFLOP/s against a matrix-multiply rate measured in the same run,
peak memory, and the training step of segmentation_models' Unet('seresnext50') (TensorFlow, in a
subprocess) as a baseline. Prints one table and writes it to OUT/bench/bench.md and bench.json.

On a GPU the networks run in mixed_bfloat16 (as the full presets do); both are compiled as their trainers
compile them (XLA as salt.kfold.jit_compile() decides: everywhere but TensorFlow on a CPU). On the CPU
there are only 1 or 2 timed steps (a step of the full network at batch 64 takes minutes there with
TensorFlow: its CPU gradient of grouped convolutions is slow); the table says how many.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from salt import kfold  # noqa: E402
from salt.batches import to_input  # noqa: E402
from salt.cli import UserError, run_cli  # noqa: E402
from salt.io import atomic_path, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMG = 101
BASELINE_TAG = "BASELINE_RESULT "
SLOW_FIRST_STEP_S = 60.0
FLOP_NOTE = ("FLOPs: multiply-adds x2 of Conv2D / Conv2DTranspose / DepthwiseConv2D / SeparableConv2D / Dense "
             "layers, counted from the model's layer shapes; elementwise ops (BatchNorm, activations, SE/scSE "
             "scaling, adds, pooling, resizing) are ignored; training ~= 3x forward.")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- device


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "CPU"


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gpu_name() -> str | None:
    """The name of the active backend's first GPU, or None when it runs on the CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return d.device_kind if d.platform == "gpu" else None
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    return None


def reset_peak_memory(gpu: bool) -> None:
    """Resets the GPU peak-memory counter where the backend can (torch, TensorFlow; not JAX, not the CPU)."""
    if not gpu:
        return
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.cuda.reset_peak_memory_stats()
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")


def peak_memory(gpu: bool) -> int | None:
    """Peak bytes: the GPU's peak in use, or the process's peak resident set size on the CPU."""
    if not gpu:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return int(jax.devices()[0].memory_stats()["peak_bytes_in_use"])
        if backend == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated())
        if backend == "tensorflow":
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    except Exception as e:  # noqa: BLE001  (a missing statistic must not lose the benchmark)
        log(f"note: no GPU memory statistics ({type(e).__name__}: {e})")
    return None


def sync(x) -> None:
    """Waits until x (and all the work queued before it) is computed."""
    backend = keras.backend.backend()
    if backend == "jax":
        x.block_until_ready()
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        ops.convert_to_numpy(x[:1, :1])


def matmul_rate(dtype: str, n: int, iters: int) -> float:
    """Measured FLOP/s of keras.ops.matmul of two n x n matrices of `dtype` (after one warm-up)."""
    a = ops.cast(keras.random.normal((n, n), seed=1), dtype)
    b = ops.cast(keras.random.normal((n, n), seed=2), dtype)
    sync(ops.matmul(a, b))
    start = time.perf_counter()
    for _ in range(iters):
        c = ops.matmul(a, b)
    sync(c)
    return 2.0 * n ** 3 * iters / (time.perf_counter() - start)


# ---------------------------------------------------------------- FLOPs


def _calls(layer) -> list[tuple[tuple, tuple]]:
    """(input shape, output shape) of every call of `layer` in its model's graph."""
    out = []
    for node in getattr(layer, "_inbound_nodes", []):
        if node.input_tensors and node.output_tensors:
            out.append((tuple(node.input_tensors[0].shape), tuple(node.output_tensors[0].shape)))
    return out


def layer_flops(layer, shape_in: tuple, shape_out: tuple) -> int:
    """Forward FLOPs (2 x multiply-adds) of one call of a layer for ONE example; 0 for elementwise layers."""
    L = keras.layers

    def size(shape):
        return int(np.prod([int(d) for d in shape]))

    if isinstance(layer, L.Conv2DTranspose):  # every input pixel scatters a Kh x Kw x Cout patch
        kh, kw, cout, cin = layer.kernel.shape
        return 2 * size(shape_in[1:-1]) * kh * kw * cin * cout
    if isinstance(layer, L.SeparableConv2D):
        return 2 * size(shape_out[1:-1]) * (size(layer.depthwise_kernel.shape) + size(layer.pointwise_kernel.shape))
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv2D)):
        # kernel (Kh, Kw, Cin/groups, Cout), depthwise (Kh, Kw, Cin, multiplier): 2*Hout*Wout*prod(kernel)
        return 2 * size(shape_out[1:-1]) * size(layer.kernel.shape)
    if isinstance(layer, L.Dense):  # applied to every position of the leading axes
        return 2 * size(shape_in[1:-1]) * size(layer.kernel.shape)
    return 0


def forward_flops(model) -> int:
    """Forward FLOPs per example of a model, walking its layers and recursing into nested models."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            # a nested model: its inner graph once per call of it in the outer graph
            total += forward_flops(layer) * max(1, len(_calls(layer)))
            continue
        for shape_in, shape_out in _calls(layer):
            total += layer_flops(layer, shape_in, shape_out)
    return total


# ---------------------------------------------------------------- timing


def time_steps(step, warmup: int, steps: int | None, label: str) -> dict:
    """Runs `step` warmup + steps times; returns the first (compiling) step's and the timed steps' seconds.

    steps None: 2 timed steps, or 1 when the first step took over SLOW_FIRST_STEP_S (the CPU).
    """
    def run(kind: str, n: int) -> list:
        seconds = []
        for i in range(n):
            start = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - start)
            log(f"{label}: {kind} step {i + 1}/{n} {seconds[-1]:.3f} s")
        return seconds

    times = run("warm-up", warmup)
    if steps is None:
        steps = 1 if times and times[0] > SLOW_FIRST_STEP_S else 2
    timed = run("timed", steps)
    return {"first_step_s": (times or timed)[0], "step_s": float(np.mean(timed)), "step_times_s": timed,
            "warmup_steps": warmup, "timed_steps": steps}


def fake_data(n: int, seed: int = 0):
    """Random uint8 images (n,101,101) and masks (n,101,101) bool of salt blobs."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, IMG, IMG), dtype=np.uint8)
    yy, xx = np.mgrid[:IMG, :IMG]
    cy, cx, r = rng.uniform(0, IMG, (3, n, 1, 1))
    masks = (yy - cy) ** 2 + (xx - cx) ** 2 < (r * 0.6) ** 2
    return images, masks


def measure(model, targets, batch: int, plan: dict, gpu: bool, label: str, predict) -> dict:
    """Training throughput on a fixed batch, then flip-TTA inference throughput; + FLOPs and peak memory."""
    images, masks = fake_data(batch)
    x, y = to_input(images), targets(masks)
    res = {"params": int(model.count_params()), "batch": batch, "jit_compile": bool(model.jit_compile)}
    res.update(time_steps(lambda: model.train_on_batch(x, y), plan["warmup"], plan["steps"], f"{label} train"))
    res["train_images_per_s"] = batch / res["step_s"]
    n, bs = plan["infer_images"], plan["infer_batch"]
    test, _ = fake_data(n, seed=1)
    start = time.perf_counter()
    predict(model, test[:bs], tta=False, batch_size=bs)  # compiles the predict function
    log(f"{label} inference: warm-up {time.perf_counter() - start:.3f} s")
    start = time.perf_counter()
    predict(model, test, tta=True, batch_size=bs)
    res["infer_s"] = time.perf_counter() - start
    res["infer_images"], res["infer_batch"] = n, bs
    res["infer_images_per_s"] = n / res["infer_s"]
    log(f"{label} inference: {n} images with flip TTA {res['infer_s']:.3f} s")
    res["forward_flops"] = forward_flops(model)
    res["train_tflops"] = 3 * res["forward_flops"] * res["train_images_per_s"] / 1e12
    res["infer_tflops"] = 2 * res["forward_flops"] * res["infer_images_per_s"] / 1e12  # 2 passes per image
    res["peak_memory_bytes"] = peak_memory(gpu)
    return res


def bench_segmenter(plan: dict, gpu: bool, policy: str) -> dict:
    from segmenter.predict import predict_probs
    from segmenter.presets import PRESETS
    from segmenter.train import compile_model, make_targets
    from segmenter.unet import build_unet

    preset = PRESETS["full"]
    log(f"segmenter: building the full preset's network {json.dumps(preset['network'])}")
    kfold.new_session(0, mixed_precision=policy == "mixed_bfloat16")
    reset_peak_memory(gpu)
    model = build_unet(**preset["network"], encoder_weights=None)
    compile_model(model, preset, preset["rounds"][0], steps=100)
    res = measure(model, make_targets(preset["network"]["edge"]), plan["batch"], plan, gpu, "segmenter",
                  predict_probs)
    res["network"] = preset["network"]
    res["loss"] = preset["rounds"][0]["loss"]
    return res


def bench_classifier(plan: dict, gpu: bool, policy: str) -> dict:
    from classifier.model import build_classifier
    from classifier.predict import predict_p_empty
    from classifier.presets import PRESETS

    preset = PRESETS["full"]
    stage = preset["stages"][-1]  # fine-tuning: the whole network trains
    log(f"classifier: building densenet121 at {preset['input_size']}")
    kfold.new_session(0, mixed_precision=policy == "mixed_bfloat16")
    reset_peak_memory(gpu)
    model, _ = build_classifier("densenet121", preset["input_size"], "none", preset["dropout"])
    model.compile(optimizer=keras.optimizers.Adam(stage["lr"]),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),
                           keras.metrics.AUC(name="auc", from_logits=True)],
                  jit_compile=kfold.jit_compile())

    def targets(masks):
        return (~masks.reshape(len(masks), -1).any(1))[:, None].astype(np.float32)

    res = measure(model, targets, plan["batch"], plan, gpu, "classifier", predict_p_empty)
    res["input_size"] = preset["input_size"]
    return res


# ---------------------------------------------------------------- segmentation_models baseline


def sm_baseline_child(plan: dict) -> dict:
    """Runs in the subprocess (KERAS_BACKEND=tensorflow, SM_FRAMEWORK=tf.keras): times sm.Unet's train step.

    On a GPU in mixed_bfloat16 like ours; if segmentation_models fails under it, again in float32.
    """
    kfold.configure_threads()
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    policies = ["mixed_bfloat16", "float32"] if gpu else ["float32"]
    for i, policy in enumerate(policies):
        try:
            return _time_sm_unet(plan, policy, gpu)
        except Exception as e:  # noqa: BLE001
            if i == len(policies) - 1:
                raise
            log(f"segmentation_models: failed in {policy} ({type(e).__name__}: {str(e)[:200]}); again in float32")
            keras.utils.clear_session()


def _time_sm_unet(plan: dict, policy: str, gpu: bool) -> dict:
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy(policy)
    import segmentation_models as sm

    batch, warmup, steps = plan["batch"], plan["warmup"], plan["steps"]
    log(f"segmentation_models: building Unet('seresnext50') ({policy}, TensorFlow on {'GPU' if gpu else 'CPU'})")
    model = sm.Unet("seresnext50", encoder_weights=None, input_shape=(128, 128, 3), classes=1)
    model.compile("adam", "binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((batch, 128, 128, 3), dtype=np.float32)
    y = (rng.random((batch, 128, 128, 1)) < 0.3).astype(np.float32)
    res = time_steps(lambda: model.train_on_batch(x, y), warmup, steps, "segmentation_models train")
    return {**res, "params": int(model.count_params()), "policy": policy, "device": "GPU" if gpu else "CPU",
            "batch": batch}


def run_baseline(args) -> dict:
    """segmentation_models' training step timed in a TensorFlow subprocess; {"skipped": reason} if it can't."""
    if importlib.util.find_spec("tensorflow") is None:
        return {"skipped": "no TensorFlow here"}
    if importlib.util.find_spec("segmentation_models") is None:
        return {"skipped": "segmentation_models is not installed"}
    cmd = [sys.executable, "-m", "bench.run", "--sm-baseline-child"]
    for flag, value in (("--batch-size", args.batch_size), ("--steps", args.steps), ("--warmup", args.warmup)):
        if value is not None:
            cmd += [flag, str(value)]
    if args.quick:
        cmd.append("--quick")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", SM_FRAMEWORK="tf.keras", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    log("segmentation_models: timing the baseline in a TensorFlow subprocess (its first step builds the graph)")
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        return {"skipped": "the baseline subprocess took over an hour"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(BASELINE_TAG):
            return json.loads(line[len(BASELINE_TAG):])
    return {"skipped": f"the baseline subprocess failed (exit {proc.returncode}; its messages are above)"}


# ---------------------------------------------------------------- plan and report


def make_plan(args, gpu: bool) -> dict:
    """Batch, warm-up/timed steps and inference size for the device (options override)."""
    if args.quick:
        plan = {"batch": 4, "warmup": 1, "steps": 1, "infer_images": 8, "infer_batch": 4, "matmul_n": 512,
                "matmul_iters": 2}
    elif gpu:
        plan = {"batch": 64, "warmup": 3, "steps": 20, "infer_images": 2048, "infer_batch": 128,
                "matmul_n": 8192, "matmul_iters": 50}
    else:  # a full-network step at batch 64 takes minutes on 2 CPU cores: 1 or 2 timed steps (time_steps)
        plan = {"batch": 64, "warmup": 1, "steps": None, "infer_images": 32, "infer_batch": 32,
                "matmul_n": 2048, "matmul_iters": 5}
    if args.batch_size is not None:
        plan["batch"] = args.batch_size
        plan["infer_batch"] = min(plan["infer_batch"], 2 * args.batch_size)
        bs = plan["infer_batch"]  # whole batches only: a smaller last batch would compile again (JAX)
        plan["infer_images"] = max(1, round(plan["infer_images"] / bs)) * bs
    if args.steps is not None:
        plan["steps"] = args.steps
    if args.warmup is not None:
        plan["warmup"] = args.warmup
    return plan


def _rate(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _gib(n) -> str:
    return "n/a" if n is None else f"{n / 2 ** 30:.2f} GiB"


def format_report(r: dict) -> str:
    """The markdown table (and the lines under it) for the results."""
    seg, cls, dev, peak = r["segmenter"], r["classifier"], r["device"], r["matmul"]
    net = seg["network"]

    def row(name, f):
        return f"| {name} | {f(seg)} | {f(cls)} |"

    def share(tflops):
        return f"{100 * tflops / peak['tflops']:.1f}%"

    mem = ("GPU peak bytes in use" if dev["gpu"] else "process peak RSS") + (
        "" if dev["gpu"] and dev["backend"] in ("torch", "tensorflow") else "; cumulative, classifier first")
    lines = [
        f"## Benchmark on {dev['name']}: {dev['backend']} backend, {r['policy']}, "
        f"{'XLA (jit_compile)' if r['jit'] else 'no XLA'}",
        "",
        "| | segmenter: full preset (SE-ResNeXt50 U-Net) | classifier: full preset (DenseNet121) |",
        "|---|---|---|",
        f"| input | (N,101,101,1), {'reflect-padded' if net['fit'] == 'pad' else 'resized'} to "
        f"{net['input_size']}x{net['input_size']} inside | (N,101,101,1), resized to "
        f"{cls['input_size']}x{cls['input_size']} inside |",
        row("parameters", lambda m: f"{m['params'] / 1e6:.1f} M"),
        row("forward GFLOPs / image", lambda m: f"{m['forward_flops'] / 1e9:.2f}"),
        row("training: batch, steps",
            lambda m: f"{m['batch']}, {m['warmup_steps']} warm-up + {m['timed_steps']} timed"),
        row("first step (compiles) s", lambda m: f"{m['first_step_s']:.2f}"),
        row("training step s (mean of timed)", lambda m: f"{m['step_s']:.3f}"),
        row("**training images/s**", lambda m: f"**{_rate(m['train_images_per_s'])}**"),
        row("training TFLOP/s (3x forward)", lambda m: f"{m['train_tflops']:.3f}"),
        row(f"share of measured {peak['dtype']} matmul", lambda m: share(m["train_tflops"])),
        row("**inference images/s** (flip TTA)", lambda m: f"**{_rate(m['infer_images_per_s'])}**"),
        row("inference: images, batch", lambda m: f"{m['infer_images']}, {m['infer_batch']} (2 passes/image)"),
        row("inference TFLOP/s", lambda m: f"{m['infer_tflops']:.3f}"),
        row(f"peak memory: {mem}", lambda m: _gib(m["peak_memory_bytes"])),
        "",
        f"Measured {peak['dtype']} matmul ({peak['n']}x{peak['n']}, {peak['iters']} iterations, keras.ops.matmul): "
        f"{peak['tflops']:.3f} TFLOP/s.",
        FLOP_NOTE,
    ]
    base = r["baseline"]
    if "skipped" in base:
        lines.append(f"segmentation_models: skipped ({base['skipped']})")
    else:
        lines.append(f"segmentation_models Unet('seresnext50'): step {base['step_s']:.3f} s, ours "
                     f"{seg['step_s']:.3f} s: {base['step_s'] / seg['step_s']:.2f}x "
                     f"(theirs: {base['params'] / 1e6:.1f} M parameters, TensorFlow on {base['device']}, "
                     f"{base['policy']}, (N,128,128,3) input, 1 output, adam + binary_crossentropy, batch "
                     f"{base['batch']}, {base['warmup_steps']} warm-up + {base['timed_steps']} timed; ours: "
                     f"mask + salt + edge heads, the full preset's compiled loss)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="writes bench.json and bench.md here")
    p.add_argument("--quick", action="store_true", help="tiny batch and steps: a smoke check, not a benchmark")
    p.add_argument("--skip-baseline", action="store_true", help="don't time segmentation_models")
    p.add_argument("--batch-size", type=int, help="training batch (default 64; 4 with --quick)")
    p.add_argument("--steps", type=int, help="timed training steps (default 20 on a GPU; on the CPU 2, or 1 "
                                             f"when the first step takes over {SLOW_FIRST_STEP_S:.0f} s)")
    p.add_argument("--warmup", type=int, help="untimed warm-up steps (default 3 on a GPU, 1 on the CPU)")
    p.add_argument("--sm-baseline-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch_size", "steps", "warmup"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            raise UserError(f"--{name.replace('_', '-')} {value}: too small")

    if args.sm_baseline_child:
        import tensorflow as tf

        res = sm_baseline_child(make_plan(args, bool(tf.config.list_physical_devices("GPU"))))
        print(BASELINE_TAG + json.dumps(res), flush=True)
        return 0

    start = time.perf_counter()
    # The baseline first: on a GPU, JAX reserves most of the memory as soon as this process touches it.
    baseline = {"skipped": "--skip-baseline"} if args.skip_baseline else run_baseline(args)

    kfold.configure_threads()
    name = gpu_name()
    gpu = name is not None
    device = {"backend": keras.backend.backend(), "gpu": name, "cpu": cpu_model(), "cores": cpu_cores()}
    device["name"] = name or f"{device['cpu']} ({device['cores']} cores)"
    policy = "mixed_bfloat16" if gpu else "float32"  # the full presets' mixed precision, on a GPU only
    if gpu and device["backend"] != "jax":
            log(f"note: on a GPU the benchmark is meant for KERAS_BACKEND=jax (this is {device['backend']})")
    plan = make_plan(args, gpu)
    log(f"bench: {device['name']}, {device['backend']} backend, plan {json.dumps(plan)}")

    classifier = bench_classifier(plan, gpu, policy)  # the smaller one first: the CPU / JAX peak is cumulative
    segmenter = bench_segmenter(plan, gpu, policy)
    keras.utils.clear_session()
    dtype = "bfloat16" if gpu else "float32"
    log(f"matmul: {dtype} {plan['matmul_n']}x{plan['matmul_n']}, {plan['matmul_iters']} iterations")
    peak = {"dtype": dtype, "n": plan["matmul_n"], "iters": plan["matmul_iters"],
            "tflops": matmul_rate(dtype, plan["matmul_n"], plan["matmul_iters"]) / 1e12}
    results = {"device": device, "plan": plan, "policy": policy,
               "jit": segmenter["jit_compile"],
               "quick": args.quick, "segmenter": segmenter, "classifier": classifier, "matmul": peak,
               "baseline": baseline, "flop_note": FLOP_NOTE}
    for m in (segmenter, classifier):
        m["train_share_of_matmul"] = m["train_tflops"] / peak["tflops"]
    report = format_report(results)
    results["wall_s"] = time.perf_counter() - start
    results["report"] = report
    print(report, flush=True)
    write_json(args.out / "bench.json", results)
    with atomic_path(args.out / "bench.md") as tmp:
        tmp.write_text(report + "\n")
    log(f"bench: {results['wall_s']:.0f} s in all -> {args.out / 'bench.json'}, {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
