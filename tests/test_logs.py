"""Logs a person can read: with `--verbose auto` (what `make` passes), a trainer whose output goes to a file
or a pipe prints one line an epoch (Keras' verbose=2) and the run's countdown, with no progress bars and
none of their control codes (checked on a real run in tests/test_train.py); on a terminal it keeps Keras'
progress bar."""
from __future__ import annotations

import io

import pytest

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


# A piped run's log (one line an epoch, the countdown, no control codes) is checked on the output of
# `make train-segmenter` in tests/test_train.py (test_a_piped_make_prints_one_line_an_epoch_and_the_countdown),
# which trains the same smoke preset anyway.
