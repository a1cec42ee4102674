"""Out-of-fold predictions, one format for both models: an npz (salt.layout: OUT/MODEL/oof.npz) holding
``ids`` (the training images, str), ``fold`` (each image's fold, int) and one array per prediction whose
row i is image ids[i]'s: the segmenter's ``prob`` (N,101,101), ``p_salt`` (N,) and each round's
``prob_round{r}``, ``p_salt_round{r}``; the classifier's ``p_empty`` (N,).

``write_oof`` is what the trainers write, ``read_oof`` what the ensemble, the report and bench read: a
problem is one UserError line that names the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from salt.cli import UserError
from salt.io import save_npz


def write_oof(path, ids, fold, **arrays) -> None:
    """Write the out-of-fold predictions of the images ``ids`` (atomically)."""
    ids = np.array([str(i) for i in ids])
    fold = np.asarray(fold, dtype=np.int64)
    for name, a in (("fold", fold), *arrays.items()):
        if np.shape(a)[:1] != (len(ids),):
            raise ValueError(f"{path}: {name} has {np.shape(a)[:1]} rows for {len(ids)} ids")
    save_npz(path, ids=ids, fold=fold, **arrays)


def read_oof(path, keys, hint) -> dict:
    """The out-of-fold arrays ``keys`` of a file written by ``write_oof``: {"ids": [str], "fold": int64 (N,),
    key: array (N, ...)}. UserError naming the file (and ``hint``, what writes it, where it is missing)
    if it is missing, unreadable, lacks an array or has one of another length."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run {hint}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("ids", "fold", *keys) if k not in z.files]
            if missing:
                raise UserError(f"{path}: missing array {missing[0]!r} (have {', '.join(z.files)})")
            out = {k: z[k] for k in ("ids", "fold", *keys)}
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{path}: unreadable npz ({type(e).__name__}: {e})") from None
    n = len(out["ids"])
    bad = [k for k in ("fold", *keys) if out[k].shape[:1] != (n,)]
    if bad:
        raise UserError(f"{path}: inconsistent shapes (ids {n}, " + ", ".join(f"{k} {out[k].shape}" for k in bad)
                        + ")")
    out["ids"] = [str(i) for i in out["ids"]]
    out["fold"] = out["fold"].astype(np.int64)
    return out
