"""A GPU check in one command: `make gpu-check DATA=...` (python -m bench.gpu_check --data DATA --out OUT).

Installs nothing. Trains fold 0 of the full preset's segmenter with its epochs scaled down to fit a few
minutes (``--epochs-scale``), through the trainer's own functions, then prints one table: epoch time, training
images/s, achieved TFLOP/s and their share of a bfloat16 matmul rate measured in the same run, the fit
epoch against its bare training steps (fit/step), peak device memory and the fold's score. Refuses to run
without a GPU (``--allow-cpu`` for a smoke check of the command itself).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench import hardware, subjects, timing
from bench.flops import forward_flops
from salt.cli import UserError, run_cli
from salt.io import atomic_path, write_json
from salt.layout import StageFiles
from training import devices, kfold


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="Kaggle-layout data folder")
    p.add_argument("--out", type=Path, default=Path("out/gpu-check"), help="a fresh output folder")
    p.add_argument("--preset", default="full")
    p.add_argument("--epochs-scale", type=float, default=0.25, help="scales every round's epochs (default 0.25)")
    p.add_argument("--allow-cpu", action="store_true", help="run without a GPU (a check of the command only)")
    args = p.parse_args(argv)
    gpu = devices.has_gpu()
    if not gpu and not args.allow_cpu:
        raise UserError(f"no GPU is visible to the {devices.backend()} backend; run `make install GPU=1` on a "
                        "machine with an NVIDIA GPU (or pass --allow-cpu to check the command on a CPU)")
    from segmenter import train

    start = time.perf_counter()
    run, _ = train.train(train.options(data=args.data, out=args.out, preset=args.preset, folds=5, only_fold=[0],
                                       epochs_scale=args.epochs_scale, verbose="2"))
    wall = time.perf_counter() - start
    preset = run.preset
    logs = [pd.read_csv(StageFiles(d).log) for d in run.paths.round_dirs_found(0) if StageFiles(d).log.is_file()]
    epochs = pd.concat(logs, ignore_index=True)
    steady = np.concatenate([log["epoch_s"].to_numpy()[1:] for log in logs if len(log) > 1]) \
        if any(len(log) > 1 for log in logs) else epochs["epoch_s"].to_numpy()
    n_train = int((run.folds["fold"] != 0).sum())
    images_per_epoch = n_train // preset["batch_size"] * preset["batch_size"]
    epoch_s = float(np.median(steady))

    s = subjects.segmenter(args.preset, run.precision)
    flops = forward_flops(s.model)
    steps = 10 if gpu else 2
    fit = timing.fit_vs_step(s, steps, max(s.batch, steps * s.batch // 4))
    dtype = "bfloat16" if gpu else "float32"
    rate = hardware.matmul_rate(dtype, 8192 if gpu else 1024, 50 if gpu else 3) / 1e12
    index, arrays = kfold.load_fold(run.dir, 0)
    _, score = train.best_threshold(run.train.masks[index], arrays["prob"].astype(np.float32))
    train_tflops = 3 * flops * images_per_epoch / epoch_s / 1e12
    rows = [("device", hardware.describe()["name"]),
            ("backend, precision", f"{devices.backend()}, {run.precision}"),
            ("network", f"{preset['network']['encoder']} U-Net at {preset['network']['input_size']}, batch "
                        f"{preset['batch_size']}"),
            ("epochs trained (fold 0)", f"{len(epochs)} ({', '.join(str(len(log)) for log in logs)} per round)"),
            ("epoch time (median after each round's first)", f"{epoch_s:.2f} s"),
            ("training images/s (whole epoch, validation included)", f"{images_per_epoch / epoch_s:.0f}"),
            ("achieved training TFLOP/s (3x forward)", f"{train_tflops:.1f}"),
            (f"share of the measured {dtype} matmul rate ({rate:.0f} TFLOP/s)", f"{100 * train_tflops / rate:.1f}%"),
            ("fit/step (trainer's epoch / its bare steps)", f"fit/step {fit['fit_over_step']:.2f}"),
            ("peak device memory", "n/a" if hardware.peak_memory(gpu) is None
             else f"{hardware.peak_memory(gpu) / 2 ** 30:.1f} GiB"),
            ("fold 0 out-of-fold score (best threshold)", f"{score:.4f}"),
            ("wall time of the training", f"{wall / 60:.1f} min")]
    table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    print(table, flush=True)
    write_json(args.out / "gpu_check.json", {k: v for k, v in rows})
    with atomic_path(args.out / "gpu_check.md") as tmp:
        tmp.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
