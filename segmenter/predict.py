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
from training.predict import predict_command


def round_dir(run_dir: Path, r: int, fold: int) -> Path:
    """The stage folder of round ``r`` (1-based) of a fold: best.keras, log.csv, the resume state."""
    return Path(run_dir) / f"round{r}" / f"fold{fold}"


def all_rounds(preset: dict) -> list[dict]:
    """The rounds every fold trains: the preset's, then the pseudo-label round where it has one."""
    rounds = list(preset["rounds"])
    if preset.get("pseudo"):
        p = preset["pseudo"]
        rounds.append({"loss": "lovasz", "epochs": p["epochs"], "lr": p["lr"], "pseudo": True})
    return rounds


def snapshot_rounds(preset: dict) -> list[int]:
    """The rounds (1-based) whose best checkpoints are averaged, per fold, out of fold and on test:
    ``snapshots`` "last" (the last round), "lovasz" (every Lovasz round) or "all"."""
    rounds = all_rounds(preset)
    how = preset.get("snapshots", "last")
    if how == "last":
        return [len(rounds)]
    if how == "lovasz":
        return [r for r, rnd in enumerate(rounds, 1) if rnd["loss"] == "lovasz"] or [len(rounds)]
    if how == "all":
        return list(range(1, len(rounds) + 1))
    raise UserError(f"snapshots {how!r}: choose last, lovasz or all")


def fold_models(run_dir: Path) -> dict[int, list[Path]]:
    """{fold: the best checkpoints of its snapshot rounds}."""
    if not (run_dir / "metrics.json").exists():
        raise UserError(f"{run_dir / 'metrics.json'}: no trained segmenter here; run `make train-segmenter` first")
    run = json.loads((run_dir / "run.json").read_text())
    paths = {}
    for k in range(run["folds"]):
        paths[k] = [round_dir(run_dir, r, k) / "best.keras" for r in snapshot_rounds(run["config"])]
        missing = [p for p in paths[k] if not p.exists()]
        if missing:
            raise UserError(f"{missing[0]}: checkpoint missing; run `make train-segmenter` first")
    return paths


def main(argv=None) -> int:
    return predict_command("segmenter", __doc__.splitlines()[0], argv, fold_models,
                           {"prob": ("mask", np.float16), "p_salt": ("salt", np.float16)})


if __name__ == "__main__":
    run_cli(main)
