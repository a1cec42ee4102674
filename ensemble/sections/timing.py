"""The report's time section: the wall time of each command of the run, and their sum.
"""
from __future__ import annotations

from ensemble.page import minutes, section, table


def time_section(seg, clf, tuning, submit) -> tuple:
    predicted = (submit or {}).get("predict_wall_s") or {}
    walls = [("segmenter training", (seg or {}).get("wall_s")), ("classifier training", (clf or {}).get("wall_s")),
             ("segmenter test prediction", predicted.get("segmenter")),
             ("classifier test prediction", predicted.get("classifier")),
             ("ensemble tuning", tuning.get("wall_s")), ("submission", (submit or {}).get("wall_s"))]
    known = [w for _, w in walls if isinstance(w, (int, float))]
    rows = [[n, minutes(w)] for n, w in walls] + [["total", minutes(sum(known)) if known else minutes(None)]]
    return section("time", "Time", [table(["step", "wall time"], rows, total_last=True),
                                    '<p class="muted">Wall-clock time of each command (the trainers: of the whole '
                                    "k-fold run; the test predictions: of every fold model on the submitted "
                                    "images).</p>"])
