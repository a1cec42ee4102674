"""The Kaggle data layout: reading, checking and caching.

DATA/train/images/ID.png   101x101 grey images (three equal 8-bit channels)
DATA/train/masks/ID.png    masks: 16-bit 0/65535 (non-empty) or 8-bit zeros (empty); 8-bit 0/255, 0/1 accepted
DATA/train.csv             id,rle_mask (column-major 1-indexed RLE, empty mask = empty field)
DATA/depths.csv            id,z (every train id; test ids optional)
DATA/test/images/ID.png    test images
DATA/sample_submission.csv id,rle_mask for the test images (optional)

Every problem raises DataError with one line naming the file and what is wrong.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from salt.cli import UserError
from salt.io import atomic_path
from salt.layout import Data

IMG_SIZE = 101
CACHE_VERSION = "1"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


class DataError(UserError):
    """A problem with the input data (one line: file + problem)."""


@dataclass
class TrainSet:
    """The training set in memory, rows in sorted id order."""

    ids: list[str]
    images: np.ndarray  # uint8 (N,101,101)
    masks: np.ndarray  # bool (N,101,101)
    depths: np.ndarray  # float32 (N,)

    def __len__(self) -> int:
        return len(self.ids)


def _decode_png(path) -> np.ndarray:
    """Read a PNG file fully and decode it unchanged; DataError if missing, not a PNG, truncated, unreadable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if not data.startswith(_PNG_SIGNATURE):
        raise DataError(f"{path}: not a PNG file" + (" (empty file)" if not data else ""))
    if data.rfind(_PNG_IEND) < 0:
        raise DataError(f"{path}: truncated PNG (no IEND chunk)")
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataError(f"{path}: unreadable PNG")
    return arr


def _check_size(path, arr) -> None:
    if arr.shape[:2] != (IMG_SIZE, IMG_SIZE):
        raise DataError(f"{path}: wrong image size {arr.shape[1]}x{arr.shape[0]}, expected {IMG_SIZE}x{IMG_SIZE}")


def _one_channel(path, arr) -> np.ndarray:
    """(H,W) from (H,W) or (H,W,3|4) with equal colour channels."""
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        c = arr[:, :, 0]
        if not (np.array_equal(c, arr[:, :, 1]) and np.array_equal(c, arr[:, :, 2])):
            raise DataError(f"{path}: colour channels differ (expected a grey image)")
        return c
    raise DataError(f"{path}: unexpected PNG layout {arr.shape}")


def read_image(path) -> np.ndarray:
    """One image as uint8 (101,101); DataError on any problem."""
    arr = _decode_png(path)
    _check_size(path, arr)
    arr = _one_channel(path, arr)
    if arr.dtype != np.uint8:
        raise DataError(f"{path}: image is {arr.dtype}, expected 8-bit")
    return np.ascontiguousarray(arr)


def read_mask(path) -> np.ndarray:
    """One mask as bool (101,101): 16-bit 0/65535, or 8-bit 0/255 or 0/1; DataError otherwise."""
    arr = _decode_png(path)
    _check_size(path, arr)
    arr = _one_channel(path, arr)
    if arr.dtype == np.uint16:
        allowed = (65535,)
    elif arr.dtype == np.uint8:
        allowed = (255, 1)
    else:
        raise DataError(f"{path}: mask is {arr.dtype}, expected 8- or 16-bit")
    values = np.unique(arr)
    nonzero = values[values != 0]
    if len(nonzero) > 1 or (len(nonzero) == 1 and int(nonzero[0]) not in allowed):
        shown = ", ".join(map(str, values[:6].tolist())) + (", ..." if len(values) > 6 else "")
        want = "0/65535" if arr.dtype == np.uint16 else "0/255 or 0/1"
        raise DataError(f"{path}: mask values {shown} ({arr.dtype}), expected {want}")
    return arr != 0


def fingerprint(ids, images, masks=None) -> str:
    """First 12 hex chars of sha1 over the ids, image bytes (and mask bytes as bool)."""
    h = hashlib.sha1()
    h.update("\n".join(map(str, ids)).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    if masks is not None:
        h.update(np.ascontiguousarray(np.asarray(masks, dtype=bool)).tobytes())
    return h.hexdigest()[:12]


# ---------------------------------------------------------------- helpers


def _need_dir(path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: folder not found")
    return path


def _need_file(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _png_ids(folder: Path) -> dict[str, Path]:
    """{stem: path} of the *.png files in folder."""
    return {e.name[:-4]: Path(e.path) for e in os.scandir(folder) if e.name.endswith(".png") and e.is_file()}


def _read_id_csv(path: Path, columns) -> pd.DataFrame:
    """Read a CSV as strings; DataError if unreadable, columns missing, empty or duplicate ids."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: unreadable CSV ({first})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (need {','.join(columns)})")
    empty = df["id"].str.strip() == ""
    if empty.any():
        raise DataError(f"{path}: empty id on line {int(np.flatnonzero(empty)[0]) + 2}")
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: duplicate id {dup.iloc[0]}")
    return df


def _files_key(paths) -> str:
    """sha1 of names, sizes and mtimes of the given files."""
    h = hashlib.sha1(CACHE_VERSION.encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p.parent.name}/{p.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _cache_load(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:
        return None  # missing or damaged cache: rebuild


def _cache_save(path: Path, **arrays) -> None:
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)  # uncompressed: loads fastest
    except OSError:
        pass  # a cache that cannot be written is not an error


# ---------------------------------------------------------------- loading


def load_images(folder, cache_dir=None) -> tuple[list[str], np.ndarray]:
    """All *.png of a folder (e.g. DATA/test/images): sorted ids (file stems), uint8 (N,101,101)."""
    folder = _need_dir(folder)
    files = _png_ids(folder)
    if not files:
        raise DataError(f"{folder}: no PNG images")
    ids = sorted(files)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"images-{_files_key([files[i] for i in ids])}.npz"
        hit = _cache_load(cache)
        if hit is not None:
            return [str(i) for i in hit["ids"]], hit["images"]
    images = np.stack([read_image(files[i]) for i in ids])
    if cache is not None:
        _cache_save(cache, ids=np.array(ids), images=images)
    return ids, images


def _train_paths(data_dir):
    data_dir = _need_dir(data_dir)
    data = Data(data_dir)
    img_dir = _need_dir(data.train_images)
    mask_dir = _need_dir(data.train_masks)
    csv = _need_file(data.train_csv)
    depths = _need_file(data.depths_csv)
    return data_dir, img_dir, mask_dir, csv, depths


def load_train(data_dir, cache_dir=None) -> TrainSet:
    """Load and check the training set (rows sorted by id).

    Checks: folders and CSVs exist; ids of train.csv, train/images and train/masks agree exactly (no
    duplicates); every PNG readable, complete and 101x101; masks binary; each mask equals its RLE in
    train.csv; depths.csv has a numeric depth for every train id. With cache_dir, the result is cached
    (npz keyed by names, sizes and mtimes of the files) and an unchanged folder loads from the cache.
    """
    from salt.rle import decode

    data_dir, img_dir, mask_dir, csv_path, depth_path = _train_paths(data_dir)
    images_by_id, masks_by_id = _png_ids(img_dir), _png_ids(mask_dir)

    cache = None
    if cache_dir is not None:
        files = [csv_path, depth_path] + [images_by_id[i] for i in sorted(images_by_id)] + \
                [masks_by_id[i] for i in sorted(masks_by_id)]
        cache = Path(cache_dir) / f"train-{_files_key(files)}.npz"
        hit = _cache_load(cache)
        if hit is not None:
            return TrainSet([str(i) for i in hit["ids"]], hit["images"], hit["masks"], hit["depths"])

    df = _read_id_csv(csv_path, ["id", "rle_mask"])
    rles = dict(zip(df["id"], df["rle_mask"]))
    for i in df["id"]:
        if i not in images_by_id:
            raise DataError(f"{csv_path}: id {i} has no image {img_dir / (i + '.png')}")
        if i not in masks_by_id:
            raise DataError(f"{csv_path}: id {i} has no mask {mask_dir / (i + '.png')}")
    for files in (images_by_id, masks_by_id):
        for i, p in sorted(files.items()):
            if i not in rles:
                raise DataError(f"{p}: id {i} is not in {csv_path}")
    ids = sorted(rles)

    images = np.empty((len(ids), IMG_SIZE, IMG_SIZE), dtype=np.uint8)
    masks = np.empty((len(ids), IMG_SIZE, IMG_SIZE), dtype=bool)
    for n, i in enumerate(ids):
        images[n] = read_image(images_by_id[i])
        masks[n] = read_mask(masks_by_id[i])
        try:
            truth = decode(rles[i], (IMG_SIZE, IMG_SIZE))
        except ValueError as e:
            raise DataError(f"{csv_path}: id {i}: bad RLE ({e})") from None
        if not np.array_equal(truth, masks[n]):
            diff = int(np.count_nonzero(truth != masks[n]))
            raise DataError(f"{masks_by_id[i]}: mask disagrees with its RLE in {csv_path.name} ({diff} pixels differ)")

    depths = _read_depths(depth_path, ids)
    out = TrainSet(ids, images, masks, depths)
    if cache is not None:
        _cache_save(cache, ids=np.array(ids), images=images, masks=masks, depths=depths)
    return out


def _read_depths(path: Path, ids) -> np.ndarray:
    df = _read_id_csv(path, ["id", "z"])
    z = pd.to_numeric(df["z"], errors="coerce")
    bad = z.isna() | ~np.isfinite(z.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: id {df['id'].iloc[k]}: depth {df['z'].iloc[k]!r} is not a number")
    by_id = dict(zip(df["id"], z.to_numpy(dtype=np.float32)))
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(f"{path}: no depth for train id {missing[0]} ({len(missing)} missing)")
    return np.array([by_id[i] for i in ids], dtype=np.float32)


def check_sample_submission(path: Path, test_ids) -> None:
    """Raises DataError naming ``path`` when its ids are not exactly the test images' ids."""
    df = _read_id_csv(path, ["id", "rle_mask"])
    have, want = set(df["id"]), set(test_ids)
    extra = sorted(have - want)
    if extra:
        raise DataError(f"{path}: id {extra[0]} has no test image ({len(extra)} such ids)")
    missing = sorted(want - have)
    if missing:
        raise DataError(f"{path}: test image id {missing[0]} is missing ({len(missing)} missing)")


def check_dataset(data_dir) -> dict:
    """Run every check on DATA (train set, test images, sample_submission.csv if present).

    Returns {"train": N, "test": M, "empty_masks": K}; DataError on the first problem.
    """
    data_dir = _need_dir(data_dir)
    train = load_train(data_dir)
    data = Data(data_dir)
    test_ids, _ = load_images(data.test_images)
    overlap = sorted(set(test_ids) & set(train.ids))
    if overlap:
        raise DataError(f"{data.test_images / (overlap[0] + '.png')}: id {overlap[0]} is also a train id")
    sample = data.sample_submission
    if sample.exists():
        check_sample_submission(sample, test_ids)
    empty = int(np.count_nonzero(~train.masks.reshape(len(train), -1).any(axis=1)))
    return {"train": len(train), "test": len(test_ids), "empty_masks": empty}
