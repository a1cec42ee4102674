"""`make data`: the Kaggle download (one zip of train.zip, test.zip and the CSVs) into the Kaggle layout."""
from __future__ import annotations

import io
import zipfile

import numpy as np

from salt.data import load_train
from salt.kaggle import main


def _competition_zip(src, path):
    """A zip shaped like the Kaggle CLI's download, built from a Kaggle-layout folder."""
    def inner(split, folders):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for folder in folders:
                for f in sorted((src / split / folder).glob("*.png")):
                    z.write(f, f"{folder}/{f.name}")
        return buf.getvalue()

    with zipfile.ZipFile(path, "w") as z:
        z.writestr("train.zip", inner("train", ["images", "masks"]))
        z.writestr("test.zip", inner("test", ["images"]))
        for name in ("train.csv", "depths.csv", "sample_submission.csv"):
            z.write(src / name, name)


def test_unpacks_the_download(synthetic_data, tmp_path, call_cli):
    _competition_zip(synthetic_data, tmp_path / "dl.zip")
    code, out, err = call_cli(main, ["--zip", tmp_path / "dl.zip", "--data", tmp_path / "tgs"])
    assert code == 0, err
    got, want = load_train(tmp_path / "tgs"), load_train(synthetic_data)
    assert got.ids == want.ids
    np.testing.assert_array_equal(got.images, want.images)
    np.testing.assert_array_equal(got.masks, want.masks)
    assert sorted(p.name for p in (tmp_path / "tgs" / "test" / "images").iterdir()) == \
        sorted(p.name for p in (synthetic_data / "test" / "images").iterdir())


def test_without_download_says_what_to_run(tmp_path, call_cli):
    code, out, err = call_cli(main, ["--zip", tmp_path / "missing.zip", "--data", tmp_path / "tgs"])
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert "kaggle competitions download -c tgs-salt-identification-challenge" in err
    assert not (tmp_path / "tgs").exists()


def test_broken_download_writes_nothing(synthetic_data, tmp_path, call_cli):
    (tmp_path / "dl.zip").write_bytes(b"PK\x03\x04 not really a zip")
    code, out, err = call_cli(main, ["--zip", tmp_path / "dl.zip", "--data", tmp_path / "tgs"])
    assert code == 2 and "dl.zip" in err
    # a download missing its masks fails the checks, and nothing lands under DATA
    with zipfile.ZipFile(tmp_path / "partial.zip", "w") as z:
        for name in ("train.csv", "depths.csv"):
            z.write(synthetic_data / name, name)
    code, out, err = call_cli(main, ["--zip", tmp_path / "partial.zip", "--data", tmp_path / "tgs"])
    assert code == 2 and err.startswith("error:")
    assert not (tmp_path / "tgs").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".unpack")] == []
