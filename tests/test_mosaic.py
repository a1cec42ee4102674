"""salt.mosaic: neighbours by edge matching, grids, mosaic.csv and its CLI, post-processing helpers, folds by mosaic."""
import cv2
import numpy as np
import pandas as pd
import pytest

from salt import mosaic
from salt.cli import UserError
from salt.folds import load_or_make_folds, make_folds
from salt.mosaic import (constant_images, dropped_pairs, find_mosaics, find_pairs, leak_share, mosaic_canvas,
                         mosaic_groups, place, propagate_vertical, read_mosaic)
from salt.rle import encode

S = 101


def section(rng, rows, cols) -> np.ndarray:
    """A seismic-like section, float32 (rows*101, cols*101), mean 0 and std 1: warped, dipping layers
    of a few periods, a fine texture and a little noise."""
    h, w = rows * S, cols * S
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)

    def smooth(sigma):
        n = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
        return n / n.std()

    warp = sum(rng.uniform(3, 25) * np.sin(2 * np.pi * x[0] / rng.uniform(80, 600) + rng.uniform(0, 7))
               for _ in range(4))
    depth = y + warp + rng.uniform(-0.3, 0.3) * x + 6 * smooth(15)
    img = sum(rng.uniform(0.4, 1) * np.sin(2 * np.pi * depth / rng.uniform(8, 30) + rng.uniform(0, 7))
              for _ in range(3))
    img = img + 0.5 * smooth(2) + 0.1 * rng.standard_normal((h, w)).astype(np.float32)
    return (img - img.mean()) / img.std()


def cut(rng, sec) -> tuple[np.ndarray, np.ndarray]:
    """Tiles of a section, row by row, each with its own contrast (x0.6..1.4) and brightness (+-30):
    uint8 (N, 101, 101) and their (row, col) on the grid."""
    rows, cols = sec.shape[0] // S, sec.shape[1] // S
    t = sec.reshape(rows, S, cols, S).transpose(0, 2, 1, 3).reshape(-1, S, S)
    a, b = rng.uniform(0.6, 1.4, (len(t), 1, 1)), rng.uniform(-30, 30, (len(t), 1, 1))
    pos = np.stack(np.divmod(np.arange(len(t)), cols), axis=1)
    return np.clip(np.rint(128 + 30 * a * t + b), 0, 255).astype(np.uint8), pos


@pytest.fixture(scope="module")
def tiles():
    """Two sections cut into 6x8 and 4x5 tiles (three tiles of the first made constant), 12 unrelated
    tiles of a third section (no two adjacent) and 4 of noise, shuffled.

    Returns (images, section per tile (-1: unrelated), grid position per tile, true pairs as a set of
    (a, b, side))."""
    rng = np.random.default_rng(7)
    img1, pos1 = cut(rng, section(rng, 6, 8))
    img2, pos2 = cut(rng, section(rng, 4, 5))
    img3, pos3 = cut(rng, section(rng, 6, 8))
    constant = [0, 8 * 2 + 3, 47]  # a corner, one inside, the last
    img1[constant] = np.array([0, 90, 255], np.uint8)[:, None, None]
    apart = (pos3[:, 0] % 2 == 0) & (pos3[:, 1] % 2 == 0)  # every other row and column
    noise = rng.integers(0, 256, (4, S, S)).astype(np.uint8)
    images = np.concatenate([img1, img2, img3[apart], noise])
    sec = np.concatenate([np.zeros(48, int), np.ones(20, int), np.full(apart.sum() + 4, -1)])
    pos = np.concatenate([pos1, pos2, np.zeros((apart.sum() + 4, 2), int)])
    flat = np.zeros(len(images), bool)
    flat[constant] = True
    order = rng.permutation(len(images))
    images, sec, pos, flat = images[order], sec[order], pos[order], flat[order]
    truth = set()
    for a in range(len(images)):
        for b in range(len(images)):
            if sec[a] >= 0 and sec[a] == sec[b] and not flat[a] and not flat[b]:
                d = tuple(pos[b] - pos[a])
                if d in ((1, 0), (0, 1)):
                    truth.add((a, b, "below" if d == (1, 0) else "right"))
    assert len(truth) == 2 * 6 * 8 - 6 - 8 - 2 - 4 - 2 + 2 * 4 * 5 - 4 - 5  # every flat tile loses its edges
    return images, sec, pos, truth, flat


def test_finds_every_true_neighbour_and_no_false_one(tiles):
    images, sec, pos, truth, _ = tiles
    pairs = find_pairs(images)
    found = set(zip(pairs["a"], pairs["b"], pairs["side"]))
    assert found - truth == set(), "false neighbours"
    assert truth - found == set(), "missed neighbours"
    assert pairs["ratio"].is_monotonic_increasing and (pairs["ratio"] < mosaic.RATIO).all()


def test_brightness_and_contrast_do_not_matter(tiles):
    images, sec, pos, truth, flat = tiles
    negative = images.copy()
    negative[::2] = 255 - negative[::2]  # a negative contrast: two negatives still match, one alone does not
    found = find_pairs(negative)
    assert set(zip(found["a"], found["b"], found["side"])) == {t for t in truth if t[0] % 2 == t[1] % 2}
    rescaled = np.clip(np.rint(images * 0.5 + np.arange(len(images))[:, None, None] % 7 * 10), 0, 255)
    found = find_pairs(rescaled.astype(np.uint8))
    assert set(zip(found["a"], found["b"], found["side"])) == truth


def test_mosaics_on_the_right_grid(tiles):
    images, sec, pos, truth, flat = tiles
    ids = [f"t{i:03d}" for i in range(len(images))]
    df = find_mosaics(ids, images)
    assert list(df.columns) == ["id", "mosaic", "row", "col"]
    idx = df["id"].str[1:].astype(int).to_numpy()
    # exactly the tiles of the two sections that are not constant, in two mosaics, largest first
    assert sorted(idx) == sorted(np.flatnonzero((sec >= 0) & ~flat))
    assert df.groupby("mosaic")["id"].size().tolist() == [45, 20]
    for m, part in df.groupby("mosaic"):
        i = part["id"].str[1:].astype(int).to_numpy()
        assert len(set(sec[i])) == 1
        shift = part[["row", "col"]].to_numpy() - pos[i]
        assert (shift == shift[0]).all(), "positions are right up to a translation"
        assert part["row"].min() == 0 and part["col"].min() == 0


def test_flat_edges_and_constant_images_match_nothing(tiles):
    images, *_ = tiles
    assert constant_images(images).sum() == 3
    some = images[:20].copy()
    some[:, 0] = some[:, 0, :1]  # every top row constant: nothing can sit below another tile
    assert (find_pairs(some)["side"] == "right").all()
    assert find_pairs(np.full((5, S, S), 77, np.uint8)).empty


def test_edges_continue_half_a_pixel_to_the_seam():
    """On a section linear in depth, both tiles predict the same seam exactly; their plain edge rows
    (a pixel apart) do not."""
    rng = np.random.default_rng(0)
    f, g = rng.normal(0, 1, S), rng.normal(0, 1, S)
    sec = f[None, :] + (np.arange(2 * S)[:, None] - 100.5) * g[None, :]  # the seam is f
    pair = np.stack([sec[:S], 3 * sec[S:] + 50])  # the lower tile with its own contrast and brightness
    bottom, top, *_ = mosaic._seams(pair)
    assert bottom[0] @ top[1] > 0.9999
    plain = mosaic._unit(np.stack([pair[0, -1], pair[1, 0]]))
    assert plain[0] @ plain[1] < 0.8


def test_near_flat_edges_match_nothing():
    """An edge of a single grey level +-1 is quantisation noise; normalised, it would match any copy of it."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, S, S)).astype(np.uint8)
    stripes = 100 + np.arange(S) // 10 % 2
    images[0, -1], images[0, -2] = stripes, stripes  # bottom of 0
    images[1, 0], images[1, 1] = stripes, stripes  # top of 1
    bottom, top, *_ = mosaic._seams(images)
    assert bottom[0] @ top[1] > 0.999
    assert find_pairs(images).empty


def test_constant_images():
    x = np.zeros((4, S, S), np.uint8)
    x[1] = 200
    x[2, 50, 50] = 1
    x[3] = np.arange(S, dtype=np.uint8)
    assert constant_images(x).tolist() == [True, True, False, False]


def test_place_drops_a_pair_that_contradicts_the_grid():
    # 0 1       tile 4 would be right of 2, on the cell of 3: its pair is the weakest, so it is dropped
    # 2 3(4)
    pairs = pd.DataFrame({"a": [0, 0, 1, 2, 5], "b": [1, 2, 3, 4, 6],
                          "side": ["right", "below", "below", "right", "below"],
                          "ratio": [0.1, 0.2, 0.3, 0.4, 0.35]})
    placed = place(7, pairs)
    got = {i: (m, r, c) for i, m, r, c in placed.itertuples(index=False)}
    assert got == {0: (0, 0, 0), 1: (0, 0, 1), 2: (0, 1, 0), 3: (0, 1, 1), 5: (1, 0, 0), 6: (1, 1, 0)}
    assert dropped_pairs(pairs, placed) == 1
    # the same pair stronger than the one it contradicts wins the cell
    pairs.loc[3, "ratio"] = 0.25
    got = {i: (r, c) for i, m, r, c in place(7, pairs).itertuples(index=False) if m == 0}
    assert got[4] == (1, 1) and 3 not in got


# ------------------------------------------------------------------ mosaic.csv and the command


def write_dataset(root, images, n_train):
    """A Kaggle-layout folder: the first n_train images are train (half with a mask), the rest test."""
    ids = [f"{i:04d}abcd" for i in range(len(images))]
    for d in ("train/images", "train/masks", "test/images"):
        (root / d).mkdir(parents=True)
    rles = []
    for k, (i, img) in enumerate(zip(ids, images)):
        if k < n_train:
            cv2.imwrite(str(root / "train/images" / f"{i}.png"), img)
            mask = np.zeros((S, S), bool)
            mask[60:, :] = k % 2 == 1
            cv2.imwrite(str(root / "train/masks" / f"{i}.png"), mask.astype(np.uint16) * 65535 if mask.any()
                        else np.zeros((S, S), np.uint8))
            rles.append(encode(mask))
        else:
            cv2.imwrite(str(root / "test/images" / f"{i}.png"), img)
    pd.DataFrame({"id": ids[:n_train], "rle_mask": rles}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"id": ids, "z": 100}).to_csv(root / "depths.csv", index=False)
    return ids


def test_cli_writes_mosaic_csv(tiles, tmp_path, call_cli):
    images, sec, pos, truth, flat = tiles
    ids = write_dataset(tmp_path / "data", images, n_train=50)
    code, out, err = call_cli(mosaic.main, ["--data", tmp_path / "data", "--out", tmp_path / "out"])
    assert code == 0, err
    df = read_mosaic(tmp_path / "out" / "mosaic.csv")
    pd.testing.assert_frame_equal(df, find_mosaics(ids, images))
    placed = df["id"].str[:4].astype(int)
    n_train = int((placed < 50).sum())
    line = out.strip()
    assert "\n" not in line
    assert f"2 mosaics, 65 of {len(images)} tiles placed ({n_train} train / {65 - n_train} test)" in line
    assert "largest: 45 tiles on 6 rows x 8 cols" in line and "0 dropped" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cache", "mosaic.csv"]  # no temporary file left


def test_cli_bad_input_names_the_file(data_copy, tmp_path, call_cli):
    bad = sorted((data_copy / "test/images").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:100])
    code, out, err = call_cli(mosaic.main, ["--data", data_copy, "--out", tmp_path / "out"])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and str(bad) in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "mosaic.csv").exists()
    code, _, err = call_cli(mosaic.main, ["--data", tmp_path / "nowhere", "--out", tmp_path / "out"])
    assert code == 2 and "nowhere" in err and err.count("\n") == 1


def test_read_mosaic_refuses_bad_files(tmp_path):
    p = tmp_path / "mosaic.csv"
    p.write_text("id,mosaic,row,col\na,0,0,0\nb,0,0,1\n")
    assert read_mosaic(p)["id"].tolist() == ["a", "b"]
    for text, what in (("id,mosaic,row\na,0,0\n", "missing column"), ("id,mosaic,row,col\na,0,0,0\na,1,0,0\n", "duplicate"),
                       ("id,mosaic,row,col\na,0,0,0\nb,0,0,0\n", "two tiles"), ("id,mosaic,row,col\na,0,x,0\n", "row")):
        p.write_text(text)
        with pytest.raises(UserError, match=what):
            read_mosaic(p)
    with pytest.raises(UserError, match="not found"):
        read_mosaic(tmp_path / "none.csv")


# ------------------------------------------------------------------ post-processing and pictures


def wall(c0, c1, top=0):
    m = np.zeros((S, S), bool)
    m[top:, c0:c1] = True
    return m


def test_propagate_vertical_hand_made():
    # column 0: A (vertical) over B, C (unlabelled), then D (labelled, not vertical), then E (unlabelled)
    # column 1: F (vertical), a missing cell, G (unlabelled)
    # column 2: H (empty), I;  column 3: J (all salt), K;  column 4: L (salt from row 30 down), M
    cells = {"A": (0, 0), "B": (1, 0), "C": (2, 0), "D": (3, 0), "E": (4, 0), "F": (0, 1), "G": (2, 1),
             "H": (0, 2), "I": (1, 2), "J": (0, 3), "K": (1, 3), "L": (0, 4), "M": (1, 4), "N": (0, 5)}
    df = pd.DataFrame([(i, 0, r, c) for i, (r, c) in cells.items()], columns=["id", "mosaic", "row", "col"])
    df.loc[df["id"] == "N", "mosaic"] = 1  # another mosaic: row 1 col 0 there is not below A
    masks = {"A": wall(10, 30), "D": wall(0, 5, top=50), "F": wall(40, 41), "H": wall(0, 0), "J": wall(0, S),
             "L": wall(10, 30, top=30)}
    got = propagate_vertical(masks, df)
    assert sorted(got) == ["B", "C"]
    for i in "BC":
        np.testing.assert_array_equal(got[i], wall(10, 30))
    # with known_ids, masks of other ids are predictions to make, not labels
    masks["B"] = wall(0, 3, top=50)
    got = propagate_vertical(masks, df, known_ids=["A", "D", "F", "H", "J", "L"])
    assert sorted(got) == ["B", "C"]
    assert sorted(propagate_vertical(masks, df)) == []  # B labelled now: A stops there


def test_mosaic_canvas():
    df = pd.DataFrame({"id": ["a", "b", "c", "x"], "mosaic": [0, 0, 0, 1], "row": [0, 0, 1, 0], "col": [0, 1, 1, 0]})
    images = {i: np.full((S, S), v, np.uint8) for i, v in zip("abcx", (10, 20, 30, 40))}
    image, mask = mosaic_canvas(df, 0, images, {"b": wall(0, S)})
    assert image.shape == mask.shape == (2 * S, 2 * S)
    assert image[0, 0] == 10 and image[0, S] == 20 and image[S, S] == 30 and image[S, 0] == 0
    assert mask.sum() == S * S and mask[:S, S:].all()
    assert mosaic_canvas(df, 1, images)[1] is None
    with pytest.raises(ValueError):
        mosaic_canvas(df, 2, images)


# ------------------------------------------------------------------ folds by mosaic


def grouped_set(n=800, seed=0):
    """ids, masks with random coverage, and a mosaic.csv-like frame of n/13 mosaics of 2..9 tiles."""
    rng = np.random.default_rng(seed)
    counts = np.where(rng.random(n) < 0.4, 0, rng.integers(1, S * S, n))
    masks = (np.arange(S * S)[None] < counts[:, None]).reshape(n, S, S)
    ids = [f"i{k:04d}" for k in range(n)]
    sizes = rng.integers(2, 10, n // 13)
    members = rng.permutation(n)[:sizes.sum()]
    m = np.repeat(np.arange(len(sizes)), sizes)
    df = pd.DataFrame({"id": np.array(ids)[members], "mosaic": m, "row": 0, "col": np.arange(len(m))})
    df["col"] -= df.groupby("mosaic")["col"].transform("min")  # each mosaic one row of tiles
    return ids, masks, df


def test_folds_by_mosaic_keep_mosaics_whole_and_stratified():
    ids, masks, mos = grouped_set()
    groups = mosaic_groups(ids, mos)
    assert len(set(groups)) == 800 - len(mos) + mos["mosaic"].nunique()
    df = make_folds(ids, masks, k=5, seed=3, groups=groups)
    assert list(df.columns) == ["id", "fold", "coverage_class", "group"] and df["id"].tolist() == ids
    assert df.groupby("group")["fold"].nunique().max() == 1, "a mosaic is split across folds"
    sizes = df["fold"].value_counts()
    assert len(sizes) == 5 and sizes.min() >= 0.8 * 800 / 5
    overall = df["coverage_class"].value_counts(normalize=True)
    for f in range(5):
        part = df[df["fold"] == f]["coverage_class"].value_counts(normalize=True)
        assert max(abs(part.get(c, 0.0) - p) for c, p in overall.items()) < 0.04, f
    assert leak_share(mos, df) == 0
    assert leak_share(mos, make_folds(ids, masks, k=5, seed=3)) > 0.2  # random folds split most mosaics
    assert make_folds(ids, masks, k=5, seed=3, groups=groups).equals(df)


def test_load_or_make_folds_by_mosaic(tmp_path):
    ids, masks, mos = grouped_set(200, seed=1)
    groups = mosaic_groups(ids, mos)
    df = load_or_make_folds(tmp_path / "m", ids, masks, k=4, seed=2, groups=groups, by="mosaic")
    on_disk = pd.read_csv(tmp_path / "m" / "folds.csv", dtype={"id": str})
    assert on_disk.equals(df) and "group" in on_disk.columns
    assert load_or_make_folds(tmp_path / "m", ids[::-1], masks[::-1], k=4, groups=groups[::-1],
                              by="mosaic").equals(df.iloc[::-1].reset_index(drop=True))
    with pytest.raises(UserError, match="folds.csv: made with folds by mosaic, asked for folds by coverage"):
        load_or_make_folds(tmp_path / "m", ids, masks, k=4)
    load_or_make_folds(tmp_path / "c", ids, masks, k=4)
    with pytest.raises(UserError, match="folds.csv: made with folds by coverage, asked for folds by mosaic"):
        load_or_make_folds(tmp_path / "c", ids, masks, k=4, groups=groups, by="mosaic")
    other = groups.copy()
    other[df["fold"].to_numpy() == 0] = "mosaic:all"  # a group with tiles of folds 0 and 1
    other[df["fold"].to_numpy() == 1] = "mosaic:all"
    with pytest.raises(UserError, match="folds.csv: splits mosaic:all across folds"):
        load_or_make_folds(tmp_path / "m", ids, masks, k=4, groups=other, by="mosaic")
    with pytest.raises(UserError, match="need the mosaic groups"):
        load_or_make_folds(tmp_path / "n", ids, masks, k=4, by="mosaic")
    with pytest.raises(UserError, match="expected one of"):
        load_or_make_folds(tmp_path / "n", ids, masks, k=4, by="depth")
    with pytest.raises(UserError, match="groups"):
        make_folds(ids, masks, k=4, groups=groups[:-1])
    assert not (tmp_path / "n").exists()


def test_real_data_random_folds_leak_and_mosaic_folds_do_not(real_train, real_data):
    from salt.data import load_images

    ts = real_train[0]
    test_ids, test_images = load_images(real_data / "test" / "images", cache_dir=real_train[1])
    mos = find_mosaics(ts.ids + test_ids, np.concatenate([ts.images, test_images]))
    # tiles of the folder's own files; the development copy (3,200 + 1,000) put 334 tiles into 141
    # mosaics, 260 of them training tiles (8% of them)
    files = {f.stem for part in ("train", "test") for f in (real_data / part / "images").glob("*.png")}
    n_tiles = len(files)
    assert set(mos["id"]) <= files and n_tiles == len(ts.ids) + len(test_ids)
    assert mos["mosaic"].nunique() > 1 and mos["id"].isin(set(ts.ids)).sum() > 0.05 * len(ts.ids)
    assert leak_share(mos, make_folds(ts.ids, ts.masks, k=5, seed=42)) > 0.03
    by_mosaic = make_folds(ts.ids, ts.masks, k=5, seed=42, groups=mosaic_groups(ts.ids, mos))
    assert leak_share(mos, by_mosaic) == 0
    assert not constant_images(ts.images)[ts.masks.any(axis=(1, 2))].any()  # constant images hold no salt


def test_a_mosaic_file_without_mosaics_reads_back_empty(tmp_path):
    """Independent tiles (the synthetic demo data) give a header-only mosaic.csv, which must read back."""
    import pandas as pd

    from salt.mosaic import COLUMNS, mosaic_groups, read_mosaic, write

    path = write(tmp_path, pd.DataFrame({c: [] for c in COLUMNS}))
    df = read_mosaic(path)
    assert df.empty and list(df.columns) == COLUMNS and str(df["mosaic"].dtype) == "int64"
    assert list(mosaic_groups(["a", "b"], df)) == ["tile:a", "tile:b"]
