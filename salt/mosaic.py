"""Mosaics: tiles put back together into the seismic sections they were cut from, by matching edges.

python -m salt.mosaic --data DATA --out OUT   writes OUT/mosaic.csv: id,mosaic,row,col for every train
and test tile placed in a mosaic of two or more tiles (row grows downward, col to the right).

How two tiles are found to touch (A above B; left/right is the same on transposed tiles):

- Each tile continues its own edge half a pixel outward, to the seam it would share with a neighbour:
  A's bottom as 1.5*row[100] - 0.5*row[99], B's top as 1.5*row[0] - 0.5*row[1]. Both are linear
  extrapolations from the last two rows, so they predict the same seam when A and B are neighbours;
  each is smoothed along the edge ([1, 4, 6, 4, 1] / 16, against pixel noise) and z-normalised (mean 0,
  norm 1), which removes each tile's own brightness and contrast.
  Why this one: on the 4,200 real tiles, the mutual best matches with a distance ratio below 0.5 were
  (vertical / horizontal) 42 / 47 comparing A's last row with B's first, 97 / 54 continuing A a whole
  pixel (2*row[100] - row[99]) against B's first row, 111 / 72 with the half-pixel seam and 115 / 80
  with it smoothed; with B's top edges reversed (a null in which no pair is true), no pair passed 0.5
  (1 per direction passed 0.6). The whole pixel doubles the noise and overshoots where layers curve; on the
  synthetic sections of tests/test_mosaic.py the worst true pair's ratio was 0.56..0.88 with it,
  0.37..0.56 with the half-pixel seam and 0.23..0.39 smoothed (4 sections of 8x10 tiles).
- Every bottom edge is compared with every top edge by one matrix product of the normalised edges (in
  blocks of rows, so memory stays small); distance = sqrt(2 - 2 * correlation).
- A pair is kept when each is the other's nearest (mutual best) and its distance is below RATIO times
  the second-best distance on either side (Lowe's ratio test: a chance best match has a close
  runner-up; against both sides' runner-up, the test alone already implies mutual best).
- Flat edges (the boundary row's std below FLAT_STD grey levels; constant images) match nothing:
  normalising them would blow quantisation noise up into a pattern.

Placement: the tile with the surest pair seeds a mosaic at (0, 0); pairs are then followed surest first
(a priority queue). A pair that would put a tile on an occupied cell, or a placed tile on another cell,
contradicts the grid and is dropped. Each mosaic starts at row 0, col 0; mosaics are numbered largest
first.

Speed: on 22,000 synthetic tiles (the competition's 4,000 train + 18,000 test; 22 sections of 25x40
tiles from tests/test_mosaic.py) find_pairs took 15-18 s and place 0.5 s, on 2 cores of an AMD EPYC
(lscpu model name "AMD EPYC"; numpy 2.4 with OpenBLAS; load average 3-4 from other work). It found
42,421 of the 42,570 true pairs and no false one. The 4,200 real tiles take 1.5 s.

Also pure-numpy helpers for post-processing and the report: `constant_images`, `propagate_vertical`,
`mosaic_canvas`, `mosaic_groups` (groups for folds by mosaic, see salt.folds).
"""
from __future__ import annotations

import argparse
import heapq
import time
from pathlib import Path

import numpy as np
import pandas as pd

from salt.cli import UserError, run_cli
from salt.data import IMG_SIZE as SIZE
from salt.data import DataError, load_images, load_train
from salt.io import write_csv
from salt.layout import Data, Out

RATIO = 0.5
FLAT_STD = 1.0
BLOCK = 1024
COLUMNS = ["id", "mosaic", "row", "col"]


# ---------------------------------------------------------------- neighbour search


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows z-normalised to mean 0 and norm 1 (float32); all-zero rows stay zero."""
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def _seams(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bottom, top, bottom_flat, top_flat): each tile's bottom and top edge continued half a pixel
    outward and z-normalised, (N, 101) float32, and whether that edge is flat, (N,) bool."""
    a = images.astype(np.float32)
    bottom = _unit(_smooth(1.5 * a[:, -1] - 0.5 * a[:, -2]))
    top = _unit(_smooth(1.5 * a[:, 0] - 0.5 * a[:, 1]))
    return bottom, top, a[:, -1].std(axis=1) < FLAT_STD, a[:, 0].std(axis=1) < FLAT_STD


def _smooth(x: np.ndarray) -> np.ndarray:
    """Rows smoothed with the binomial kernel [1, 4, 6, 4, 1] / 16 (reflected at the ends)."""
    xp = np.pad(x, ((0, 0), (2, 2)), mode="reflect")
    n = x.shape[1]
    return (xp[:, 0:n] + 4 * xp[:, 1:n + 1] + 6 * xp[:, 2:n + 2] + 4 * xp[:, 3:n + 3] + xp[:, 4:n + 4]) / 16


def _top2(s: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the largest value along axis, the largest and the second-largest value."""
    best = s.argmax(axis=axis)
    first = np.take_along_axis(s, np.expand_dims(best, axis), axis).squeeze(axis)
    np.put_along_axis(s, np.expand_dims(best, axis), -np.inf, axis)
    second = s.max(axis=axis)
    np.put_along_axis(s, np.expand_dims(best, axis), np.expand_dims(first, axis), axis)
    return best, first, second


def _dist(sim: np.ndarray) -> np.ndarray:
    """Euclidean distance of unit vectors from their dot product."""
    return np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0))


def _below_pairs(images: np.ndarray, ratio: float, block: int = BLOCK) -> np.ndarray:
    """(a, b, distance ratio) of tiles where b sits right below a, as an (M, 3) float64 array."""
    bottom, top, bottom_flat, top_flat = _seams(images)
    n = len(images)
    row_best = np.zeros(n, np.int64)
    row_1, row_2 = np.full(n, -np.inf, np.float32), np.full(n, -np.inf, np.float32)
    col_best = np.zeros(n, np.int64)
    col_1, col_2 = np.full(n, -np.inf, np.float32), np.full(n, -np.inf, np.float32)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        s = bottom[lo:hi] @ top.T  # correlations: bottom of tile lo+i with top of tile j
        s[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf  # a tile is not its own neighbour
        s[bottom_flat[lo:hi]] = -np.inf
        s[:, top_flat] = -np.inf
        row_best[lo:hi], row_1[lo:hi], row_2[lo:hi] = _top2(s, axis=1)
        b, v1, v2 = _top2(s, axis=0)
        # merge this block's two best per column into the running two best
        col_2 = np.maximum(np.maximum(col_2, v2), np.minimum(col_1, v1))
        better = v1 > col_1
        col_best[better], col_1[better] = b[better] + lo, v1[better]
    a = np.arange(n)
    b = row_best
    ok = np.isfinite(row_1) & (col_best[b] == a)  # mutual best
    d1 = _dist(row_1)
    d2 = np.minimum(_dist(row_2), _dist(col_2[b]))  # the runner-up on either side
    # no runner-up (every other edge flat): no evidence either way, so no match
    r = np.divide(d1, d2, out=np.ones_like(d1), where=np.isfinite(d2) & (d2 > 0))
    ok &= r < ratio
    return np.stack([a[ok], b[ok], r[ok]], axis=1).astype(np.float64)


def find_pairs(images, ratio: float = RATIO) -> pd.DataFrame:
    """Neighbouring tiles among uint8 (N, 101, 101) images.

    Columns a, b (row indices into images), side ("below": b right below a; "right": b right of a) and
    ratio (best / second-best edge distance, lower = surer), sorted by ratio.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"expected (N, {SIZE}, {SIZE}) images, got {images.shape}")
    parts = []
    for side, imgs in (("below", images), ("right", images.transpose(0, 2, 1))):
        p = _below_pairs(imgs, ratio)
        parts.append(pd.DataFrame({"a": p[:, 0].astype(np.int64), "b": p[:, 1].astype(np.int64),
                                   "side": side, "ratio": p[:, 2]}))
    df = pd.concat(parts, ignore_index=True)
    return df.sort_values(["ratio", "a", "b"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- placement on a grid


def place(n: int, pairs: pd.DataFrame) -> pd.DataFrame:
    """Lay the n tiles of `pairs` (from find_pairs) out on grids.

    Returns columns index, mosaic, row, col for each tile placed in a mosaic of two or more tiles,
    mosaics numbered largest first, each starting at row 0 and col 0. Surest pairs are followed
    first; a pair that contradicts the tiles already placed (its tile would land on an occupied cell,
    or is already placed on another) is dropped.
    """
    step = {"below": (1, 0), "right": (0, 1)}
    links: list[list] = [[] for _ in range(n)]
    for a, b, side, r in pairs[["a", "b", "side", "ratio"]].itertuples(index=False):
        dr, dc = step[side]
        links[a].append((r, a, b, dr, dc))
        links[b].append((r, b, a, -dr, -dc))
    mosaic = np.full(n, -1, np.int64)
    pos = np.zeros((n, 2), np.int64)
    m = 0
    for seed in pairs["a"]:  # seeds in order of their surest pair
        if mosaic[seed] >= 0:
            continue
        mosaic[seed], pos[seed] = m, (0, 0)
        cells = {(0, 0)}
        heap = list(links[seed])
        heapq.heapify(heap)
        while heap:
            _, u, v, dr, dc = heapq.heappop(heap)
            cell = (pos[u, 0] + dr, pos[u, 1] + dc)
            if mosaic[v] >= 0 or cell in cells:
                continue  # agrees with the grid already, or contradicts it: nothing to add
            mosaic[v], pos[v] = m, cell
            cells.add(cell)
            for link in links[v]:
                heapq.heappush(heap, link)
        m += 1
    idx = np.flatnonzero(mosaic >= 0)
    df = pd.DataFrame({"index": idx, "mosaic": mosaic[idx], "row": pos[idx, 0], "col": pos[idx, 1]})
    df = df[df.groupby("mosaic")["index"].transform("size") >= 2].copy()
    g = df.groupby("mosaic")
    df["row"] -= g["row"].transform("min")
    df["col"] -= g["col"].transform("min")
    size = g["index"].transform("size")
    first = g["index"].transform("min")
    order = pd.DataFrame({"size": -size, "first": first}).drop_duplicates().sort_values(["size", "first"])
    renumber = dict(zip(order["first"], range(len(order))))
    df["mosaic"] = first.map(renumber)
    return df.sort_values(["mosaic", "row", "col"]).reset_index(drop=True)


def find_mosaics(ids, images, ratio: float = RATIO) -> pd.DataFrame:
    """id, mosaic, row, col of every tile placed in a mosaic of two or more (sorted by mosaic, row, col)."""
    ids = np.asarray([str(i) for i in ids])
    if len(ids) != len(images):
        raise ValueError(f"{len(ids)} ids but {len(images)} images")
    return _named(ids, place(len(ids), find_pairs(images, ratio)))


def _named(ids: np.ndarray, placed: pd.DataFrame) -> pd.DataFrame:
    """place()'s output with tile indices replaced by ids (the columns of mosaic.csv)."""
    return pd.DataFrame({"id": ids[placed["index"].to_numpy()], "mosaic": placed["mosaic"],
                         "row": placed["row"], "col": placed["col"]})


def dropped_pairs(pairs: pd.DataFrame, placed: pd.DataFrame) -> int:
    """How many pairs (from find_pairs) the placement (from place) does not honour."""
    n = int(max(pairs[["a", "b"]].to_numpy().max(initial=-1), placed["index"].max() if len(placed) else -1)) + 1
    where = np.full((n, 3), -1, np.int64)  # mosaic, row, col per tile index
    where[placed["index"].to_numpy()] = placed[["mosaic", "row", "col"]].to_numpy()
    a, b = where[pairs["a"].to_numpy()], where[pairs["b"].to_numpy()]
    below = (pairs["side"] == "below").to_numpy()
    step = np.stack([below, ~below], axis=1).astype(np.int64)
    ok = (a[:, 0] >= 0) & (a[:, 0] == b[:, 0]) & (b[:, 1:] - a[:, 1:] == step).all(axis=1)
    return int(np.count_nonzero(~ok))


# ---------------------------------------------------------------- mosaic.csv


def write(out_dir, df: pd.DataFrame) -> Path:
    """Write OUT/mosaic.csv (id,mosaic,row,col) atomically; returns its path."""
    path = Out(out_dir).mosaic_csv
    write_csv(path, df[COLUMNS])
    return path


def read_mosaic(path) -> pd.DataFrame:
    """OUT/mosaic.csv as a DataFrame (id str, mosaic/row/col int); UserError naming the file if it is
    unreadable, lacks a column, repeats an id or puts two tiles on one cell."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found; make it with python -m salt.mosaic")
    try:
        df = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    except Exception as e:
        raise UserError(f"{path}: unreadable CSV ({type(e).__name__})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (need {','.join(COLUMNS)})")
    if df.empty:  # no mosaic found (independent tiles): pandas reads the header-only columns as text
        return df[COLUMNS].astype({"id": str, "mosaic": np.int64, "row": np.int64, "col": np.int64})
    for c in COLUMNS[1:]:
        if not pd.api.types.is_integer_dtype(df[c]) or (df[c] < 0).any():
            raise UserError(f"{path}: column {c} must hold whole numbers >= 0")
    if df["id"].duplicated().any():
        raise UserError(f"{path}: duplicate id {df['id'][df['id'].duplicated()].iloc[0]}")
    cell = df.duplicated(["mosaic", "row", "col"])
    if cell.any():
        m, r, c = df.loc[cell, ["mosaic", "row", "col"]].iloc[0]
        raise UserError(f"{path}: two tiles on mosaic {m} row {r} col {c}")
    return df[COLUMNS].astype({"mosaic": np.int64, "row": np.int64, "col": np.int64})


def mosaic_groups(ids, mosaic_df: pd.DataFrame) -> np.ndarray:
    """Group label per id for folds by mosaic: "mosaic:N" for a tile of mosaic N, else "tile:ID"
    (a tile outside every mosaic is a group of its own)."""
    by_id = dict(zip(mosaic_df["id"].astype(str), mosaic_df["mosaic"]))
    return np.array([f"mosaic:{by_id[i]}" if i in by_id else f"tile:{i}" for i in map(str, ids)], dtype=object)


def leak_share(mosaic_df: pd.DataFrame, folds_df: pd.DataFrame) -> float:
    """Share of the tiles of folds_df (columns id, fold) that have a direct neighbour (the cell above,
    below, left or right in their mosaic) in another fold: validation tiles whose neighbour was trained on."""
    where = mosaic_df.merge(folds_df[["id", "fold"]], on="id")
    cells = {(m, r, c): f for m, r, c, f in where[["mosaic", "row", "col", "fold"]].itertuples(index=False)}
    leaks = sum(any(cells.get((m, r + dr, c + dc), f) != f for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)))
                for (m, r, c), f in cells.items())
    return leaks / max(len(folds_df), 1)


# ---------------------------------------------------------------- post-processing and pictures


def constant_images(images) -> np.ndarray:
    """bool (N,): every pixel of the image has the same value. Such a tile is predicted empty: the
    59 constant images among the competition's 3,200 train images all have empty masks. Their flat
    edges also keep them out of every mosaic."""
    flat = np.asarray(images).reshape(len(images), -1)
    return (flat == flat[:, :1]).all(axis=1)


def is_vertical(mask) -> bool:
    """All rows of the mask are equal, and the row is neither empty nor all salt."""
    m = np.asarray(mask, dtype=bool)
    return bool((m == m[-1]).all() and m[-1].any() and not m[-1].all())


def propagate_vertical(masks_by_id: dict, mosaic_df: pd.DataFrame, known_ids=None) -> dict:
    """Masks for unlabelled tiles that lie below a vertical mask, {id: bool (101, 101)}.

    Labelled tiles are the ids of `known_ids` that have a mask in `masks_by_id` (default: every id of
    masks_by_id); pass the training part of a fold to predict its validation part. Down each column
    of each mosaic, a labelled tile whose mask is vertical (is_vertical: all rows equal, not empty,
    not all salt: a salt wall cut by the tile's bottom edge) continues into the tile right below it:
    that tile gets the labelled tile's bottom row on every row, and so on down the column, until the
    next labelled tile or a missing cell. Labelled tiles are never overwritten, and nothing flows
    upward or sideways.
    """
    known = set(masks_by_id) if known_ids is None else {str(i) for i in known_ids} & set(masks_by_id)
    cells = {(m, r, c): str(i) for i, m, r, c in mosaic_df[COLUMNS].itertuples(index=False)}
    out = {}
    for (m, r, c), i in cells.items():
        if i not in known or not is_vertical(masks_by_id[i]):
            continue
        wall = np.repeat(np.asarray(masks_by_id[i], dtype=bool)[-1:], SIZE, axis=0)
        r += 1
        while (m, r, c) in cells and cells[(m, r, c)] not in known:
            out[cells[(m, r, c)]] = wall.copy()
            r += 1
    return out


def mosaic_canvas(mosaic_df: pd.DataFrame, mosaic_id: int, images_by_id: dict, masks_by_id: dict | None = None):
    """One mosaic laid out as a picture: (image uint8 (rows*101, cols*101), mask bool of that shape or
    None). Every tile of the mosaic must be in images_by_id; tiles without a mask in masks_by_id have
    an empty mask, cells without a tile are black. Each tile keeps its own brightness and contrast."""
    tiles = mosaic_df[mosaic_df["mosaic"] == mosaic_id]
    if tiles.empty:
        raise ValueError(f"no mosaic {mosaic_id}")
    h, w = (int(tiles["row"].max()) + 1) * SIZE, (int(tiles["col"].max()) + 1) * SIZE
    image = np.zeros((h, w), np.uint8)
    mask = None if masks_by_id is None else np.zeros((h, w), bool)
    for i, r, c in tiles[["id", "row", "col"]].itertuples(index=False):
        cell = np.s_[r * SIZE:(r + 1) * SIZE, c * SIZE:(c + 1) * SIZE]
        image[cell] = images_by_id[i]
        if mask is not None and i in masks_by_id:
            mask[cell] = masks_by_id[i]
    return image, mask


# ---------------------------------------------------------------- command line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m salt.mosaic",
                                 description="Find neighbouring tiles among the train and test images and "
                                             "write OUT/mosaic.csv (id,mosaic,row,col).")
    ap.add_argument("--data", type=Path, required=True, help="data folder in the Kaggle layout")
    ap.add_argument("--out", type=Path, required=True, help="output folder (mosaic.csv; cache/ for the data)")
    ap.add_argument("--ratio", type=float, default=RATIO,
                    help=f"ratio test: best / second-best edge distance must be below this (default {RATIO})")
    args = ap.parse_args(argv)
    if not 0 < args.ratio <= 1:
        raise UserError(f"--ratio must be in (0, 1], got {args.ratio}")
    train = load_train(args.data, cache_dir=Out(args.out).cache)
    test_dir = Data(args.data).test_images
    test_ids, test_images = load_images(test_dir, cache_dir=Out(args.out).cache)
    both = sorted(set(train.ids) & set(test_ids))
    if both:
        raise DataError(f"{test_dir / (both[0] + '.png')}: id {both[0]} is also a train id")
    ids = np.array(list(train.ids) + list(test_ids))
    t0 = time.perf_counter()
    pairs = find_pairs(np.concatenate([train.images, test_images]), args.ratio)
    placed = place(len(ids), pairs)
    seconds = time.perf_counter() - t0
    df = _named(ids, placed)
    path = write(args.out, df)
    n_train = int(df["id"].isin(set(train.ids)).sum())
    line = (f"{df['mosaic'].nunique()} mosaics, {len(df)} of {len(ids)} tiles placed "
            f"({n_train} train / {len(df) - n_train} test)")
    if len(df):
        big = df[df["mosaic"] == 0]  # numbered largest first
        line += f"; largest: {len(big)} tiles on {big['row'].max() + 1} rows x {big['col'].max() + 1} cols"
    print(f"{line}; {len(pairs)} edge pairs, {dropped_pairs(pairs, placed)} dropped by the grid; "
          f"{seconds:.1f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
