"""Stratified K-fold split by coverage class, written once to OUT/folds.csv and reused.

Folds by coverage (the default) split tiles at random within each coverage class. Folds by mosaic
(groups from salt.mosaic.mosaic_groups) keep every tile of a mosaic in one fold, so no validation tile
has a neighbour it continues in the training part, and are still stratified by coverage (sklearn's
StratifiedGroupKFold). folds.csv made by mosaic has a fourth column, group; a folds.csv made the other
way is refused.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from salt.cli import UserError
from salt.io import write_csv
from salt.layout import Out


def coverage_decile(masks) -> np.ndarray:
    """Per mask: 0 if empty, else the decile 1..10 of its salt fraction (ceil(10 * fraction)), int64 (N,)."""
    masks = np.asarray(masks, dtype=bool)
    n = len(masks)
    flat = masks.reshape(n, -1)
    salt = np.count_nonzero(flat, axis=1).astype(np.int64)
    total = flat.shape[1]
    return (salt * 10 + total - 1) // total  # exact integer ceil; 0 stays 0


def make_folds(ids, masks, k=5, seed=42, groups=None) -> pd.DataFrame:
    """Columns id, fold (0..k-1), coverage_class, in the order of `ids` (sklearn StratifiedKFold, shuffled).

    With groups (one label per id, e.g. salt.mosaic.mosaic_groups), all ids of a group share a fold
    (StratifiedGroupKFold on the same coverage classes, shuffled) and a fourth column, group, holds them.
    """
    ids = [str(i) for i in ids]
    if k < 2:
        raise UserError(f"number of folds must be at least 2, got {k}")
    if len(ids) != len(masks):
        raise UserError(f"{len(ids)} ids but {len(masks)} masks")
    if len(set(ids)) != len(ids):
        raise UserError("duplicate ids given to make_folds")
    if len(ids) < k:
        raise UserError(f"cannot make {k} folds from {len(ids)} images")
    cls = coverage_decile(masks)
    fold = np.full(len(ids), -1, dtype=np.int64)
    if groups is None:
        split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(ids)), cls)
    else:
        groups = np.asarray([str(g) for g in groups], dtype=object)
        if len(groups) != len(ids):
            raise UserError(f"{len(ids)} ids but {len(groups)} groups")
        if len(set(groups)) < k:
            raise UserError(f"cannot make {k} folds from {len(set(groups))} groups")
        split = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
            np.zeros(len(ids)), cls, groups)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        for f, (_, val) in enumerate(split):
            fold[val] = f
    df = pd.DataFrame({"id": ids, "fold": fold, "coverage_class": cls})
    if groups is not None:
        df["group"] = groups
    return df


FOLDS_BY = ("coverage", "mosaic")


def load_or_make_folds(out_dir, ids, masks, k=5, seed=42, groups=None, by="coverage") -> pd.DataFrame:
    """OUT/folds.csv if it exists (UserError if it has other ids or another k), else make and write it.

    by="mosaic" needs `groups` (see make_folds) and writes the group column; a folds.csv made the other
    way, or one that splits a given group across folds, is refused. Returned rows follow the order of `ids`.
    """
    if k < 2:
        raise UserError(f"number of folds must be at least 2, got {k}")
    if by not in FOLDS_BY:
        raise UserError(f"folds by {by!r}: expected one of {', '.join(FOLDS_BY)}")
    if (by == "mosaic") != (groups is not None):
        raise UserError("folds by mosaic need the mosaic groups (OUT/mosaic.csv: make mosaic)" if by == "mosaic"
                        else "groups given but folds by coverage asked for")
    path = Out(out_dir).folds_csv
    ids = [str(i) for i in ids]
    if groups is not None and len(groups) != len(ids):
        raise UserError(f"{len(ids)} ids but {len(groups)} groups")
    if not path.exists():
        df = make_folds(ids, masks, k=k, seed=seed, groups=groups)
        write_csv(path, df)
        return df
    try:
        df = pd.read_csv(path, dtype={"id": str, "group": str}, keep_default_na=False)
    except Exception as e:
        raise UserError(f"{path}: unreadable CSV ({type(e).__name__})") from None
    missing = {"id", "fold", "coverage_class"} - set(df.columns)
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    if df["id"].duplicated().any():
        raise UserError(f"{path}: duplicate id {df['id'][df['id'].duplicated()].iloc[0]}")
    have, want = set(df["id"]), set(ids)
    if have != want:
        diff = sorted(want - have)
        what = f"id {diff[0]} is missing" if diff else f"has id {sorted(have - want)[0]} not in the data"
        raise UserError(f"{path}: {what} ({len(want - have)} missing, {len(have - want)} extra); "
                        "it was made for other data: delete it or use another output folder")
    folds = sorted(df["fold"].unique().tolist())
    if folds != list(range(k)):
        raise UserError(f"{path}: has folds {folds[0]}..{folds[-1]} ({len(folds)} folds), asked for k={k}")
    made_by = "mosaic" if "group" in df.columns else "coverage"
    if made_by != by:
        raise UserError(f"{path}: made with folds by {made_by}, asked for folds by {by}: "
                        "delete it or use another output folder")
    df = df.set_index("id").loc[ids].reset_index()
    columns = ["id", "fold", "coverage_class"]
    if by == "mosaic":
        columns.append("group")
        per_group = df.groupby(np.asarray([str(g) for g in groups], dtype=object))["fold"].nunique()
        if (per_group > 1).any():
            raise UserError(f"{path}: splits {per_group.index[per_group > 1][0]} across folds "
                            "(made from another mosaic.csv?): delete it or use another output folder")
    return df[columns].astype({"fold": np.int64, "coverage_class": np.int64})


def run_fingerprint(train, folds_csv) -> str:
    """Fingerprint of the training data and the fold assignment, recorded with every trained model:
    models and predictions are only joined when theirs are equal."""
    from salt.data import fingerprint

    folds_hash = hashlib.sha1(Path(folds_csv).read_bytes()).hexdigest()[:12]
    return f"{fingerprint(train.ids, train.images, train.masks)[:12]}-{folds_hash}"
