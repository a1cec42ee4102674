"""Keras' ``fit`` against the trainers' step loop: `python -m bench.fit_loop --data DATA [--preset cpu]`.

Trains round 1 of the segmenter preset on fold 0's training images (real data, the trainer's own
batches, callbacks and checkpoint: ``training.stage.fit_stage``) for ``--epochs`` epochs, once with every
step fed by ``train_on_batch`` (``training.stage.train_epochs``, what ``devices.step_loop()`` picks on
TensorFlow on a CPU) and once through ``model.fit``, each in a subprocess of its own, one after the other
on the same machine, and prints every epoch's seconds (``epoch_s``: steps and validation). The first
epoch of each holds the graph building; the others compare the two.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TAG = "EPOCHS "
REPO = Path(__file__).resolve().parents[1]


def child(data: Path, preset_name: str, epochs: int, mode: str) -> None:
    import numpy as np

    from salt.data import load_train
    from salt.folds import make_folds
    from salt.layout import StageFiles
    from segmenter import train as seg
    from segmenter.presets import PRESETS
    from training import devices, kfold, stage

    if mode == "fit":
        devices.step_loop = lambda: False
    devices.configure()
    preset = PRESETS[preset_name]
    rnd = {**preset["rounds"][0], "epochs": epochs}
    train = load_train(data)
    tr, va = kfold.fold_split(make_folds(train.ids, train.masks, 5), 0)
    devices.new_session(0, "float32", preset["batch_size"], clear=True)
    model = seg.build_model(preset, None)
    seg.compile_model(model, preset, rnd)
    batches, callbacks = seg.fit_parts(preset, rnd, train.images[tr], train.masks[tr], train.images[va],
                                       train.masks[va], seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        stage.fit_stage(model, tmp, batches, epochs, seg.MONITOR, "max", callbacks, verbose=0)
        epoch_s = [float(x) for x in np.genfromtxt(StageFiles(tmp).log, delimiter=",", names=True)["epoch_s"]]
    print(TAG + json.dumps({"mode": mode, "epoch_s": epoch_s, "steps": len(batches)}), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fit_loop", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("data/tgs"))
    p.add_argument("--preset", default="cpu")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--child", choices=["loop", "fit"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.data, args.preset, args.epochs, args.child)
        return 0
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    results = {}
    for mode in ("loop", "fit"):
        proc = subprocess.run([sys.executable, "-m", "bench.fit_loop", "--data", str(args.data), "--preset",
                               args.preset, "--epochs", str(args.epochs), "--child", mode],
                              cwd=REPO, env=env, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith(TAG)]
        if proc.returncode or not lines:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"error: the {mode} run failed (exit {proc.returncode})")
        results[mode] = json.loads(lines[-1][len(TAG):])
        print(f"{mode}: {results[mode]['steps']} steps an epoch, epoch_s "
              f"{', '.join(f'{s:.1f}' for s in results[mode]['epoch_s'])}", flush=True)
    loop, fit = results["loop"]["epoch_s"][1:], results["fit"]["epoch_s"][1:]
    if loop and fit:
        print(f"after the first epoch: fit {sum(fit) / len(fit):.1f} s an epoch, the step loop "
              f"{sum(loop) / len(loop):.1f} s: fit / loop {sum(fit) / len(fit) / (sum(loop) / len(loop)):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
