"""A training run: its options, its preset, its data and folds, and its folder with run.json.

A run lives in one folder (OUT/segmenter, OUT/classifier). ``run.json`` records what it used (preset,
fingerprint of data and folds, versions, backend, devices, precision, encoder initialisation); a second
run into the same folder with other data, other folds or another preset is refused instead of silently
mixing models.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from salt.cli import UserError
from salt.data import TrainSet, load_train
from salt.folds import load_or_make_folds, run_fingerprint
from salt.io import write_json
from salt.layout import ModelRun, Out
from salt.mosaic import mosaic_groups, read_mosaic
from training import devices, stage


def resolve_preset(name: str, presets: dict) -> tuple[str, dict]:
    """Looks a preset up by name; ``auto`` means ``full`` on a GPU and ``cpu`` otherwise."""
    if name == "auto":
        name = "full" if devices.has_gpu() else "cpu"
        print(f"preset auto -> {name} ({'GPU' if name == 'full' else 'no GPU'} visible to the "
              f"{devices.backend()} backend)")
    if name not in presets:
        raise UserError(f"unknown preset {name!r}; choose one of auto, {', '.join(presets)}")
    return name, copy.deepcopy(presets[name])


def environment() -> dict:
    """Versions, backend and devices, written next to every run's outputs."""
    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__}
    for module in ("tensorflow", "jax", "torch"):
        if module in sys.modules:
            versions[module] = getattr(sys.modules[module], "__version__", "?")
    return {"backend": devices.backend(), "gpu": devices.has_gpu(), "devices": devices.devices(),
            "versions": versions}


def add_run_args(parser: argparse.ArgumentParser, presets: dict) -> None:
    """The command-line options that both trainers share."""
    parser.add_argument("--data", type=Path, default=Path("data/tgs"), help="Kaggle-layout data folder")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder")
    parser.add_argument("--preset", default="auto", help="auto, " + ", ".join(presets))
    parser.add_argument("--folds", type=int, default=5, help="number of folds K (>= 2)")
    parser.add_argument("--folds-by", choices=["coverage", "mosaic"], default="coverage",
                        help="stratify by salt coverage (default), or also keep every mosaic of neighbouring "
                             "tiles in one fold (needs OUT/mosaic.csv: make mosaic)")
    parser.add_argument("--only-fold", type=int, action="append",
                        help="train only this fold (repeatable); metrics.json follows once all are done")
    parser.add_argument("--encoder-weights", help="imagenet, none or a weights file (default: the preset's)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every stage's epochs")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one preset setting (repeatable), KEY dotted into nested settings, VALUE as "
                             "JSON or a plain string: --set lovasz_symmetric=true --set network.edge=false")
    parser.add_argument("--checkpoint-every", type=float, default=stage.SAVE_EVERY_S, metavar="SECONDS",
                        help=f"write the resume state at most this often (default {stage.SAVE_EVERY_S:.0f} s) "
                             "and at the end of every stage")
    parser.add_argument("--precision", default="auto", help="auto (the preset's choice for this device), "
                                                            "bfloat16 or float32")
    parser.add_argument("--verbose", default="auto", help="Keras' fit verbosity: auto, 0, 1 or 2")


@dataclass
class Run:
    """What a trainer works with: the preset, the data, the folds and the run folder."""
    name: str
    preset: dict
    train: TrainSet
    folds: pd.DataFrame
    fingerprint: str
    dir: Path
    k: int
    fold_list: list
    precision: str
    verbose: object
    save_every_s: float = stage.SAVE_EVERY_S
    pace: object = None  # training.pace.Pace, set by the trainer once it knows the epochs left
    start: float = field(default_factory=time.time)

    @property
    def paths(self) -> ModelRun:
        """The run folder's files (salt.layout)."""
        return ModelRun(self.dir)

    def open(self, **extra) -> dict:
        """Creates or re-opens the run folder, refusing one made with other data, folds or preset."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.paths.run_json
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("fingerprint") != self.fingerprint:
                raise UserError(f"{path}: trained on other data or folds (fingerprint {old.get('fingerprint')}, "
                                f"now {self.fingerprint}); use another OUT or `make clean`")
            if old.get("preset") != self.name or old.get("config") != json.loads(json.dumps(self.preset)):
                raise UserError(f"{path}: trained with preset {old.get('preset')!r} and other settings; "
                                f"use another OUT or `make clean` to train with {self.name!r}")
        record = {"preset": self.name, "config": self.preset, "fingerprint": self.fingerprint,
                  "precision": self.precision, "dtype_policy": devices.policy_name(self.precision), **extra}
        write_json(path, {**record, "environment": environment()})
        return record

    def write_metrics(self, metrics: dict, encoder_init: str) -> dict:
        """metrics.json, with what the run used; a re-run that found all done keeps the first wall time."""
        path = self.paths.metrics_json
        wall = time.time() - self.start
        if path.exists():
            wall = json.loads(path.read_text()).get("wall_s", wall)
        record = {**metrics, "preset": self.name, "encoder_init": encoder_init, "fingerprint": self.fingerprint,
                  "folds_k": self.k, "precision": self.precision, "dtype_policy": devices.policy_name(self.precision),
                  "wall_s": wall, "environment": environment()}
        write_json(path, record)
        return record


def apply_setting(preset: dict, item: str) -> None:
    """``KEY=VALUE`` into the preset: KEY dotted into nested settings, VALUE read as JSON if it is JSON."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise UserError(f"--set {item}: write KEY=VALUE, e.g. --set network.edge=false")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    *path, last = key.split(".")
    node = preset
    for part in path:
        if not isinstance(node.get(part), dict):
            raise UserError(f"--set {item}: the preset has no group {part!r}")
        node = node[part]
    node[last] = value


def start_run(args, presets: dict, subdir: str, epochs_key: str) -> Run:
    """Checks the shared options and the devices, picks the preset and precision, loads data and folds."""
    if args.folds < 2:
        raise UserError(f"--folds {args.folds}: need at least 2 folds")
    for fold in args.only_fold or []:
        if not 0 <= fold < args.folds:
            raise UserError(f"--only-fold {fold}: out of range for {args.folds} folds (0..{args.folds - 1})")
    if args.epochs_scale <= 0:
        raise UserError(f"--epochs-scale {args.epochs_scale}: must be positive")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.checkpoint_every < 0:
        raise UserError(f"--checkpoint-every {args.checkpoint_every}: must be 0 or more seconds")
    if args.verbose not in ("auto", "0", "1", "2"):
        raise UserError(f"--verbose {args.verbose}: choose auto, 0, 1 or 2")
    name, preset = resolve_preset(args.preset, presets)
    for item in args.set:
        apply_setting(preset, item)
    precision = devices.resolve_precision(args.precision, preset)
    devices.check_devices()
    if args.encoder_weights:
        preset["encoder_weights"] = args.encoder_weights
    if args.batch_size:
        preset["batch_size"] = args.batch_size
    for stage in preset[epochs_key]:
        stage["epochs"] = max(1, round(stage["epochs"] * args.epochs_scale))
    out = Out(args.out)
    devices.configure(out.compile_cache)
    train = load_train(args.data, cache_dir=out.cache)
    groups = None
    if args.folds_by == "mosaic":
        groups = mosaic_groups(train.ids, read_mosaic(out.mosaic_csv))
    folds = load_or_make_folds(args.out, train.ids, train.masks, k=args.folds, groups=groups, by=args.folds_by)
    print(f"devices: {', '.join(devices.devices())} ({devices.backend()} backend, {precision})", flush=True)
    return Run(name, preset, train, folds, run_fingerprint(train, out.folds_csv), out.model(subdir).dir,
               args.folds, list(args.only_fold or range(args.folds)), precision,
               _verbosity(args.verbose), args.checkpoint_every)


def _verbosity(choice: str, stream=None) -> int:
    """Keras' fit verbosity. ``auto`` is one line per epoch (2) where the output is not a terminal (a log
    file, ``| tee``: no progress bars and their control codes there), and on a GPU, where an epoch lasts
    seconds and a progress bar would copy the loss to the host after every batch; a progress bar (1) on a
    terminal otherwise. The run's countdown (training/pace.py) prints after every epoch either way."""
    if choice == "auto":
        stream = sys.stdout if stream is None else stream
        return 1 if stream.isatty() and not devices.has_gpu() else 2
    return int(choice)
