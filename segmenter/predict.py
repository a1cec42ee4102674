"""Segmenter prediction: `python -m segmenter.predict --out OUT --images FOLDER --name NAME`.

Averages the sigmoid probabilities of every fold model of the preset's snapshot rounds (the last round,
every Lovasz round or all of them), each with horizontal-flip test-time augmentation, and saves the mean
as float16 to OUT/segmenter/pred-NAME.npz (ids, prob, p_salt, fingerprint, folds, n_models, wall_s) for
the ensemble, which applies its rules to it. The images are read and predicted ``--chunk`` at a time and
the mean is written as it is made (training.predict.predict_folder): the memory does not grow with the
number of images.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import segmenter.unet  # noqa: F401  (registers the custom layers that the checkpoints use)
from salt.cli import UserError, run_cli
from salt.layout import ModelRun, StageFiles
from segmenter.rounds import snapshot_rounds
from training.predict import predict_command


def fold_models(run_dir: Path) -> dict[int, list[Path]]:
    """{fold: the best checkpoints of its snapshot rounds}."""
    files = ModelRun(run_dir)
    if not files.metrics_json.exists():
        raise UserError(f"{files.metrics_json}: no trained segmenter here; run `make train-segmenter` first")
    run = json.loads(files.run_json.read_text())
    paths = {}
    for k in range(run["folds"]):
        paths[k] = [StageFiles(files.round_dir(r, k)).best for r in snapshot_rounds(run["config"])]
        missing = [p for p in paths[k] if not p.exists()]
        if missing:
            raise UserError(f"{missing[0]}: checkpoint missing; run `make train-segmenter` first")
    return paths


def main(argv=None) -> int:
    return predict_command("segmenter", __doc__.splitlines()[0], argv, fold_models,
                           {"prob": ("mask", np.float16), "p_salt": ("salt", np.float16)})


if __name__ == "__main__":
    run_cli(main)
