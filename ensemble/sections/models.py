"""The report's models section: what each model is and how it scored per fold (segmenter alone, classifier).
"""
from __future__ import annotations

from ensemble.page import e, minutes, note, num, section, table
from ensemble.scores import SEG_IN_SAMPLE, SEG_NESTED, Scores


def init_cell(m) -> str:
    init = str(m.get("encoder_init", "unknown"))
    cls = "random" if init in ("random", "unknown") else ""
    return f'<span class="init {cls}">encoder init: {e(init)}</span>'


def models_section(seg, clf, seg_run, clf_run, sc: Scores) -> tuple:
    rows = []
    for name, m, run in (("segmenter", seg, seg_run), ("classifier", clf, clf_run)):
        if m is None:
            rows.append([name, "not trained (segmenter-only run)", "", "", "", "", ""])
            continue
        encoder = ((run.get("config") or {}).get("network") or {}).get("encoder", "SE-ResNeXt")
        network = m.get("backbone") or run.get("backbone") or (f"{encoder} U-Net" if name == "segmenter" else "")
        rows.append([name, init_cell(m), e(m.get("preset", run.get("preset", "?"))), e(network),
                     e(m.get("precision") or run.get("precision") or (m.get("environment") or {}).get("dtype_policy")
                       or "not recorded"),
                     num(m.get("folds_k", len(m.get("folds") or []) or None)), minutes(m.get("wall_s"))])
    body = [table(["model", "encoder initialisation", "preset", "network", "precision", "folds", "training time"],
                  rows, left=5)]
    body += ["<h3>Segmenter: out-of-fold scores per fold</h3>", segmenter_table(sc, seg)]
    if clf is not None and sc.clf is not None:
        body += ["<h3>Classifier: out-of-fold scores per fold</h3>", classifier_table(sc)]
    env = (seg or {}).get("environment") or {}
    if env:
        vers = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items())
        parts = [f"Backend {env.get('backend', '?')}", f"GPU {'yes' if env.get('gpu') else 'no'}"]
        if env.get("devices"):
            parts.append("devices " + ", ".join(map(str, env["devices"])))
        if env.get("dtype_policy"):  # runs from before the precision was recorded beside it
            parts.append(f"dtype policy {env['dtype_policy']}")
        body.append(f'<p class="muted">{e(", ".join(parts))}' + (f"; {e(vers)}" if vers else "") + ".</p>")
    return section("models", "Models", body)


def segmenter_table(sc: Scores, seg) -> str:
    """The segmenter alone per fold: nested and in-sample, on images without and with salt."""
    t = num(sc.alone_threshold, 2)
    pooled = "all folds pooled"
    rows = []
    if sc.alone_nested:
        rows.append([SEG_NESTED] + [num(v) for v in sc.alone_nested.get("folds") or [None] * len(sc.folds)]
                    + [f"<b>{num(sc.alone_nested.get('overall'))}</b>"])
    rows += [[SEG_IN_SAMPLE] + [num(v) for v in sc.by_fold(sc.alone)] + [num(sc.alone.mean())],
             ["score, images without salt (in-sample)"] + [num(v) for v in sc.by_fold(sc.alone, sc.empty)]
             + [num(sc.alone[sc.empty].mean() if sc.empty.any() else None)],
             ["score, images with salt (in-sample)"] + [num(v) for v in sc.by_fold(sc.alone, ~sc.empty)]
             + [num(sc.alone[~sc.empty].mean() if (~sc.empty).any() else None)],
             ["images"] + [str(int((sc.fold == k).sum())) for k in sc.folds] + [str(len(sc.fold))]]
    text = (f"<p>The segmenter alone: its out-of-fold probabilities above one mask threshold, no other rule. "
            f"<i>In-sample</i>: at the threshold {t} that the ensemble tuning found best on all out-of-fold "
            "images; <i>nested</i>: each fold at the threshold tuned on the other folds, the honest estimate. "
            f"<i>{pooled.capitalize()}</i>: the mean over all images (not the mean of the folds).</p>")
    trainer = (seg or {}).get("overall") or {}
    if isinstance(trainer.get("score"), (int, float)):
        text_after = (f'<p class="muted">The trainer\'s own reading (<code>metrics.json</code>, printed at the end '
                      f"of training): {num(trainer['score'])} at threshold {num(trainer.get('threshold'), 2)}, the "
                      "best of its own coarser grid of thresholds. This report scores at the tuning's threshold "
                      "throughout.</p>")
    else:
        text_after = ""
    return text + table([""] + [f"fold {k}" for k in sc.folds] + [pooled], rows) + text_after


def auc_cell(v) -> str:
    return f'<span class="random">{num(v)}</span>' if isinstance(v, float) and v < 0.5 else num(v)


def low_auc_note(sc: Scores) -> str:
    """A warning for every fold whose AUC is under 0.5 ("" where none is)."""
    low = [(k, f["auc"]) for k, f in sc.clf["folds"].items() if isinstance(f["auc"], float) and f["auc"] < 0.5]
    if not low:
        return ""
    which = ", ".join(f"fold {k} ({num(a)})" for k, a in low)
    return note(f"AUC under 0.5: {which}. There the classifier ranks images with salt above empty ones more "
                "often than not, worse than a coin; its P(empty) can only hurt a rule that trusts it.")


def classifier_table(sc: Scores) -> str:
    """The classifier's out-of-fold P(empty) scored per fold and pooled (the ROC section draws the same)."""
    per, pooled = [sc.clf["folds"][k] for k in sc.folds], sc.clf["pooled"]
    rows = [["ROC AUC of P(empty)"] + [auc_cell(f["auc"]) for f in per] + [f"<b>{auc_cell(pooled['auc'])}</b>"],
            ["accuracy at 0.5"] + [num(f["accuracy"]) for f in per] + [num(pooled["accuracy"])],
            ["log-loss"] + [num(f["logloss"]) for f in per] + [num(pooled["logloss"])],
            ["images"] + [str(f["images"]) for f in per] + [str(pooled["images"])]]
    return (table([""] + [f"fold {k}" for k in sc.folds] + ["all folds pooled"], rows)
            + '<p class="muted">From the out-of-fold P(empty) (flip-averaged), the same numbers as the ROC '
              "curves below; the training curves' AUC is measured during training, on one checkpoint without "
              "flips.</p>" + low_auc_note(sc))
