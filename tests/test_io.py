"""salt.io (atomic writes) and salt.cli (one-line errors)."""
import json

import numpy as np
import pandas as pd
import pytest

from salt.cli import UserError, run_cli
from salt.io import atomic_path, save_npz, write_csv, write_json


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert tmp.name.endswith("-out.txt"), "the temporary name ends with the whole target name"
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_path_keeps_old_file_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_writers_round_trip(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, "x"]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": [1.5, "x"], "b": 1}
    df = pd.DataFrame({"id": ["x", "y"], "v": [1, 2]})
    write_csv(tmp_path / "a.csv", df)
    assert (tmp_path / "a.csv").read_text().splitlines() == ["id,v", "x,1", "y,2"]
    save_npz(tmp_path / "a.npz", x=np.arange(5), ids=np.array(["a", "b"]))
    with np.load(tmp_path / "a.npz") as z:
        assert z["x"].tolist() == [0, 1, 2, 3, 4] and z["ids"].tolist() == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.json", "a.npz"]


def test_run_cli_exit_codes(call_cli):
    def bad(argv):
        raise UserError("data/x.png: wrong image size\nsecond line")

    code, out, err = call_cli(bad, [])
    assert code == 2 and out == ""
    assert err.startswith("error: data/x.png: wrong image size") and err.count("\n") == 1

    assert call_cli(lambda argv: None, [])[0] == 0
    assert call_cli(lambda argv: 3, [])[0] == 3
    seen = []
    call_cli(lambda argv: seen.append(argv), ["a", "b"])
    assert seen == [["a", "b"]]

    def interrupted(argv):
        raise KeyboardInterrupt

    assert call_cli(interrupted, [])[0] == 130


def test_run_cli_lets_bugs_through():
    def buggy(argv):
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_cli(buggy)
