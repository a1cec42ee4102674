"""Coverage classes and the stratified K-fold split."""
import numpy as np
import pandas as pd
import pytest

from salt.cli import UserError
from salt.folds import coverage_decile, load_or_make_folds, make_folds


def masks_with_counts(counts):
    m = np.zeros((len(counts), 101 * 101), bool)
    for i, c in enumerate(counts):
        m[i, :c] = True
    return m.reshape(-1, 101, 101)


def test_coverage_decile_hand_worked():
    # 10201 pixels: 10% is 1020.1 pixels
    counts = [0, 1, 1020, 1021, 2040, 2041, 5100, 5101, 9180, 9181, 10200, 10201]
    expected = [0, 1, 1, 2, 2, 3, 5, 6, 9, 10, 10, 10]
    assert coverage_decile(masks_with_counts(counts)).tolist() == expected


def random_masks(n, seed=0):
    rng = np.random.default_rng(seed)
    counts = np.where(rng.random(n) < 0.4, 0, rng.integers(1, 10202, size=n))
    return masks_with_counts(counts)


def test_make_folds_stratified_disjoint_covering_stable():
    n, k = 1000, 5
    masks = random_masks(n)
    ids = [f"id{i:04d}" for i in range(n)]
    df = make_folds(ids, masks, k=k, seed=42)
    assert list(df.columns) == ["id", "fold", "coverage_class"]
    assert df["id"].tolist() == ids  # input order, every id once
    assert sorted(df["fold"].unique()) == list(range(k))
    assert df["coverage_class"].tolist() == coverage_decile(masks).tolist()
    sizes = df["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1 + 11  # near-equal fold sizes
    overall = df["coverage_class"].value_counts(normalize=True)
    for f in range(k):
        part = df[df["fold"] == f]["coverage_class"].value_counts(normalize=True)
        for c, p in overall.items():
            assert abs(part.get(c, 0.0) - p) < 0.02, (f, c)
    assert make_folds(ids, masks, k=k, seed=42).equals(df)
    assert not make_folds(ids, masks, k=k, seed=1)["fold"].equals(df["fold"])


def test_bad_k():
    masks = random_masks(20)
    ids = [str(i) for i in range(20)]
    for k in (1, 0):
        with pytest.raises(UserError):
            make_folds(ids, masks, k=k)
    with pytest.raises(UserError):
        make_folds(ids[:3], masks[:3], k=5)


def test_load_or_make_folds(tmp_path):
    masks = random_masks(100, seed=3)
    ids = [f"x{i}" for i in range(100)]
    out = tmp_path / "out"
    df = load_or_make_folds(out, ids, masks, k=4, seed=7)
    on_disk = pd.read_csv(out / "folds.csv", dtype={"id": str})
    assert on_disk.equals(df)
    assert [p.name for p in out.iterdir()] == ["folds.csv"]
    # reused as is, whatever the seed, in the order of the given ids
    again = load_or_make_folds(out, ids[::-1], masks[::-1], k=4, seed=99)
    assert again.equals(df.iloc[::-1].reset_index(drop=True))
    with pytest.raises(UserError, match="folds.csv"):
        load_or_make_folds(out, ids[:-1], masks[:-1], k=4)
    with pytest.raises(UserError, match="folds.csv"):
        load_or_make_folds(out, ids[:-1] + ["other"], masks, k=4)
    with pytest.raises(UserError, match="folds.csv.*k=5"):
        load_or_make_folds(out, ids, masks, k=5)
    with pytest.raises(UserError):
        load_or_make_folds(tmp_path / "new", ids, masks, k=1)
    assert not (tmp_path / "new" / "folds.csv").exists()


def test_real_folds_stratified(real_train):
    ts = real_train[0]
    df = make_folds(ts.ids, ts.masks, k=5, seed=42)
    assert (df["coverage_class"] == 0).sum() == (~ts.masks.any(axis=(1, 2))).sum()
    table = pd.crosstab(df["coverage_class"], df["fold"])
    assert (table.max(axis=1) - table.min(axis=1)).max() <= 1


def test_run_fingerprint_changes_with_data_and_folds(tmp_path):
    from salt.data import TrainSet
    from salt.folds import run_fingerprint

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 101, 101), dtype=np.uint8)
    masks = rng.random((4, 101, 101)) > 0.5
    train = TrainSet(["a", "b", "c", "d"], images, masks, np.zeros(4, np.float32))
    folds = tmp_path / "folds.csv"
    folds.write_text("id,fold,coverage_class\na,0,1\nb,1,1\nc,0,1\nd,1,1\n")
    fp = run_fingerprint(train, folds)
    assert run_fingerprint(train, folds) == fp
    changed = images.copy()
    changed[0, 0, 0] ^= 1
    assert run_fingerprint(TrainSet(train.ids, changed, masks, train.depths), folds) != fp
    assert run_fingerprint(TrainSet(train.ids, images, ~masks, train.depths), folds) != fp
    folds.write_text("id,fold,coverage_class\na,1,1\nb,0,1\nc,0,1\nd,1,1\n")
    assert run_fingerprint(train, folds) != fp
