"""Run-length encoding of masks (the competition's format) and submission files.

RLE: column-major (Fortran order) pixel numbering, 1-indexed, "start length" pairs separated by
spaces; an empty mask is the empty string.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from salt.cli import UserError
from salt.io import atomic_path

SHAPE = (101, 101)


def encode(mask) -> str:
    """Encode a 2-D mask (anything nonzero is salt) as an RLE string."""
    flat = np.asarray(mask).astype(bool).ravel(order="F")
    padded = np.concatenate([[False], flat, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1  # 1-indexed run starts / ends+1
    if edges.size == 0:
        return ""
    starts, stops = edges[0::2], edges[1::2]
    pairs = np.empty(2 * starts.size, dtype=np.int64)
    pairs[0::2] = starts
    pairs[1::2] = stops - starts
    return " ".join(map(str, pairs.tolist()))


def _parse_pairs(s) -> np.ndarray:
    """Parse an RLE string into an (n, 2) int array; ValueError if it is not integer pairs."""
    if s is None or (isinstance(s, float) and np.isnan(s)):
        return np.zeros((0, 2), dtype=np.int64)
    tokens = str(s).split()
    if not tokens:
        return np.zeros((0, 2), dtype=np.int64)
    if len(tokens) % 2:
        raise ValueError("odd number of values (RLE needs start/length pairs)")
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        raise ValueError("RLE values must be integers") from None
    return values.reshape(-1, 2)


def _check_pairs(pairs: np.ndarray, shape) -> None:
    """ValueError unless runs have positive lengths, ascending non-overlapping starts, inside the image."""
    if pairs.size == 0:
        return
    n = int(np.prod(shape))
    starts, lengths = pairs[:, 0], pairs[:, 1]
    if (starts < 1).any():
        raise ValueError("run start below 1")
    if (lengths < 1).any():
        raise ValueError("run length not positive")
    if (np.diff(starts) <= 0).any():
        raise ValueError("run starts not sorted ascending")
    ends = starts + lengths - 1  # last pixel of each run, 1-indexed
    if (starts[1:] <= ends[:-1]).any():
        raise ValueError("runs overlap")
    if ends[-1] > n:
        raise ValueError(f"run goes past the last pixel {n} of a {shape[0]}x{shape[1]} image")


def decode(s, shape=SHAPE) -> np.ndarray:
    """Decode an RLE string into a bool mask of `shape`; ValueError on a malformed string."""
    pairs = _parse_pairs(s)
    _check_pairs(pairs, shape)
    n = int(np.prod(shape))
    delta = np.zeros(n + 1, dtype=np.int32)
    if pairs.size:
        np.add.at(delta, pairs[:, 0] - 1, 1)
        np.add.at(delta, pairs[:, 0] - 1 + pairs[:, 1], -1)
    flat = np.cumsum(delta[:n]) > 0
    return flat.reshape(shape, order="F")


def _read_csv(path) -> pd.DataFrame:
    """Read an id,rle_mask CSV as strings (empty field -> ""); UserError if unreadable or malformed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises many kinds
        raise UserError(f"{path}: unreadable CSV ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    missing = {"id", "rle_mask"} - set(df.columns)
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need id,rle_mask)")
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise UserError(f"{path}: duplicate id {dup.iloc[0]}")
    bad = df["id"].str.strip() == ""
    if bad.any():
        raise UserError(f"{path}: empty id on row {int(np.flatnonzero(bad)[0]) + 2}")
    return df


def read_rle_csv(path, shape=SHAPE) -> dict[str, np.ndarray]:
    """Read an id,rle_mask CSV (train.csv or a submission) into {id: bool mask}; UserError on problems."""
    df = _read_csv(path)
    out = {}
    for i, s in zip(df["id"], df["rle_mask"]):
        try:
            out[i] = decode(s, shape)
        except ValueError as e:
            raise UserError(f"{path}: id {i}: bad RLE: {e}") from None
    return out


def validate_submission(path, expected_ids, shape=SHAPE) -> None:
    """UserError unless `path` is a valid submission: header id,rle_mask, every expected id exactly once,
    no other ids, integer pairs, sorted ascending, non-overlapping, positive lengths, inside the image.
    The file is read a row at a time: the memory holds the ids, never the rows (a submission of the
    competition's 18,000 images is about 50 MB of text)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    expected_ids = list(expected_ids)  # read twice below
    expected = set(expected_ids)
    seen: set[str] = set()
    extra, n_extra, bad = None, 0, None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            header = next(rows, [])
            if header != ["id", "rle_mask"]:
                raise UserError(f"{path}: header must be exactly id,rle_mask, got {','.join(header)}")
            for line, row in enumerate(rows, 2):
                if not row:
                    continue
                if len(row) != 2:
                    raise UserError(f"{path}: row {line} has {len(row)} fields, expected 2 (id,rle_mask)")
                i, s = row
                if not i.strip():
                    raise UserError(f"{path}: empty id on row {line}")
                if i in seen:
                    raise UserError(f"{path}: duplicate id {i}")
                seen.add(i)
                if i not in expected:
                    extra, n_extra = extra or i, n_extra + 1
                elif bad is None:
                    try:
                        _check_pairs(_parse_pairs(s), shape)
                    except ValueError as e:
                        bad = f"{path}: id {i}: bad RLE: {e}"
    except (csv.Error, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable CSV ({type(e).__name__}: {e})") from None
    missing = [i for i in expected_ids if i not in seen]
    if missing:
        raise UserError(f"{path}: missing id {missing[0]} ({len(missing)} missing)")
    if extra is not None:
        raise UserError(f"{path}: unexpected id {extra} ({n_extra} extra)")
    if bad:
        raise UserError(bad)


def write_submission(path, ids, masks, sample_submission=None) -> None:
    """Write a submission CSV (id,rle_mask) atomically, validating it before it is renamed into place.

    ids: sequence of str; masks: bool/0-1 array (N,101,101). With `sample_submission` (a CSV path), rows
    follow its order and the ids must be exactly its ids.
    """
    ids = [str(i) for i in ids]
    masks = np.asarray(masks)
    if masks.ndim != 3 or len(masks) != len(ids):
        raise UserError(f"{path}: need one 2-D mask per id, got {len(ids)} ids and masks of shape {masks.shape}")
    if len(set(ids)) != len(ids):
        raise UserError(f"{path}: duplicate id in the predictions")
    rles = {i: encode(m) for i, m in zip(ids, masks)}
    if sample_submission is not None:
        order = list(_read_csv(sample_submission)["id"])
        missing = [i for i in order if i not in rles]
        if missing:
            raise UserError(f"{sample_submission}: id {missing[0]} has no prediction ({len(missing)} missing)")
        extra = set(ids) - set(order)
        if extra:
            raise UserError(f"{sample_submission}: predicted id {sorted(extra)[0]} is not in it ({len(extra)} extra)")
    else:
        order = ids
    df = pd.DataFrame({"id": order, "rle_mask": [rles[i] for i in order]})
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
        try:
            validate_submission(tmp, order, shape=masks.shape[1:])
        except UserError as e:
            raise UserError(str(e).replace(str(tmp), str(path))) from None
