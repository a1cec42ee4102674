"""The run's countdown (training.pace): epochs left from the stage folders, time left from the epochs so far."""
from __future__ import annotations

import json
import time

import pytest

from training import stage
from training.pace import Pace, duration, epochs_left


def test_epochs_left_counts_unfinished_stages_from_their_resume_point(tmp_path):
    done, started, new = tmp_path / "done", tmp_path / "started", tmp_path / "new"
    done.mkdir()
    stage.mark_done(done, {"best_score": 0.5})
    started.mkdir()
    (started / "state.json").write_text(json.dumps({"epoch": 2, "best": 0.4, "best_epoch": 1}))
    # finished: 0 of 5; resumed after epoch 2 of 6: 4; not begun (no folder yet): 3
    assert epochs_left([(done, 5), (started, 6), (new, 3)]) == 7
    assert epochs_left([]) == 0


@pytest.mark.parametrize("seconds, text", [(12.4, "12 s"), (89, "89 s"), (420, "7 min"), (3599, "1 h 00 min"),
                                           (7500, "2 h 05 min"), (-3, "0 s")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_pace_counts_down_at_the_median_epoch(capsys):
    now = time.mktime((2026, 11, 26, 22, 0, 0, 0, 0, -1))
    pace = Pace(7, clock=lambda: now)
    for epoch, seconds in enumerate([10.0, 30.0, 20.0]):
        pace.on_epoch_end(epoch, {"epoch_s": seconds})
    lines = capsys.readouterr().out.splitlines()
    # after the 3rd epoch: 4 left at the median 20 s = 80 s, so until 22:01 (22:01:20)
    assert pace.left == 4 and pace.seconds_left() == 80
    assert lines[-1] == ("run: 3 of 7 epochs done; 80 s of training left at 20.0 s an epoch (the median so far), "
                         "until about 22:01")
    # after the 1st: 6 left at 10 s
    assert lines[0].startswith("run: 1 of 7 epochs done; 60 s of training left at 10.0 s an epoch")
