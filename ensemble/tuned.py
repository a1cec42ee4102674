"""The out-of-fold predictions under the tuned rules, as the tuning made them (salt.layout: ``Out.tuned_oof``):
each image's final mask (the chosen rules, fitted on all folds) and its score, its score under the
segmenter alone at the tuned mask threshold, and a digest of the out-of-fold inputs they were made from.
ensemble.tune writes them once; the report reads them and applies no rule itself.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from salt.cli import UserError
from salt.io import save_npz

KEYS = ("ids", "final", "final_score", "alone_score", "digest")


def inputs_digest(d) -> str:
    """A digest of the out-of-fold inputs of the rules (ensemble.inputs.load_oof's ids, prob, p_salt,
    p_empty): whether the predictions on disk are those the tuning saw."""
    h = hashlib.sha1()
    h.update("\n".join(d["ids"]).encode())
    for key in ("prob", "p_salt", "p_empty"):
        a = d[key]
        h.update(key.encode())
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


def write_tuned(path, ids, final, final_score, alone_score, digest: str) -> None:
    """``final``: bool masks (N, H, W), stored a bit a pixel; the scores (N,) in the order of ``ids``."""
    final = np.asarray(final, dtype=bool)
    save_npz(path, ids=np.array([str(i) for i in ids]), shape=np.array(final.shape, np.int64),
             final=np.packbits(final.reshape(len(final), -1), axis=1),
             final_score=np.asarray(final_score, np.float64), alone_score=np.asarray(alone_score, np.float64),
             digest=np.array(digest))


def read_tuned(path, ids, hint) -> dict:
    """What ``write_tuned`` wrote, for the images ``ids`` in that order: {final bool (N, H, W), final_score,
    alone_score, digest}. UserError naming the file where it is missing, unreadable, or made for other
    images (``hint``: what writes it)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run {hint}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in (*KEYS, "shape") if k not in z.files]
            if missing:
                raise UserError(f"{path}: missing array {missing[0]!r}; run {hint}")
            got = {k: z[k] for k in (*KEYS, "shape")}
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{path}: unreadable npz ({type(e).__name__}: {e})") from None
    if [str(i) for i in got["ids"]] != list(ids):
        raise UserError(f"{path}: made for other images than the out-of-fold predictions; run {hint}")
    shape = tuple(int(s) for s in got["shape"])
    n, pixels = shape[0], int(np.prod(shape[1:]))
    if n != len(ids) or got["final"].shape[0] != n or got["final_score"].shape != (n,) \
            or got["alone_score"].shape != (n,):
        raise UserError(f"{path}: inconsistent shapes; run {hint}")
    final = np.unpackbits(got["final"], axis=1, count=pixels).astype(bool).reshape(shape)
    return {"final": final, "final_score": got["final_score"], "alone_score": got["alone_score"],
            "digest": str(got["digest"].reshape(()).item())}
