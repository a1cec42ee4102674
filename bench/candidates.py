"""CPU throughput of candidate segmenter networks: `python -m bench.candidates --out OUT/bench`.

Measures what chose the cpu preset's network and numerics: for every candidate network, Keras backend
(TensorFlow, JAX), precision (float32, bfloat16) and batch size, the training images/s of the trainer's
own compiled step (``segmenter.train.compile_model``) on random data, the analytic forward GFLOPs and the
achieved TFLOP/s, beside the backend's measured matmul rate in the same numerics. Each backend and
precision runs in a subprocess of its own (the backend is fixed when Keras is imported), one after the
other, so the candidates are compared side by side on the same machine in one run.

``--kernels`` also runs one bfloat16 step with oneDNN's verbose log on TensorFlow and counts which
convolution kernels ran: whether the CPU's bfloat16 instructions (avx512_core_bf16, amx) are used.
Writes OUT/candidates.json and candidates.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

TAG = "CANDIDATE "
REPO = Path(__file__).resolve().parents[1]

# name -> the segmenter preset's "network" entry (a candidate is data, as a preset is)
CANDIDATES = {
    "seresnext-quarter-64": {"encoder": "seresnext50", "encoder_args": {"layers": [2, 2, 2, 2], "width": 0.25, "groups": 8},
                             "input_size": 64, "fit": "resize", "decoder_filters": [64, 32, 16, 8, 8],
                             "salt_units": 16, "dropout": 0.2, "edge": True},
    "resnet32-64": {"encoder": "resnet", "encoder_args": {"channels": [32, 64, 128, 256], "blocks": [1, 2, 2, 2]},
                    "input_size": 64, "fit": "resize", "decoder_filters": [128, 64, 32], "head_kernel": 1,
                    "salt_units": 32, "dropout": 0.2, "edge": True},
    "resnet32-80": {"encoder": "resnet", "encoder_args": {"channels": [32, 64, 128, 256], "blocks": [1, 2, 2, 2]},
                    "input_size": 80, "fit": "resize", "decoder_filters": [128, 64, 32], "head_kernel": 1,
                    "salt_units": 32, "dropout": 0.2, "edge": True},
    "resnet16-64": {"encoder": "resnet", "encoder_args": {"channels": [16, 32, 64, 128, 256], "blocks": [1, 2, 2, 2, 2]},
                    "input_size": 64, "fit": "resize", "decoder_filters": [128, 64, 32, 16], "head_kernel": 1,
                    "salt_units": 32, "dropout": 0.2, "edge": True},
    # EfficientNet-Lite0 (ImageNet weights where the preset asks; the step costs the same either way)
    "lite0-64": {"encoder": "efficientnet_lite0", "input_size": 64, "fit": "resize",
                 "decoder_filters": [64, 32, 32, 16, 16], "head_kernel": 1, "salt_units": 32, "dropout": 0.2,
                 "edge": True},
    "lite0-96": {"encoder": "efficientnet_lite0", "input_size": 96, "fit": "resize",
                 "decoder_filters": [64, 32, 32, 16, 16], "head_kernel": 1, "salt_units": 32, "dropout": 0.2,
                 "edge": True},
    "lite0-128": {"encoder": "efficientnet_lite0", "input_size": 128, "fit": "pad",
                  "decoder_filters": [64, 32, 32, 16, 16], "head_kernel": 1, "salt_units": 32, "dropout": 0.2,
                  "edge": True},
    "resnet16-64-lite": {"encoder": "resnet", "encoder_args": {"channels": [16, 32, 64, 128, 256], "blocks": [1, 1, 1, 1, 1]},
                         "input_size": 64, "fit": "resize", "decoder_filters": [64, 32, 32, 16], "head_kernel": 1,
                         "salt_units": 32, "dropout": 0.2, "edge": True},
    "resnet16-48-lite": {"encoder": "resnet", "encoder_args": {"channels": [16, 32, 64, 128, 256], "blocks": [1, 1, 1, 1, 1]},
                         "input_size": 48, "fit": "resize", "decoder_filters": [64, 32, 32, 16], "head_kernel": 1,
                         "salt_units": 32, "dropout": 0.2, "edge": True},
    "resnet16-80-lite": {"encoder": "resnet", "encoder_args": {"channels": [16, 32, 64, 128, 256], "blocks": [1, 1, 1, 1, 1]},
                         "input_size": 80, "fit": "resize", "decoder_filters": [64, 32, 32, 16], "head_kernel": 1,
                         "salt_units": 32, "dropout": 0.2, "edge": True},
    "resnet16-112": {"encoder": "resnet", "encoder_args": {"channels": [16, 32, 64, 128, 256], "blocks": [1, 2, 2, 2, 1]},
                     "input_size": 112, "fit": "pad", "decoder_filters": [128, 64, 32, 16], "head_kernel": 1,
                     "salt_units": 32, "dropout": 0.2, "edge": True},
    "resnet16-112-slim": {"encoder": "resnet", "encoder_args": {"channels": [16, 32, 48, 96, 128], "blocks": [1, 1, 2, 2, 1]},
                          "input_size": 112, "fit": "pad", "decoder_filters": [64, 32, 16, 16], "head_kernel": 1,
                          "salt_units": 32, "dropout": 0.2, "edge": True},
    "resnet32-stem2-112": {"encoder": "resnet", "encoder_args": {"channels": [32, 64, 128, 256], "blocks": [2, 2, 2, 2],
                                                                "stem_stride": 2},
                           "input_size": 112, "fit": "pad", "decoder_filters": [128, 64, 32, 16], "head_kernel": 1,
                           "salt_units": 32, "dropout": 0.2, "edge": True},
}


def child(spec: dict) -> list[dict]:
    """In the subprocess: time every candidate and batch with this process's backend and precision."""
    import numpy as np

    from bench.flops import forward_flops
    from bench.hardware import matmul_rate
    from bench.subjects import fake_data
    from segmenter import train
    from segmenter.presets import PRESETS
    from training import devices
    from training.batches import to_input

    devices.configure()
    precision = spec["precision"]
    devices.new_session(0, precision)
    rate = matmul_rate(precision, 2048, 5) / 1e12
    rows = []
    for name in spec["candidates"]:
        for batch in spec["batches"]:
            preset = {**PRESETS["cpu"], "network": CANDIDATES[name], "batch_size": batch}
            devices.new_session(0, precision)
            model = train.build_model(preset, None)
            train.compile_model(model, preset, preset["rounds"][0])
            images, masks = fake_data(batch)
            x, y = to_input(images), train.make_targets(preset["network"]["edge"])(masks)
            start = time.perf_counter()
            model.train_on_batch(x, y)
            first = time.perf_counter() - start
            times = []
            for _ in range(spec["steps"]):
                start = time.perf_counter()
                model.train_on_batch(x, y)
                times.append(time.perf_counter() - start)
            step = float(np.median(times))
            flops = forward_flops(model)
            rows.append({"candidate": name, "backend": devices.backend(), "precision": precision, "batch": batch,
                         "gflops": flops / 1e9, "params_m": model.count_params() / 1e6, "first_step_s": first,
                         "step_s": step, "images_per_s": batch / step,
                         "tflops": 3 * flops * batch / step / 1e12, "matmul_tflops": rate})
            print(f"{name} {devices.backend()} {precision} batch {batch}: {batch / step:.1f} images/s",
                  file=sys.stderr, flush=True)
    return rows


def run_child(backend: str, precision: str, args) -> list[dict]:
    spec = {"precision": precision, "candidates": args.candidates, "batches": args.batches, "steps": args.steps}
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, "-m", "bench.candidates", "--child", json.dumps(spec)], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, text=True, timeout=7200)
    rows = [json.loads(line[len(TAG):]) for line in proc.stdout.splitlines() if line.startswith(TAG)]
    if not rows:
        print(f"{backend} {precision}: the subprocess failed (exit {proc.returncode})", file=sys.stderr)
    return rows


def onednn_kernels(candidate: str) -> dict:
    """One bfloat16 training step on TensorFlow with ONEDNN_VERBOSE=1: convolution kernels by name."""
    spec = {"precision": "bfloat16", "candidates": [candidate], "batches": [8], "steps": 1}
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", ONEDNN_VERBOSE="1",
               PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "bench.candidates", "--child", json.dumps(spec)], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=3600)
    kernels = Counter()
    for line in proc.stdout.splitlines():
        parts = line.split(",")
        if line.startswith("onednn_verbose") and "exec" in parts and "convolution" in parts:
            kernels[parts[parts.index("convolution") + 1]] += 1
    return dict(kernels.most_common())


def table(rows: list[dict]) -> str:
    lines = ["| candidate | backend | precision | batch | GFLOPs/image | params | first step s | step s | "
             "**training images/s** | TFLOP/s | share of matmul |", "|---" * 11 + "|"]
    for r in sorted(rows, key=lambda r: (r["candidate"], r["backend"], r["precision"], r["batch"])):
        lines.append(f"| {r['candidate']} | {r['backend']} | {r['precision']} | {r['batch']} | {r['gflops']:.2f} | "
                     f"{r['params_m']:.2f} M | {r['first_step_s']:.1f} | {r['step_s']:.3f} | "
                     f"**{r['images_per_s']:.1f}** | {r['tflops']:.3f} | {100 * r['tflops'] / r['matmul_tflops']:.0f}% "
                     f"of {r['matmul_tflops']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.candidates", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    p.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--batches", nargs="+", type=int, default=[32])
    p.add_argument("--steps", type=int, default=5, help="timed steps (the median counts)")
    p.add_argument("--kernels", action="store_true", help="count the oneDNN convolution kernels of a bf16 step")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        for row in child(json.loads(args.child)):
            print(TAG + json.dumps(row), flush=True)
        return 0
    from bench.hardware import cpu_model
    from training.devices import cores
    from salt.io import atomic_path, write_json

    rows = [r for b in args.backends for pr in args.precisions for r in run_child(b, pr, args)]
    result = {"cpu": cpu_model(), "cores": cores(), "rows": rows}
    md = f"## Candidate segmenter networks on {result['cpu']} ({result['cores']} cores)\n\n" + table(rows)
    if args.kernels:
        result["onednn_bf16_kernels"] = kernels = onednn_kernels(args.candidates[0])
        md += (f"\n\noneDNN convolution kernels of one bfloat16 training step of {args.candidates[0]} (TensorFlow): "
               + ", ".join(f"{k} x{v}" for k, v in kernels.items()))
    print(md, flush=True)
    write_json(args.out / "candidates.json", result)
    with atomic_path(args.out / "candidates.md") as tmp:
        tmp.write_text(md + "\n")
    return 0


if __name__ == "__main__":
    from salt.cli import run_cli

    run_cli(main)
