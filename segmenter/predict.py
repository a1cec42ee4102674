"""Segmenter prediction: `python -m segmenter.predict --out OUT --images FOLDER --name NAME`.

Averages the sigmoid probabilities of every fold model of the last round, each with horizontal-flip
test-time augmentation, and saves them as float16 to OUT/segmenter/pred-NAME.npz (ids, prob, p_salt,
fingerprint) for the ensemble.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import segmenter.unet  # noqa: F401  (registers the custom layers that the checkpoints use)
from salt.cli import UserError, run_cli
from training.predict import predict_command


def last_round_models(run_dir: Path) -> list[Path]:
    """The best checkpoint of every fold of the last round."""
    if not (run_dir / "metrics.json").exists():
        raise UserError(f"{run_dir / 'metrics.json'}: no trained segmenter here; run `make train-segmenter` first")
    rounds = len(json.loads((run_dir / "run.json").read_text())["config"]["rounds"])
    paths = sorted((run_dir / f"round{rounds}").glob("fold*/best.keras"))
    if not paths:
        raise UserError(f"{run_dir / f'round{rounds}'}: no fold checkpoints; run `make train-segmenter` first")
    return paths


def main(argv=None) -> int:
    return predict_command("segmenter", __doc__.splitlines()[0], argv, last_round_models,
                           lambda probs: {"prob": probs["mask"].astype(np.float16),
                                          "p_salt": probs["salt"].astype(np.float16)})


if __name__ == "__main__":
    run_cli(main)
