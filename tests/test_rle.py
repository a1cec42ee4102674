"""RLE encode/decode and the submission writer/validator."""
import cv2
import numpy as np
import pandas as pd
import pytest

from salt.cli import UserError
from salt.rle import decode, encode, read_rle_csv, validate_submission, write_submission


def test_hand_worked():
    m = np.zeros((101, 101), bool)
    assert encode(m) == ""
    assert not decode("").any() and decode("").shape == (101, 101) and decode("").dtype == bool
    m[0, 0] = True
    assert encode(m) == "1 1"
    m[1, 0] = m[2, 0] = True  # column-major: pixels 1..3 are rows 0..2 of column 0
    assert encode(m) == "1 3"
    m[0, 1] = True  # row 0 of column 1 is pixel 102
    assert encode(m) == "1 3 102 1"
    m[100, 100] = True  # the last pixel
    assert encode(m) == "1 3 102 1 10201 1"
    np.testing.assert_array_equal(decode("1 3 102 1 10201 1"), m)
    small = np.array([[0, 1, 1], [0, 1, 0]], bool)  # columns: [0,0], [1,1], [1,0]
    assert encode(small) == "3 3"
    np.testing.assert_array_equal(decode("3 3", shape=(2, 3)), small)
    assert encode(np.ones((101, 101), bool)) == "1 10201"


def test_runs_across_columns_and_random_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = rng.random((101, 101)) < rng.uniform(0, 1)
        s = encode(m)
        np.testing.assert_array_equal(decode(s), m)
        # independent check of the format: rebuild with a plain loop
        flat = np.zeros(101 * 101, bool)
        vals = list(map(int, s.split()))
        for start, length in zip(vals[0::2], vals[1::2]):
            flat[start - 1:start - 1 + length] = True
        np.testing.assert_array_equal(flat.reshape(101, 101).T, m)


@pytest.mark.parametrize("bad", ["1", "1 x", "0 5", "5 0", "5 -1", "10 2 5 2", "1 5 3 2", "10200 3", "1.5 2"])
def test_decode_rejects_malformed(bad):
    with pytest.raises(ValueError):
        decode(bad)


def test_adjacent_runs_are_valid():
    np.testing.assert_array_equal(decode("1 2 3 2"), decode("1 4"))


def test_real_train_csv_round_trip(real_data):
    df = pd.read_csv(real_data / "train.csv", dtype=str, keep_default_na=False)
    masks = {f.stem for f in (real_data / "train" / "masks").glob("*.png")}
    assert len(df) == len(masks) and set(df["id"]) == masks  # one row per mask file the folder holds
    for s in df["rle_mask"]:
        assert encode(decode(s)) == s
    # decoded RLE equals the PNG masks, read independently with cv2 (a sample)
    rng = np.random.default_rng(0)
    for k in rng.choice(len(df), 60, replace=False):
        png = cv2.imread(str(real_data / "train" / "masks" / f"{df['id'][k]}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(decode(df["rle_mask"][k]), png > 0)


def test_read_rle_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("id,rle_mask\na,1 3\nb,\n")
    d = read_rle_csv(p)
    assert list(d) == ["a", "b"] and d["a"].sum() == 3 and not d["b"].any()
    p.write_text("id,rle_mask\na,1 3\nb,2 x\n")
    with pytest.raises(UserError, match=r"t\.csv.*\bb\b"):
        read_rle_csv(p)
    with pytest.raises(UserError, match="not found"):
        read_rle_csv(tmp_path / "nope.csv")


def _masks(n, seed=0):
    rng = np.random.default_rng(seed)
    m = np.zeros((n, 101, 101), bool)
    for i in range(1, n):
        r, c = rng.integers(0, 90, size=2)
        m[i, r:r + 10, c:c + 10] = True
    return m


def test_write_submission_follows_sample_order(tmp_path):
    ids = ["c", "a", "b"]
    masks = _masks(3)
    sample = tmp_path / "sample.csv"
    sample.write_text("id,rle_mask\nb,1 1\nc,1 1\na,1 1\n")
    out = tmp_path / "sub.csv"
    write_submission(out, ids, masks, sample_submission=sample)
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df.columns) == ["id", "rle_mask"] and list(df["id"]) == ["b", "c", "a"]
    by_id = dict(zip(ids, masks))
    for i, s in zip(df["id"], df["rle_mask"]):
        np.testing.assert_array_equal(decode(s), by_id[i])
    assert df.set_index("id").loc["c", "rle_mask"] == ""  # empty mask -> empty field
    validate_submission(out, ["a", "b", "c"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.csv", "sub.csv"]


def test_write_submission_without_sample_keeps_order(tmp_path):
    out = tmp_path / "sub.csv"
    write_submission(out, ["z", "y"], _masks(2))
    assert pd.read_csv(out, dtype=str)["id"].tolist() == ["z", "y"]


def test_write_submission_refuses_mismatch_and_writes_nothing(tmp_path):
    sample = tmp_path / "sample.csv"
    sample.write_text("id,rle_mask\na,1 1\nb,1 1\n")
    with pytest.raises(UserError, match="sample.csv"):
        write_submission(tmp_path / "sub.csv", ["a"], _masks(1), sample_submission=sample)
    with pytest.raises(UserError, match="sample.csv"):
        write_submission(tmp_path / "sub.csv", ["a", "b", "x"], _masks(3), sample_submission=sample)
    with pytest.raises(UserError):
        write_submission(tmp_path / "sub.csv", ["a", "a"], _masks(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.csv"]


@pytest.mark.parametrize("body,problem", [
    ("id,rle_mask\na,1 1\n", "missing id b"),
    ("id,rle_mask\na,1 1\nb,\nc,1 1\n", "unexpected id c"),
    ("id,rle_mask\na,1 1\nb,\na,2 1\n", "duplicate id a"),
    ("id,rle_mask\na,1 x\nb,\n", "integer"),
    ("id,rle_mask\na,1 2 3\nb,\n", "odd"),
    ("id,rle_mask\na,10 2 1 2\nb,\n", "sorted"),
    ("id,rle_mask\na,1 5 3 2\nb,\n", "overlap"),
    ("id,rle_mask\na,1 0\nb,\n", "length"),
    ("id,rle_mask\na,10200 5\nb,\n", "past"),
    ("id,rle_mask\na,0 5\nb,\n", "start"),
    ("id,rle\na,1 1\nb,\n", "rle_mask"),
    ("id,rle_mask,extra\na,1 1,0\nb,,0\n", "header"),
])
def test_validator_catches(tmp_path, body, problem):
    p = tmp_path / "sub.csv"
    p.write_text(body)
    with pytest.raises(UserError) as e:
        validate_submission(p, ["a", "b"])
    msg = str(e.value)
    assert "sub.csv" in msg and problem in msg and "\n" not in msg
