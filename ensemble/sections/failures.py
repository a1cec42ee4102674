"""The report's "where it fails" section: the out-of-fold score by salt coverage class, false positives and
misses.
"""
from __future__ import annotations

from ensemble import coverage as cov
from ensemble.page import e, num, pct, section, table
from ensemble.rules import describe
from ensemble.scores import FINAL_IN_SAMPLE, SEG_IN_SAMPLE, Scores
from ensemble.tuning_record import tuning_params


def failures_section(d, pred, sc: Scores, tuning) -> tuple:
    truth = d["truth"]
    rows = cov.class_rows(truth, pred, sc.final, sc.alone)
    cells = []
    for r in rows:
        wrong = "" if r["wrong"] is None else str(r["wrong"])
        wrong_s = "" if r["wrong_share"] is None else pct(r["wrong_share"])
        cells.append([e(r["name"]), str(r["n"]), pct(r["share"]), num(r["score_alone"]), num(r["score"]),
                      num(r["iou"], 3), wrong, wrong_s, num(r["lost"])])
    n = len(truth)
    empty, salt = rows[0], rows[1:-1]
    n_salt = sum(r["n"] for r in salt)
    missed = sum(r["wrong"] for r in salt)
    lost_total = rows[-1]["lost"]
    fp_cost, miss_cost = empty["wrong"] / n, missed / n
    body = [
        f"<p>Out-of-fold predictions of all {n} training images, grouped by the share of the image that is salt "
        f"in the truth, scored <i>in-sample</i> (rules tuned on all these images): the segmenter alone at mask "
        f"threshold {num(sc.alone_threshold, 2)}, and the final rules ({e(describe(tuning_params(tuning)))}). "
        "<i>Wholly wrong</i> (final rules): on empty images, a false positive (any salt predicted: the image "
        "scores 0); on images with salt, a miss (nothing predicted: scores 0). <i>Score lost</i>: the class's "
        "share of the overall score lost, (1 &minus; score) summed over its images and divided by all images; "
        "the column adds up to 1 &minus; the overall score.</p>",
        table(["coverage class", "images", "share of images", f"{SEG_IN_SAMPLE}", f"{FINAL_IN_SAMPLE}",
               "mean IoU", "wholly wrong", "wholly wrong %", "score lost"], cells, total_last=True),
        f"<p class=\"big\">Of the {empty['n']} empty images, <b>{empty['wrong']} ({pct(empty['wrong_share'])})</b> "
        f"got a false positive, costing {num(fp_cost)} of the overall score. Of the {n_salt} images with salt, "
        f"<b>{missed} ({pct(missed / n_salt if n_salt else float('nan'))})</b> were missed entirely, costing "
        f"{num(miss_cost)}; the remaining {num(lost_total - fp_cost - miss_cost)} is lost on salt that was "
        "found but outlined too loosely to pass every IoU threshold.</p>",
    ]
    return section("failures", "Where it fails", body)
