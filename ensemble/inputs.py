"""The ensemble's file inputs, read and checked in one place: JSON and npz files, the id alignment, the
fingerprint checks, the out-of-fold predictions (for tuning and the report), the models' test predictions
(for the submission: the mean of the fold models, whose pixel probabilities are read a chunk at a time)
and the mosaic.

Every problem is a one-line UserError that names the file (and, for a missing one, what produces it).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from salt.cli import UserError
from salt.folds import run_fingerprint
from salt.layout import Out
from salt.oof import read_oof

# Where each input comes from (shown in error messages).
HINT_SEGMENTER = "make train-segmenter"
HINT_CLASSIFIER = "make train-classifier"
# A run from before both models wrote one out-of-fold format has its classifier's in another file; the
# trainer, re-run, skips every finished fold and joins their files into this one.
HINT_CLASSIFIER_OOF = f"{HINT_CLASSIFIER} (with every fold trained, it only joins their out-of-fold files)"
HINT_TUNE = "make submit (python -m ensemble.tune)"
HINT_PREDICT = {"segmenter": "make submit (python -m segmenter.predict --name NAME)",
                "classifier": "make submit (python -m classifier.predict --name NAME)"}
HINT_MOSAIC = "python -m salt.mosaic --data DATA --out OUT"


def read_json(path, hint) -> dict:
    """Read a JSON file; UserError naming the file (and what produces it) if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run {hint}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable JSON ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def load_npz(path, keys, hint) -> dict:
    """Load the arrays `keys` from an npz file; UserError if missing, unreadable or lacking a key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run {hint}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise UserError(f"{path}: missing array {missing[0]!r} (have {', '.join(z.files)})")
            return {k: z[k] for k in keys}
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{path}: unreadable npz ({type(e).__name__}: {e})") from None


def npz_keys(path, hint) -> list[str]:
    """The names of the arrays in an npz file (without loading them); UserError if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run {hint}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return list(z.files)
    except Exception as e:
        raise UserError(f"{path}: unreadable npz ({type(e).__name__}: {e})") from None


def align(path, ids, want) -> np.ndarray:
    """Index array putting `ids` (read from `path`) in the order of `want`; UserError if an id of `want` is
    missing or `ids` has duplicates."""
    pos = {str(i): k for k, i in enumerate(ids)}
    if len(pos) != len(ids):
        raise UserError(f"{path}: duplicate ids")
    missing = [i for i in want if i not in pos]
    if missing:
        raise UserError(f"{path}: no prediction for id {missing[0]} ({len(missing)} of {len(want)} missing)")
    return np.array([pos[i] for i in want], dtype=np.int64)


# ------------------------------------------------------------------------------------------ fingerprints
def expected_fingerprint(data_dir, out_dir, train=None) -> str:
    """Fingerprint of the current data + folds (salt.folds.run_fingerprint), as the models record it."""
    from salt.data import load_train

    out = Out(out_dir)
    folds_csv = out.folds_csv
    if not folds_csv.is_file():
        raise UserError(f"{folds_csv}: not found; run {HINT_SEGMENTER} (training writes the folds)")
    if train is None:
        train = load_train(data_dir, cache_dir=out.cache)
    return run_fingerprint(train, folds_csv)


def check_fingerprint(path, metrics, expected) -> str:
    """UserError unless metrics["fingerprint"] == expected; returns it."""
    fp = metrics.get("fingerprint")
    if fp != expected:
        raise UserError(f"{path}: model trained on other data or folds (fingerprint {fp}, expected {expected}); "
                        "retrain or use another OUT")
    return fp


def pred_fingerprint(path, z) -> str:
    """The 0-d fingerprint string stored in a prediction npz (loaded as the dict `z`)."""
    try:
        return str(np.asarray(z["fingerprint"]).reshape(()).item())
    except ValueError:
        raise UserError(f"{path}: fingerprint is not a single string") from None


def check_pred_fingerprint(path, fp, tuning_fp) -> None:
    """UserError unless a prediction's fingerprint is the tuning's."""
    if fp != tuning_fp:
        raise UserError(f"{path}: predicted by a model trained on other data or folds (fingerprint {fp}, "
                        f"tuning has {tuning_fp}); re-run the prediction or the tuning")


# --------------------------------------------------------------------------------------- out of fold
def load_oof(data_dir, out_dir) -> dict:
    """Check fingerprints and load the OOF inputs aligned on the segmenter's OOF ids:
    {ids, fold, truth, images, prob, p_salt, p_empty|None, seg_metrics, clf_metrics|None, fingerprint}."""
    from salt.data import load_train

    out = Out(out_dir)
    seg_mpath, clf_mpath = out.segmenter.metrics_json, out.classifier.metrics_json
    clf_oof_path = out.classifier.oof
    seg_metrics = read_json(seg_mpath, HINT_SEGMENTER)
    has_clf = clf_mpath.is_file() or clf_oof_path.is_file()
    clf_metrics = read_json(clf_mpath, HINT_CLASSIFIER) if has_clf else None

    train = load_train(data_dir, cache_dir=out.cache)
    expected = expected_fingerprint(data_dir, out.root, train)
    check_fingerprint(seg_mpath, seg_metrics, expected)
    if clf_metrics is not None:
        check_fingerprint(clf_mpath, clf_metrics, expected)

    seg_path = out.segmenter.oof
    z = read_oof(seg_path, ["prob", "p_salt"], HINT_SEGMENTER)
    ids = z["ids"]
    n = len(ids)
    if z["prob"].shape != (n,) + train.images.shape[1:] or z["p_salt"].shape != (n,) or z["fold"].shape != (n,):
        raise UserError(f"{seg_path}: inconsistent shapes (ids {n}, prob {z['prob'].shape}, "
                        f"p_salt {z['p_salt'].shape}, fold {z['fold'].shape})")
    if set(ids) != set(train.ids):
        raise UserError(f"{seg_path}: covers {len(set(ids) & set(train.ids))} of the {len(train.ids)} training "
                        f"images of {data_dir} (plus {len(set(ids) - set(train.ids))} others); re-run {HINT_SEGMENTER}")
    t_idx = align(data_dir, train.ids, ids)

    p_empty = None
    if clf_metrics is not None:
        c = read_oof(clf_oof_path, ["p_empty"], HINT_CLASSIFIER_OOF)
        if c["p_empty"].ndim != 1:
            raise UserError(f"{clf_oof_path}: p_empty must be one value per image (has shape {c['p_empty'].shape})")
        p_empty = c["p_empty"].astype(np.float64)[align(clf_oof_path, c["ids"], ids)]
        if not np.all(np.isfinite(p_empty)):
            raise UserError(f"{clf_oof_path}: p_empty has non-finite values")
    return {"ids": ids, "fold": z["fold"], "truth": train.masks[t_idx],
            "images": train.images[t_idx], "prob": z["prob"], "p_salt": z["p_salt"].astype(np.float64),
            "p_empty": p_empty, "seg_metrics": seg_metrics, "clf_metrics": clf_metrics, "fingerprint": expected}


# ---------------------------------------------------------------------------------------------- mosaic
def mosaic_path(out_dir) -> Path:
    return Out(out_dir).mosaic_csv


def load_mosaic(out_dir, required=False):
    """OUT/mosaic.csv as a DataFrame (id, mosaic, row, col), or None when it does not exist (UserError
    instead when `required`). A file that exists but is bad is always a UserError."""
    from salt.mosaic import read_mosaic

    path = mosaic_path(out_dir)
    if not path.is_file():
        if required:
            raise UserError(f"{path}: not found, and the tuned rules propagate vertical masks through it; "
                            f"run {HINT_MOSAIC} or re-run the tuning")
        return None
    return read_mosaic(path)


def mosaic_images(folder, ids) -> tuple[dict, list]:
    """The images of `ids` from `folder` (the test images salt.mosaic read), one PNG each rather than the
    whole folder: ({id: uint8 (101, 101)}, ids without a readable image)."""
    from salt.data import read_image

    found, missing = {}, []
    for i in ids:
        try:
            found[i] = read_image(Path(folder) / f"{i}.png")
        except UserError:
            missing.append(i)
    return found, missing


def submitted_masks(path, ids, chunk=4096) -> dict:
    """The masks a submission CSV holds for `ids`, {id: bool (101, 101)}; ids it lacks are left out. The
    file is read `chunk` rows at a time and only the rows of `ids` are decoded (salt.rle's decoder), so
    that a test set of any size costs the memory of the masks asked for. UserError naming the file if it
    is missing or malformed."""
    from salt.rle import decode

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    want, out, seen = {str(i) for i in ids}, {}, set()
    try:
        for df in pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk):
            missing = {"id", "rle_mask"} - set(df.columns)
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need id,rle_mask)")
            for i, rle in zip(df["id"], df["rle_mask"]):
                if i in seen:
                    raise UserError(f"{path}: duplicate id {i}")
                seen.add(i)
                if i in want:
                    try:
                        out[i] = decode(rle)
                    except ValueError as e:
                        raise UserError(f"{path}: id {i}: bad RLE: {e}") from None
    except UserError:
        raise
    except Exception as e:  # pandas raises many kinds
        raise UserError(f"{path}: unreadable CSV ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") \
            from None
    return out


# ----------------------------------------------------------------------------------- test predictions
def npy_header(path, key) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of array `key` of an npz file, read from its header alone."""
    with _member(path, key) as (f, shape, dtype):
        return shape, dtype


class _member:
    """Array `key` of an npz file opened as a stream past its .npy header: (file, shape, dtype). Works for
    stored and compressed members alike (zipfile decompresses as it reads); UserError naming the file."""

    def __init__(self, path, key):
        self.path, self.key = Path(path), key

    def __enter__(self):
        import zipfile

        try:
            self.zip = zipfile.ZipFile(self.path)
        except Exception as e:
            raise UserError(f"{self.path}: unreadable npz ({type(e).__name__}: {e})") from None
        try:
            self.f = self.zip.open(f"{self.key}.npy")
            version = np.lib.format.read_magic(self.f)
            read = np.lib.format.read_array_header_2_0 if version >= (2, 0) else np.lib.format.read_array_header_1_0
            shape, fortran, dtype = read(self.f)
        except KeyError:
            self.zip.close()
            raise UserError(f"{self.path}: missing array {self.key!r}") from None
        except Exception as e:
            self.zip.close()
            raise UserError(f"{self.path}: unreadable array {self.key!r} ({type(e).__name__}: {e})") from None
        if fortran or dtype.hasobject:
            self.zip.close()
            raise UserError(f"{self.path}: array {self.key!r} is not a plain C-ordered array")
        return self.f, tuple(shape), dtype

    def __exit__(self, *exc):
        self.zip.close()


def npz_chunks(path, key, chunk):
    """Array `key` of an npz file, `chunk` rows at a time, in order: yields (lo, hi, rows). Never more than
    one chunk in memory, whether the member is stored (as the predict commands write it) or compressed."""
    with _member(path, key) as (f, shape, dtype):
        n = shape[0] if shape else 0
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            want = (hi - lo) * row
            try:
                data = f.read(want)
                while len(data) < want:
                    more = f.read(want - len(data))
                    if not more:
                        break
                    data += more
            except Exception as e:
                raise UserError(f"{path}: unreadable array {key!r} ({type(e).__name__}: {e})") from None
            if len(data) != want:
                raise UserError(f"{path}: array {key!r} is truncated (rows {lo}..{hi - 1} of {n})")
            yield lo, hi, np.frombuffer(data, dtype).reshape((hi - lo,) + shape[1:])


def load_seg_pred_meta(path, tuning_fp) -> dict:
    """A segmenter prediction file's ids and image-head P(salt), fingerprint checked, and the shape of its
    pixel probabilities `prob` (the mean of the fold models), which are read later a chunk at a time
    (`npz_chunks`). Returns {ids, keys, p_salt (N,), folds ([] where not recorded), n_models (None where not
    recorded), wall_s (`pred_wall_s`)}."""
    keys = npz_keys(path, HINT_PREDICT["segmenter"])
    missing = [k for k in ("ids", "fingerprint", "prob", "p_salt") if k not in keys]
    if missing:
        raise UserError(f"{path}: missing array {missing[0]!r} (have {', '.join(keys)})")
    z = load_npz(path, ["ids", "fingerprint", "p_salt"], HINT_PREDICT["segmenter"])
    check_pred_fingerprint(path, pred_fingerprint(path, z), tuning_fp)
    ids = [str(i) for i in z["ids"]]
    if len(set(ids)) != len(ids):
        raise UserError(f"{path}: duplicate ids")
    n = len(ids)
    shape, dtype = npy_header(path, "prob")
    if len(shape) != 3 or shape[0] != n or z["p_salt"].shape != (n,) or dtype.kind not in "fiu":
        raise UserError(f"{path}: inconsistent shapes (ids {n}, prob {shape} {dtype}, p_salt {z['p_salt'].shape})")
    p_salt = z["p_salt"].astype(np.float64)
    if not np.all(np.isfinite(p_salt)):
        raise UserError(f"{path}: p_salt has non-finite values")
    return {"ids": ids, "keys": keys, "p_salt": p_salt, "shape": shape, **models_of(path, keys),
            "wall_s": pred_wall_s(path, keys)}


def pred_wall_s(path, keys) -> float | None:
    """The seconds a prediction file's command took (its ``wall_s``); None in a file from before it was kept,
    or where it is not one number (it only feeds the report's time table)."""
    if "wall_s" not in keys:
        return None
    wall = read_array(path, "wall_s")
    return float(wall) if wall.shape == () and wall.dtype.kind in "fiu" else None


def models_of(path, keys) -> dict:
    """Which folds' models a prediction file is the mean of, and how many models: {folds: [k...] ([] where
    the file does not say), n_models: int or None}."""
    folds = [int(k) for k in read_array(path, "folds").reshape(-1)] if "folds" in keys else []
    n_models = None
    if "n_models" in keys:
        v = read_array(path, "n_models")
        n_models = int(v) if v.shape == () and v.dtype.kind in "iu" else None
    return {"folds": folds, "n_models": n_models}


def read_array(path, key) -> np.ndarray:
    """One array of an npz file (which must hold it)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    except Exception as e:
        raise UserError(f"{path}: unreadable array {key!r} ({type(e).__name__}: {e})") from None


def load_clf_pred_meta(path, ids, tuning_fp) -> dict | None:
    """A classifier prediction file's P(empty) (the mean of the fold models), aligned on `ids` (the
    segmenter's), or None if the file is absent. Returns {path, p_empty (N,), folds, n_models, wall_s}."""
    path = Path(path)
    if not path.is_file():
        return None
    keys = npz_keys(path, HINT_PREDICT["classifier"])
    z = load_npz(path, ["ids", "p_empty", "fingerprint"], HINT_PREDICT["classifier"])
    check_pred_fingerprint(path, pred_fingerprint(path, z), tuning_fp)
    cids = [str(i) for i in z["ids"]]
    extra = set(cids) - set(ids)
    if extra:
        raise UserError(f"{path}: id {sorted(extra)[0]} is not in the segmenter's prediction ({len(extra)} extra)")
    idx = align(path, cids, ids)
    p = np.asarray(z["p_empty"], dtype=np.float64)
    if p.shape != (len(cids),) or not np.all(np.isfinite(p)):
        raise UserError(f"{path}: p_empty must be one finite value per id")
    return {"path": path, "p_empty": p[idx], **models_of(path, keys), "wall_s": pred_wall_s(path, keys)}
