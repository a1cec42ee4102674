"""The report's ROC section: the classifier's out-of-fold ROC curves, per fold and pooled.
"""
from __future__ import annotations

import numpy as np

from ensemble import figures
from ensemble.page import figure, num, section
from ensemble.scores import Scores
from ensemble.sections.models import auc_cell, low_auc_note


def roc_section(d, sc: Scores) -> tuple:
    if d["p_empty"] is None or sc.clf is None:
        return section("roc", "Classifier ROC", "<p>No classifier in this run.</p>")
    pooled = sc.clf["pooled"]["auc"]
    labels = {k: f"fold {k}: AUC {f['auc']:.4f}" for k, f in sc.clf["folds"].items() if np.isfinite(f["auc"])}
    labels["pooled"] = f"all folds pooled: AUC {pooled:.4f}"
    fig = figures.roc_figure(sc.empty, d["p_empty"], sc.fold, labels)
    if fig is None:
        return section("roc", "Classifier ROC", "<p>ROC undefined: the truth has only one class.</p>")
    per = ", ".join(f"fold {k} {auc_cell(f['auc'])}" for k, f in sc.clf["folds"].items())
    return section("roc", "Classifier ROC (out-of-fold)",
                   [f"<p>ROC AUC of P(empty) (positive class: empty mask), all folds pooled <b>{num(pooled)}</b>; "
                    f"per fold: {per}; the numbers of the classifier's table above, from the same out-of-fold "
                    "P(empty).</p>", low_auc_note(sc), figure(fig, "ROC curve", dpi=80)])
