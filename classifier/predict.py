"""Classifier prediction: `python -m classifier.predict --out OUT --images FOLDER --name NAME`.

Averages P(empty) over every fold model, each with horizontal-flip test-time augmentation, and saves
the mean to OUT/classifier/pred-NAME.npz (ids, p_empty, fingerprint, folds, n_models, wall_s) for the
ensemble. The images are read and predicted ``--chunk`` at a time (training.predict.predict_folder).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import classifier.model  # noqa: F401  (registers the custom layers that the checkpoints use)
from salt.cli import UserError, run_cli
from salt.layout import ModelRun, StageFiles
from training.predict import predict_command


def fold_models(run_dir: Path) -> dict[int, list[Path]]:
    """{fold: [the best checkpoint of its last stage]}."""
    files = ModelRun(run_dir)
    if not files.metrics_json.exists():
        raise UserError(f"{files.metrics_json}: no trained classifier here; run `make train-classifier` first")
    run = json.loads(files.run_json.read_text())
    stage = run["config"]["stages"][-1]["name"]
    paths = {k: [StageFiles(files.stage_dir(k, stage)).best] for k in range(run["folds"])}
    missing = [p[0] for p in paths.values() if not p[0].exists()]
    if missing:
        raise UserError(f"{missing[0]}: checkpoint missing; run `make train-classifier` first")
    return paths


def main(argv=None) -> int:
    return predict_command("classifier", __doc__.splitlines()[0], argv, fold_models,
                           {"p_empty": ("empty", np.float32)})


if __name__ == "__main__":
    run_cli(main)
