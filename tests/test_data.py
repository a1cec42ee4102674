"""salt.data and `python -m salt.check`: loading, every bad-input case, the cache, the real data."""
import os
import shutil
import time

import cv2
import numpy as np
import pandas as pd
import pytest

from salt import check
from salt.data import (DataError, check_dataset, fingerprint, load_images, load_train, read_image,
                       read_mask)


def first_id(data):
    return pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)["id"].iloc[0]


def nonempty_id(data):
    df = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    return df["id"][df["rle_mask"] != ""].iloc[0]


def folder_counts(data):
    """What a Kaggle-layout folder itself holds, counted without salt.data: the rows of train.csv, its
    training images and masks, its test images."""
    with open(data / "train.csv") as f:
        rows = sum(1 for line in f if line.strip()) - 1  # less the header
    pngs = {part: len([n for n in os.listdir(data / part) if n.endswith(".png")])
            for part in ("train/images", "train/masks", "test/images")}
    return rows, pngs


# ------------------------------------------------------------------ good data


def test_load_train_synthetic(synthetic_data):
    ts = load_train(synthetic_data)
    df = pd.read_csv(synthetic_data / "train.csv", dtype=str, keep_default_na=False)
    assert ts.ids == sorted(df["id"])
    assert ts.images.shape == (60, 101, 101) and ts.images.dtype == np.uint8
    assert ts.masks.shape == (60, 101, 101) and ts.masks.dtype == bool
    assert ts.depths.shape == (60,) and ts.depths.dtype == np.float32
    k = 7
    raw = cv2.imread(str(synthetic_data / "train/images" / f"{ts.ids[k]}.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(ts.images[k], raw[:, :, 0])
    depths = pd.read_csv(synthetic_data / "depths.csv", dtype={"id": str}).set_index("id")["z"]
    assert ts.depths[k] == depths[ts.ids[k]]


def test_check_dataset_and_cli(synthetic_data, call_cli):
    s = check_dataset(synthetic_data)
    assert s == {"train": 60, "test": 10, "empty_masks": 24}
    code, out, err = call_cli(check.main, [synthetic_data])
    assert code == 0 and err == ""
    line = out.strip()
    assert "\n" not in line and "60 train" in line and "10 test" in line and "24 empty" in line


def test_mask_formats_accepted(tmp_path):
    ref = np.zeros((101, 101), bool)
    ref[40:, 10:60] = True
    for arr in (ref.astype(np.uint16) * 65535, ref.astype(np.uint8) * 255, ref.astype(np.uint8),
                np.zeros((101, 101), np.uint8), np.zeros((101, 101), np.uint16)):
        cv2.imwrite(str(tmp_path / "m.png"), arr)
        np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), arr > 0)


def test_load_images(synthetic_data, tmp_path):
    ids, images = load_images(synthetic_data / "test" / "images")
    assert ids == sorted(p.stem for p in (synthetic_data / "test" / "images").glob("*.png"))
    assert images.shape == (10, 101, 101) and images.dtype == np.uint8
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no PNG"):
        load_images(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        load_images(tmp_path / "nope")
    cv2.imwrite(str(tmp_path / "empty" / "x.png"), np.zeros((101, 100), np.uint8))
    with pytest.raises(DataError, match=r"x\.png.*size"):
        load_images(tmp_path / "empty")


def test_fingerprint(synthetic_data):
    ts = load_train(synthetic_data)
    f = fingerprint(ts.ids, ts.images, ts.masks)
    assert len(f) == 12 and int(f, 16) >= 0
    assert fingerprint(list(ts.ids), ts.images.copy(), ts.masks.copy()) == f
    assert fingerprint(ts.ids, ts.images) != f
    images = ts.images.copy()
    images[3, 5, 5] ^= 1
    assert fingerprint(ts.ids, images, ts.masks) != f
    masks = ts.masks.copy()
    masks[3, 5, 5] ^= True
    assert fingerprint(ts.ids, ts.images, masks) != f
    assert fingerprint(ts.ids[::-1], ts.images, ts.masks) != f


# ------------------------------------------------------------------ bad data


def _write_mask_values(path, values):
    m = np.zeros((101, 101), np.uint8)
    m[50:, :] = values[0]
    m[70:, :] = values[-1]
    cv2.imwrite(str(path), m)


def _csv_edit(path, fn):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    fn(df).to_csv(path, index=False)


def break_missing_dir(d, i):
    shutil.rmtree(d / "train" / "masks")
    return "masks"


def break_missing_train_csv(d, i):
    (d / "train.csv").unlink()
    return "train.csv"


def break_missing_depths(d, i):
    (d / "depths.csv").unlink()
    return "depths.csv"


def break_garbage_png(d, i):
    (d / "train/images" / f"{i}.png").write_bytes(b"hello, not a png\n" * 10)
    return f"{i}.png"


def break_truncated_image(d, i):
    p = d / "train/images" / f"{i}.png"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return f"{i}.png"


def break_truncated_mask(d, i):
    p = d / "train/masks" / f"{i}.png"
    data = p.read_bytes()
    p.write_bytes(data[:-20])
    return f"{i}.png"


def break_empty_file(d, i):
    (d / "train/images" / f"{i}.png").write_bytes(b"")
    return f"{i}.png"


def break_image_size(d, i):
    cv2.imwrite(str(d / "train/images" / f"{i}.png"), np.zeros((101, 128, 3), np.uint8))
    return f"{i}.png"


def break_mask_size(d, i):
    cv2.imwrite(str(d / "train/masks" / f"{i}.png"), np.zeros((100, 101), np.uint8))
    return f"{i}.png"


def break_mask_values_0_7(d, i):
    _write_mask_values(d / "train/masks" / f"{i}.png", [7])
    return f"{i}.png"


def break_mask_grey_levels(d, i):
    _write_mask_values(d / "train/masks" / f"{i}.png", [128, 255])
    return f"{i}.png"


def break_mask_16bit_values(d, i):
    m = np.zeros((101, 101), np.uint16)
    m[60:] = 1000
    cv2.imwrite(str(d / "train/masks" / f"{i}.png"), m)
    return f"{i}.png"


def break_id_without_image(d, i):
    (d / "train/images" / f"{i}.png").unlink()
    return i


def break_id_without_mask(d, i):
    (d / "train/masks" / f"{i}.png").unlink()
    return i


def break_image_without_id(d, i):
    _csv_edit(d / "train.csv", lambda df: df[df["id"] != i])
    return i


def break_duplicate_id(d, i):
    _csv_edit(d / "train.csv", lambda df: pd.concat([df, df[df["id"] == i]]))
    return i


def break_mask_disagrees_with_rle(d, i):
    p = d / "train/masks" / f"{i}.png"
    m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    m[0, 0] = 65535 if m[0, 0] == 0 else 0
    cv2.imwrite(str(p), m.astype(np.uint16))
    return f"{i}.png"


def break_bad_rle(d, i):
    _csv_edit(d / "train.csv", lambda df: df.assign(rle_mask=np.where(df["id"] == i, "5 x", df["rle_mask"])))
    return i


def break_depth_missing(d, i):
    _csv_edit(d / "depths.csv", lambda df: df[df["id"] != i])
    return i


def break_depth_not_number(d, i):
    _csv_edit(d / "depths.csv", lambda df: df.assign(z=np.where(df["id"] == i, "deep", df["z"])))
    return "depths.csv"


def break_csv_column(d, i):
    _csv_edit(d / "train.csv", lambda df: df.rename(columns={"rle_mask": "mask"}))
    return "rle_mask"


TRAIN_BREAKS = [break_missing_dir, break_missing_train_csv, break_missing_depths, break_garbage_png,
                break_truncated_image, break_truncated_mask, break_empty_file, break_image_size,
                break_mask_size, break_mask_values_0_7, break_mask_grey_levels, break_mask_16bit_values,
                break_id_without_image, break_id_without_mask, break_image_without_id, break_duplicate_id,
                break_mask_disagrees_with_rle, break_bad_rle, break_depth_missing, break_depth_not_number,
                break_csv_column]


def break_test_image_size(d, i):
    p = next((d / "test/images").glob("*.png"))
    cv2.imwrite(str(p), np.zeros((50, 50, 3), np.uint8))
    return p.name


def break_test_folder_missing(d, i):
    shutil.rmtree(d / "test")
    return "test"


def break_sample_extra_id(d, i):
    _csv_edit(d / "sample_submission.csv",
              lambda df: pd.concat([df, pd.DataFrame({"id": ["ffffffffff"], "rle_mask": ["1 1"]})]))
    return "ffffffffff"


def break_sample_missing_id(d, i):
    _csv_edit(d / "sample_submission.csv", lambda df: df.iloc[1:])
    return "sample_submission.csv"


CHECK_BREAKS = [break_test_image_size, break_test_folder_missing, break_sample_extra_id, break_sample_missing_id]


def _listing(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.mark.parametrize("breaker", TRAIN_BREAKS, ids=lambda f: f.__name__[6:])
def test_bad_train_data(data_copy, breaker, call_cli):
    name = breaker(data_copy, nonempty_id(data_copy))
    with pytest.raises(DataError) as e:
        load_train(data_copy, cache_dir=data_copy.parent / "cache")
    assert name in str(e.value) and "\n" not in str(e.value)
    assert not (data_copy.parent / "cache").exists()  # nothing written
    before = _listing(data_copy)
    code, out, err = call_cli(check.main, [data_copy])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and name in err
    assert _listing(data_copy) == before


@pytest.mark.parametrize("breaker", CHECK_BREAKS, ids=lambda f: f.__name__[6:])
def test_bad_test_data(data_copy, breaker, call_cli):
    name = breaker(data_copy, None)
    load_train(data_copy)  # the training part is still fine
    with pytest.raises(DataError, match=name):
        check_dataset(data_copy)
    code, out, err = call_cli(check.main, [data_copy])
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and name in err


def test_missing_data_folder(tmp_path):
    with pytest.raises(DataError, match="nope.*not found"):
        load_train(tmp_path / "nope")


def test_depth_of_test_ids_optional(data_copy):
    ids = set(pd.read_csv(data_copy / "train.csv", dtype=str)["id"])
    _csv_edit(data_copy / "depths.csv", lambda df: df[df["id"].isin(ids)])
    assert check_dataset(data_copy)["test"] == 10


@pytest.mark.parametrize("breaker", [break_truncated_image, break_mask_values_0_7, break_id_without_mask],
                         ids=lambda f: f.__name__[6:])
def test_check_cli_subprocess(data_copy, breaker, run_module):
    name = breaker(data_copy, nonempty_id(data_copy))
    r = run_module("salt.check", data_copy)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1 and name in r.stderr
    assert "Traceback" not in r.stderr and "libpng" not in r.stderr


# ------------------------------------------------------------------ cache


def _no_png_reads(monkeypatch):
    """Makes any PNG decode fail, so that a load can only succeed from the cache."""
    import salt.data

    def refuse(path):
        raise AssertionError(f"{path} was read although the cache should serve it")

    monkeypatch.setattr(salt.data, "_decode_png", refuse)


def test_cache_hit_and_invalidation(data_copy, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    a = load_train(data_copy, cache_dir=cache)
    with monkeypatch.context() as m:
        _no_png_reads(m)
        b = load_train(data_copy, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1
    assert a.ids == b.ids and isinstance(b.ids[0], str)
    for x, y in ((a.images, b.images), (a.masks, b.masks), (a.depths, b.depths)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)

    # a changed image (new content, new mtime) is seen
    i = a.ids[3]
    p = data_copy / "train/images" / f"{i}.png"
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    img[0, 0] = 255 - img[0, 0]
    cv2.imwrite(str(p), img)
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    c = load_train(data_copy, cache_dir=cache)
    assert c.images[3, 0, 0] == img[0, 0, 0] != a.images[3, 0, 0]
    assert len(list(cache.glob("*.npz"))) == 2

    # a touched mask invalidates the cache too, and a broken file is then caught
    m = data_copy / "train/masks" / f"{nonempty_id(data_copy)}.png"
    m.write_bytes(m.read_bytes()[:-20])
    with pytest.raises(DataError, match="truncated"):
        load_train(data_copy, cache_dir=cache)


def test_load_images_cache(synthetic_data, tmp_path):
    a = load_images(synthetic_data / "test/images", cache_dir=tmp_path)
    b = load_images(synthetic_data / "test/images", cache_dir=tmp_path)
    assert a[0] == b[0] and len(list(tmp_path.glob("*.npz"))) == 1
    np.testing.assert_array_equal(a[1], b[1])


# ------------------------------------------------------------------ real data


def test_real_data_cached_load(real_train, real_data, monkeypatch):
    ts, cache, uncached = real_train
    rows, pngs = folder_counts(real_data)
    assert rows == pngs["train/images"] == pngs["train/masks"]  # the folder agrees with itself
    assert len(ts) == rows and ts.images.shape == (rows, 101, 101) and ts.masks.shape == (rows, 101, 101)
    empty = int((~ts.masks.any(axis=(1, 2))).sum())
    assert 0.3 < empty / rows < 0.5 and not ts.masks.all(axis=(1, 2)).any()
    _no_png_reads(monkeypatch)
    t0 = time.perf_counter()
    again = load_train(real_data, cache_dir=cache)
    print(f"real train load: uncached {uncached:.2f}s, cached {time.perf_counter() - t0:.3f}s")
    assert again.ids == ts.ids
    np.testing.assert_array_equal(again.images, ts.images)
    np.testing.assert_array_equal(again.masks, ts.masks)


def test_check_cli_real_data(real_data, run_module):
    r = run_module("salt.check", real_data)
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    rows, pngs = folder_counts(real_data)
    assert "\n" not in line and f" {rows} train" in line and f" {pngs['test/images']} test" in line
