"""The k-fold loop that both trainers share: train each fold once, keep its out-of-fold predictions,
and join them when every fold is there.

A fold is finished when its out-of-fold file (salt.layout: ``ModelRun.oof_fold``) exists (its validation indices and one array per
prediction); a re-run skips it. Folds can be trained by separate processes or machines into one OUT
(``--only-fold``); the joined predictions follow once all are present.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from salt.io import save_npz
from salt.layout import ModelRun
from salt.oof import write_oof


def fold_split(folds, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the training set's order) of a fold's training and validation images."""
    values = folds["fold"].to_numpy()
    return np.flatnonzero(values != fold), np.flatnonzero(values == fold)


def oof_path(run_dir: Path, fold: int) -> Path:
    return ModelRun(run_dir).oof_fold(fold)


def save_fold(run_dir: Path, fold: int, index: np.ndarray, **arrays) -> None:
    """A fold's out-of-fold predictions: ``index`` into the training set and one array per prediction."""
    save_npz(oof_path(run_dir, fold), index=index, **arrays)


def load_fold(run_dir: Path, fold: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A fold's out-of-fold predictions as ``save_fold`` wrote them: (index, {name: array})."""
    with np.load(oof_path(run_dir, fold)) as f:
        return f["index"], {name: f[name] for name in f.files if name != "index"}


def train_folds(run, train_fold: Callable[[int], None]) -> bool:
    """Calls ``train_fold(k)`` for every fold of the run that has no out-of-fold file yet; returns whether
    every fold of the run (not only those asked for) is finished."""
    for fold in run.fold_list:
        if oof_path(run.dir, fold).exists():
            print(f"fold {fold}: done, skipped", flush=True)
            continue
        train_fold(fold)
    done = all(oof_path(run.dir, f).exists() for f in range(run.k))
    if not done:
        print(f"{run.dir.name}: not every fold is trained yet; metrics.json follows when they are", flush=True)
    return done


def save_joined(run, **arrays) -> Path:
    """Every training image's out-of-fold arrays (row i: image ``run.train.ids[i]``, as ``join_folds`` places
    them) in the one out-of-fold format of both models (salt.oof); returns the file's path."""
    path = run.paths.oof
    write_oof(path, run.train.ids, run.folds["fold"].to_numpy(), **arrays)
    return path


def join_folds(run_dir: Path, k: int, n: int) -> dict[str, np.ndarray]:
    """Every fold's out-of-fold arrays placed at their images' positions, (n, ...) each."""
    joined: dict[str, np.ndarray] = {}
    for fold in range(k):
        idx, arrays = load_fold(run_dir, fold)
        for name, a in arrays.items():
            if name not in joined:
                joined[name] = np.zeros((n,) + a.shape[1:], a.dtype)
            joined[name][idx] = a
    return joined
