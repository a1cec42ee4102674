"""Logs a person can read: with `--verbose auto` (what `make` passes), a trainer whose output goes to a file
or a pipe prints one line an epoch (Keras' verbose=2) and the run's countdown, with no progress bars and
none of their control codes; on a terminal it keeps Keras' progress bar."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from training import runs


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("gpu, stream, want", [
    (False, Terminal(), 1),      # a person watching: Keras' progress bar
    (False, io.StringIO(), 2),   # a file or a pipe (make submit | tee log): one line an epoch
    (True, Terminal(), 2),       # a GPU: epochs of seconds, no per-batch copy of the loss to the host
    (True, io.StringIO(), 2),
])
def test_auto_is_one_line_an_epoch_unless_a_terminal(monkeypatch, gpu, stream, want):
    monkeypatch.setattr(runs.devices, "has_gpu", lambda: gpu)
    assert runs._verbosity("auto", stream) == want


def test_a_number_is_kept(monkeypatch):
    monkeypatch.setattr(runs.devices, "has_gpu", lambda: False)
    assert [runs._verbosity(c, Terminal()) for c in ("0", "1", "2")] == [0, 1, 2]
    assert [runs._verbosity(c, io.StringIO()) for c in ("0", "1", "2")] == [0, 1, 2]


def test_a_piped_run_prints_one_line_an_epoch_and_the_countdown(synthetic_data, tmp_path):
    """The segmenter's smoke preset, fold 0 (2 + 1 epochs), its stdout a pipe, --verbose auto."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3", SALT_OFFLINE="1",
               KERAS_BACKEND="torch")  # eager: seconds, not minutes of tracing
    proc = subprocess.run([sys.executable, "-m", "segmenter.train", "--data", str(synthetic_data), "--out",
                           str(tmp_path / "out"), "--preset", "smoke", "--folds", "2", "--only-fold", "0",
                           "--verbose", "auto"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert not re.search("[\r\b\x1b]", out), "progress-bar control codes in a piped log"
    epoch_lines = [ln for ln in out.splitlines() if re.match(r"\d+/\d+ - .*loss: ", ln)]
    assert len(epoch_lines) == 3, out  # one line for each of the 3 epochs, not one per batch
    countdown = [ln for ln in out.splitlines() if ln.startswith("run: ")]
    assert [ln.split(";")[0] for ln in countdown] == [f"run: {k} of 3 epochs done" for k in (1, 2, 3)]
