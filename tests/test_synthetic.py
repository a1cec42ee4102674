"""The synthetic data generator: layout, statistics, determinism, CLI."""

import cv2
import numpy as np
import pandas as pd
import pytest

from salt.data import check_dataset, load_train
from salt.synthetic import make_dataset


def test_layout_and_formats(synthetic_data):
    d = synthetic_data
    df = pd.read_csv(d / "train.csv", dtype=str, keep_default_na=False)
    assert list(df.columns) == ["id", "rle_mask"] and len(df) == 60
    for i, rle in zip(df["id"][:20], df["rle_mask"][:20]):
        img = cv2.imread(str(d / "train/images" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        assert img.shape == (101, 101, 3) and img.dtype == np.uint8
        assert (img[:, :, 0] == img[:, :, 1]).all() and (img[:, :, 0] == img[:, :, 2]).all()
        m = cv2.imread(str(d / "train/masks" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        assert m.shape == (101, 101)
        if rle:
            assert m.dtype == np.uint16 and set(np.unique(m)) == {0, 65535}
        else:
            assert m.dtype == np.uint8 and not m.any()
    sample = pd.read_csv(d / "sample_submission.csv", dtype=str)
    test_ids = sorted(p.stem for p in (d / "test/images").glob("*.png"))
    assert sorted(sample["id"]) == test_ids and len(test_ids) == 10
    depths = pd.read_csv(d / "depths.csv", dtype={"id": str})
    assert set(depths["id"]) == set(df["id"]) | set(test_ids)
    assert not set(df["id"]) & set(test_ids)


def test_statistics_like_real_labels(synthetic_data):
    assert check_dataset(synthetic_data)["train"] == 60
    ts = load_train(synthetic_data)
    empty = ~ts.masks.any(axis=(1, 2))
    assert 0.3 <= empty.mean() <= 0.5
    assert not ts.masks.all(axis=(1, 2)).any()
    assert ts.masks[:, -1, :].any(axis=1).sum() >= 5  # some run down to the bottom edge
    cover = ts.masks.mean(axis=(1, 2))[~empty]
    assert cover.min() < 0.2 and cover.max() > 0.5  # a range of sizes
    # salt is textured differently: brighter on average than the sediment of the same image
    brighter = [ts.images[k][m].mean() > ts.images[k][~m].mean() for k, m in enumerate(ts.masks) if m.any()]
    assert np.mean(brighter) > 0.8


def test_deterministic_and_seeded(tmp_path):
    a = make_dataset(tmp_path / "a", 12, 3, seed=5)
    b = make_dataset(tmp_path / "b", 12, 3, seed=5)
    c = make_dataset(tmp_path / "c", 12, 3, seed=6)
    assert (a / "train.csv").read_text() == (b / "train.csv").read_text() != (c / "train.csv").read_text()
    i = pd.read_csv(a / "train.csv", dtype=str)["id"][0]
    assert (a / "train/images" / f"{i}.png").read_bytes() == (b / "train/images" / f"{i}.png").read_bytes()


def test_cli(tmp_path, run_module):
    r = run_module("salt.synthetic", tmp_path / "s", "--train", 20, "--test", 4, "--seed", 2)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "s/train/images").glob("*.png"))) == 20
    assert len(list((tmp_path / "s/test/images").glob("*.png"))) == 4
    r = run_module("salt.synthetic", tmp_path / "s", "--train", 20)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1 and "s" in r.stderr
