"""The prediction step side by side: `python -m bench.predict_step --out OUT/bench-predict` (what `make
bench-predict` runs before the streamed steps).

One process per TensorFlow thread count (``--threads``) builds the preset's U-Net (random weights: the
speed does not depend on them) and predicts the same ``--images`` synthetic images with horizontal-flip
test-time augmentation, at every batch size of ``--batch-sizes``, three ways:

- ``two calls``: a ``model.predict`` for the images and one for their mirror images (a strided view),
  every output converted, the sigmoid, mirroring back and the mean in numpy (how ``training.predict``
  predicted before);
- ``one step``: ``training.predict.predict_outputs``, both views in one batch and the sigmoid, mirroring
  and mean in the same compiled step (``training.predict.predictor``);
- ``one step, XLA``: the same with ``jit_compile=True`` (TensorFlow only).

Each is timed twice after a warm-up call that traces it; the faster run counts. It prints images/s (each
image predicted with both views) and writes them to OUT/bench-predict/step.json. docs/predict-bench.md has
the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from salt.cli import UserError, run_cli

REPO = Path(__file__).resolve().parents[1]


def two_calls(model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The mask probabilities as two ``predict`` calls and numpy compute them: the baseline."""
    from training.batches import to_input

    x = to_input(images)
    total = 0.0
    for i, view in enumerate([x, x[:, :, ::-1]]):  # the mirror view as a strided view, as it was
        out = {k: np.asarray(v, np.float32) for k, v in model.predict(view, batch_size=batch_size, verbose=0).items()}
        p = 1.0 / (1.0 + np.exp(-np.clip(out["mask"][..., 0], -60, 60)))
        total = total + (p[:, :, ::-1] if i else p)
    return total / 2


def child(preset: str, n: int, batch_sizes: list[int], threads: int) -> list[dict]:
    """Every variant at every batch size in this process, with ``threads`` intra-op threads (0: all)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
    from salt.synthetic import make_pair
    from segmenter.presets import PRESETS
    from segmenter.unet import build_unet
    from training.predict import predict_outputs, predictor

    rng = np.random.default_rng(0)
    images = np.stack([make_pair(rng, ["empty", "blob", "bottom"][k % 3])[0] for k in range(n)])
    keras.utils.set_random_seed(0)
    model = build_unet(**PRESETS[preset]["network"], encoder_weights=None)
    variants = {"two calls": lambda bs: two_calls(model, images, bs),
                "one step": lambda bs: predict_outputs(model, images, True, bs, names={"mask"})["mask"]}
    if keras.backend.backend() == "tensorflow":
        from training.batches import to_input

        one = predictor(model, {"mask"}, True)
        xla = keras.Model(one.inputs, one.outputs)  # the same graph, a model of its own compiled with XLA
        xla.jit_compile = True

        def one_step_xla(bs):
            x = to_input(images)
            x = np.concatenate([x, np.zeros((-n % bs,) + x.shape[1:], x.dtype)])
            out = xla.predict(x, batch_size=bs, verbose=0)
            return np.asarray(out["mask"] if isinstance(out, dict) else out, np.float32)[:n]
        variants["one step, XLA"] = one_step_xla
    rows = []
    for bs in batch_sizes:
        reference = None
        for name, run in variants.items():
            run(bs)  # traces the step
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                prob = run(bs)
                times.append(time.perf_counter() - t0)
            reference = prob if reference is None else reference
            rows.append({"variant": name, "batch_size": bs, "threads": threads, "images_per_s": round(n / min(times), 1),
                         "max_diff": float(np.abs(prob - reference).max())})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.predict_step", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/bench-predict"))
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--batch-sizes", default="32,64,128,256")
    ap.add_argument("--threads", default="1,2", help="TensorFlow intra-op thread counts, one process each (0: all)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        raise UserError(f"--batch-sizes {args.batch_sizes} / --threads {args.threads}: comma-separated integers")
    if args.child:
        child(args.preset, args.images, sizes, threads[0])
        return 0
    rows = []
    for t in threads:
        r = subprocess.run([sys.executable, "-m", "bench.predict_step", "--child", "--preset", args.preset,
                            "--images", str(args.images), "--batch-sizes", args.batch_sizes, "--threads", str(t)],
                           cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if r.returncode != 0:
            raise UserError(f"bench.predict_step --threads {t} failed: {(r.stderr.strip().splitlines() or [''])[-1]}")
        rows += [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    from bench.stream import machine
    from salt.io import write_json

    print(f"{'variant':<14} {'batch':>5} {'threads':>7} {'images/s':>9}  ({machine()}, {args.images} images, "
          f"flip TTA, the {args.preset} preset's U-Net)")
    for row in rows:
        print(f"{row['variant']:<14} {row['batch_size']:>5} {row['threads'] or 'all':>7} {row['images_per_s']:>9.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "step.json", {"machine": machine(), "images": args.images, "preset": args.preset,
                                        "rows": rows})
    return 0


if __name__ == "__main__":
    run_cli(main)
