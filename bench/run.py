"""Benchmark: `python -m bench.run --out OUT/bench` (what `make bench` runs).

Measures, on the device it runs on (the active Keras backend's GPU, else the CPU):
- the training and flip-TTA inference throughput of the full preset's segmenter (SE-ResNeXt50 U-Net at
  128x128) and classifier (DenseNet121 at 128x128) with the trainers' own compiled steps, their analytic
  FLOPs, the achieved TFLOP/s against a matrix-multiply rate measured in the same run, and peak memory;
- the trainers' whole ``fit`` epoch against the bare steps it holds (``fit/step``), for the preset this
  device runs (``auto``: full on a GPU, cpu otherwise);
- segmentation_models' Unet('seresnext50') training step (TensorFlow, in a subprocess) as a baseline.
Prints one report and writes it to OUT/bench/bench.md and bench.json.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402

from bench import baseline, hardware, subjects, timing  # noqa: E402
from bench.report import format_report  # noqa: E402
from salt.cli import UserError, run_cli  # noqa: E402
from salt.io import atomic_path, write_json  # noqa: E402
from training import devices  # noqa: E402


def make_plan(args, gpu: bool) -> dict:
    """Warm-up/timed steps, inference size and fit epoch length for the device (options override)."""
    if args.quick:
        plan = {"warmup": 1, "steps": 1, "infer_images": 8, "infer_batch": 4, "matmul_n": 512, "matmul_iters": 2,
                "fit_steps": 2}
    elif gpu:
        plan = {"warmup": 3, "steps": 20, "infer_images": 2048, "infer_batch": 128, "matmul_n": 8192,
                "matmul_iters": 50, "fit_steps": 40}
    else:  # a full-network step at batch 64 takes seconds on 2 CPU cores
        plan = {"warmup": 1, "steps": 2, "infer_images": 32, "infer_batch": 32, "matmul_n": 2048, "matmul_iters": 5,
                "fit_steps": 8}
    for key in ("steps", "warmup"):
        if getattr(args, key) is not None:
            plan[key] = getattr(args, key)
    return plan


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="writes bench.json and bench.md here")
    p.add_argument("--quick", action="store_true", help="tiny steps and the smoke preset: a check, not a benchmark")
    p.add_argument("--skip-baseline", action="store_true", help="don't time segmentation_models")
    p.add_argument("--skip-fit", action="store_true", help="don't time the trainers' fit epoch")
    p.add_argument("--steps", type=int, help="timed training steps (default 20 on a GPU, 2 on the CPU)")
    p.add_argument("--warmup", type=int, help="untimed warm-up steps (default 3 on a GPU, 1 on the CPU)")
    args = p.parse_args(argv)
    for name in ("steps", "warmup"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            raise UserError(f"--{name} {value}: too small")

    start = time.perf_counter()
    devices.configure()
    device = hardware.describe()
    gpu = device["gpu"] is not None
    plan = make_plan(args, gpu)
    full = "smoke" if args.quick else "full"
    precision = "bfloat16" if gpu else "float32"  # the full presets' numerics on each device
    hardware.log(f"bench: {device['name']}, {device['backend']} backend, plan {json.dumps(plan)}")
    # The baseline first: on a GPU, JAX reserves most of the memory as soon as this process touches it.
    base = {"skipped": "--skip-baseline"} if args.skip_baseline or args.quick else baseline.run(
        {"batch": 64, "warmup": plan["warmup"], "steps": plan["steps"]})

    networks = []
    for make in (subjects.classifier, subjects.segmenter):  # the smaller first: the CPU / JAX peak is cumulative
        s = make(full, precision)
        hardware.reset_peak_memory(gpu)
        networks.append({"label": s.label, **s.info, **timing.measure(s, plan, gpu)})
    networks.reverse()
    fit = []
    if not args.skip_fit:
        preset = "smoke" if args.quick else ("full" if gpu else "cpu")
        for make in (subjects.segmenter, subjects.classifier):
            s = make(preset, devices.resolve_precision("auto", _preset(make, preset)))
            steps = plan["fit_steps"]
            fit.append({"label": s.label, **timing.fit_vs_step(s, steps, max(s.batch, steps * s.batch // 4))})
    keras.utils.clear_session()
    dtype = "bfloat16" if gpu else "float32"
    hardware.log(f"matmul: {dtype} {plan['matmul_n']}x{plan['matmul_n']}, {plan['matmul_iters']} iterations")
    peak = {"dtype": dtype, "n": plan["matmul_n"], "iters": plan["matmul_iters"],
            "tflops": hardware.matmul_rate(dtype, plan["matmul_n"], plan["matmul_iters"]) / 1e12}
    for m in networks:
        m["train_share_of_matmul"] = m["train_tflops"] / peak["tflops"]
    results = {"device": device, "plan": plan, "policy": devices.policy_name(precision),
               "jit": networks[0]["jit_compile"], "quick": args.quick, "networks": networks, "fit": fit,
               "matmul": peak, "baseline": base}
    report = format_report(results)
    results["wall_s"] = time.perf_counter() - start
    results["report"] = report
    print(report, flush=True)
    write_json(args.out / "bench.json", results)
    with atomic_path(args.out / "bench.md") as tmp:
        tmp.write_text(report + "\n")
    hardware.log(f"bench: {results['wall_s']:.0f} s in all -> {args.out / 'bench.json'}, {args.out / 'bench.md'}")
    return 0


def _preset(make, name: str) -> dict:
    if make is subjects.segmenter:
        from segmenter.presets import PRESETS
    else:
        from classifier.presets import PRESETS
    return PRESETS[name]


if __name__ == "__main__":
    run_cli(main)
