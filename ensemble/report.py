"""A single self-contained HTML report of a run: python -m ensemble.report --data DATA --out OUT -> OUT/report.html

What it answers, in order: how good the run is (summary; each model's scores per fold), where it fails
(out-of-fold score by salt coverage class, false positives on empty images, missed salt, and examples
drawn large: truth filled, prediction outlined), the largest tile mosaics (train tiles with their true
masks, test tiles with the submitted ones), how training went (per fold and stage: training loss
and validation score per epoch, against epochs and, where the logs hold ``epoch_s``, against minutes),
what the ensemble tuning chose and how each rule fared on folds it was not tuned on, the classifier's ROC
curve, the presets, and the time each step took.
Figures are PNGs embedded as base64 data URIs; the page references no other file.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble import coverage as cov
from ensemble import figures, training_logs
from ensemble.page import e, figure, minutes, note, num, page, pct, section, short, table
from ensemble.inputs import (HINT_MOSAIC, HINT_TUNE, load_mosaic, load_oof, mosaic_images, mosaic_path, read_json,
                             submitted_masks)
from ensemble.tune import EPS, apply_rules, describe, oof_context, step_name
from salt.cli import UserError, run_cli
from salt.layout import MODELS, Data, Out
from salt.mosaic import mosaic_canvas

N_WORST = 4        # worst images shown per coverage class
N_FALSE_POS = 5    # worst false positives on empty images shown
N_MOSAICS = 4      # largest tile mosaics drawn
MOSAIC_RULES = ("vertical", "constant")  # the tuning's rules from labelled neighbours (ensemble.tune)

# The labels of the scores that appear in more than one section (one quantity, one label, one value).
SEG_NESTED = "segmenter alone, nested"
SEG_IN_SAMPLE = "segmenter alone, in-sample"
FINAL_IN_SAMPLE = "final rules, in-sample"


# --------------------------------------------------------------------------- tuning.json, read in one place
def tuning_steps(t) -> list[dict]:
    """The tuning steps: each {name, kept, params, note, overall, folds (in-sample), nested {overall, folds},
    gains, gain_mean, gain_se}; a tuning.json from before nested tuning has no nested scores or gains."""
    return list(t.get("steps") or [])


def tuning_final(t) -> dict:
    """The final rules' out-of-fold score: {overall, folds} in-sample, and nested {overall, folds}."""
    return t.get("final") or {}


def nested(s) -> dict:
    """A step's (or the final rules') nested scores {overall, folds}, {} if it has none."""
    return (s or {}).get("nested") or {}


def tuning_params(t) -> dict:
    """The chosen rules, as ensemble.tune.apply_rules takes them."""
    return t["params"]


def tuning_sweeps(t) -> dict:
    """The score curves of each tuned parameter."""
    return t.get("sweeps") or {}


def tuning_folds(t) -> list[int]:
    return [int(k) for k in (t.get("folds") or [])]


def alone_params(t) -> dict:
    """The rules of the segmenter alone: the first step's mask threshold and nothing else."""
    steps = tuning_steps(t)
    thr = (steps[0].get("params") or {}).get("threshold") if steps else None
    return {"threshold": tuning_params(t)["threshold"] if thr is None else thr, "empty_rule": None, "min_area": 0,
            "vertical": False, "constant_empty": False}


def params_text(p) -> str:
    """A tuning step's parameters in words."""
    if not p:
        return ""
    if "w" in p:
        w = float(p["w"])
        src = ("the classifier's P(empty)" if w == 1 else "1 &minus; the segmenter's P(salt)" if w == 0 else
               f"{w:g} &times; classifier + {1 - w:g} &times; (1 &minus; segmenter's P(salt))")
        return f"zero the mask if {src} &gt; {num(p.get('threshold'), 3)}"
    if p.get("vertical"):
        n = p.get("tiles")
        return ("a vertical mask continues into the tiles below it" +
                ("" if n is None else f" ({int(n)} tile{'' if n == 1 else 's'} out of fold)"))
    if p.get("constant_empty"):
        n = p.get("images")
        return "constant images are empty" + ("" if n is None else f" ({int(n)} image{'' if n == 1 else 's'})")
    parts = []
    for k, v in p.items():
        if k == "threshold":
            parts.append(f"mask threshold {num(v, 2)}")
        elif k == "min_area":
            parts.append(f"drop masks under {int(v)} px" if v else "keep every mask")
        else:
            parts.append(f"{e(k)} {e(short(v))}")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------ sections
def _init_cell(m) -> str:
    init = str(m.get("encoder_init", "unknown"))
    cls = "random" if init in ("random", "unknown") else ""
    return f'<span class="init {cls}">encoder init: {e(init)}</span>'


@dataclass
class Scores:
    """Every score the page shows, computed once: per image from the out-of-fold arrays (salt.metric, the
    rules of ensemble.tune), the nested ones read once from tuning.json. Each section takes its numbers
    from here, so one quantity has one value on the whole page."""
    folds: list           # fold numbers, in order
    fold: np.ndarray      # (N,) each image's fold
    empty: np.ndarray     # (N,) the truth is empty
    final: np.ndarray     # (N,) each image's score under the chosen rules, fitted on all folds (in-sample)
    alone: np.ndarray     # (N,) each image's score of the segmenter alone at `alone_threshold` (in-sample)
    alone_threshold: float
    final_nested: dict    # {"overall", "folds"}: the chosen rules, each fold tuned on the others ({} if none)
    alone_nested: dict    # the same for the segmenter alone (the mask threshold only)
    clf: dict | None      # classifier_scores of the out-of-fold P(empty), None without a classifier

    def by_fold(self, per_image, only=None) -> list[float]:
        """Mean of a per-image array in each fold (over the images `only` selects, if given)."""
        sel = np.ones(len(self.fold), bool) if only is None else np.asarray(only, bool)
        return [float(per_image[(self.fold == k) & sel].mean()) if np.any((self.fold == k) & sel)
                else float("nan") for k in self.folds]


def classifier_scores(truth_empty, p_empty, fold, folds) -> dict:
    """ROC AUC, accuracy at 0.5 and log-loss of the out-of-fold P(empty), per fold and over all folds
    pooled, as the classifier's trainer defines them: {"folds": {k: {...}}, "pooled": {...}}."""
    from sklearn.metrics import log_loss, roc_auc_score

    def one(t, p):
        p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
        return {"auc": float(roc_auc_score(t, p)) if 0 < t.sum() < len(t) else float("nan"),
                "accuracy": float(np.mean((p > 0.5) == t)),
                "logloss": float(log_loss(t, p, labels=[False, True])) if len(t) else float("nan"),
                "images": int(len(t))}

    truth_empty, fold = np.asarray(truth_empty, bool), np.asarray(fold)
    return {"folds": {k: one(truth_empty[fold == k], p_empty[fold == k]) for k in folds},
            "pooled": one(truth_empty, p_empty)}


def compute_scores(d, tuning, pred) -> Scores:
    from salt.metric import image_scores

    folds = tuning_folds(tuning) or sorted(int(k) for k in np.unique(d["fold"]))
    n = len(d["ids"])
    empty = ~d["truth"].reshape(n, -1).any(axis=1)
    params = alone_params(tuning)
    alone = image_scores(d["truth"], apply_rules(d["prob"], d["p_salt"], d["p_empty"], params))
    steps = tuning_steps(tuning)
    clf = None if d["p_empty"] is None else classifier_scores(empty, np.asarray(d["p_empty"], np.float64),
                                                              d["fold"], folds)
    return Scores(folds, np.asarray(d["fold"]), empty, image_scores(d["truth"], pred), alone,
                  float(params["threshold"]), nested(tuning_final(tuning)), nested(steps[0]) if steps else {}, clf)


def models_section(seg, clf, seg_run, clf_run, sc: Scores) -> tuple:
    rows = []
    for name, m, run in (("segmenter", seg, seg_run), ("classifier", clf, clf_run)):
        if m is None:
            rows.append([name, "not trained (segmenter-only run)", "", "", "", "", ""])
            continue
        encoder = ((run.get("config") or {}).get("network") or {}).get("encoder", "SE-ResNeXt")
        network = m.get("backbone") or run.get("backbone") or (f"{encoder} U-Net" if name == "segmenter" else "")
        rows.append([name, _init_cell(m), e(m.get("preset", run.get("preset", "?"))), e(network),
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


def _auc_cell(v) -> str:
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
    rows = [["ROC AUC of P(empty)"] + [_auc_cell(f["auc"]) for f in per] + [f"<b>{_auc_cell(pooled['auc'])}</b>"],
            ["accuracy at 0.5"] + [num(f["accuracy"]) for f in per] + [num(pooled["accuracy"])],
            ["log-loss"] + [num(f["logloss"]) for f in per] + [num(pooled["logloss"])],
            ["images"] + [str(f["images"]) for f in per] + [str(pooled["images"])]]
    return (table([""] + [f"fold {k}" for k in sc.folds] + ["all folds pooled"], rows)
            + '<p class="muted">From the out-of-fold P(empty) (flip-averaged), the same numbers as the ROC '
              "curves below; the training curves' AUC is measured during training, on one checkpoint without "
              "flips.</p>" + low_auc_note(sc))


def preset_rows(run: dict, encoder_random: bool) -> list[list[str]]:
    """A run.json's preset config as rows: one per setting, one per round or stage (a frozen-encoder stage
    is marked skipped when the encoder started random, as the classifier skips it then); ImageNet weights
    asked for but not found are marked on their row."""
    conf = run.get("config") or {}
    rows = []
    for k, v in conf.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, item in enumerate(v, 1):
                label = item.get("name") or f"{k.rstrip('s')} {i}"
                text = e(", ".join(f"{a} {short(b)}" for a, b in item.items() if a != "name"))
                if item.get("frozen") and encoder_random:
                    text += " <i>(skipped: the encoder started random)</i>"
                rows.append([e(label), text])
        elif k == "encoder_weights" and encoder_random and str(v) == "imagenet":
            rows.append([e(k), f'{e(short(v))} <span class="random">asked for, not found: the encoder started '
                               "random</span>"])
        else:
            rows.append([e(k), e(short(v))])
    return rows


def presets_section(seg_run, clf_run, seg, clf) -> tuple:
    blocks = []
    for name, run, m in (("segmenter", seg_run, seg), ("classifier", clf_run, clf)):
        if m is None and not run:
            continue
        preset = (m or {}).get("preset") or run.get("preset") or "?"
        random = str((m or run).get("encoder_init")) == "random"
        inner = (table(["setting", "value"], preset_rows(run, random), left=1, left_last=True) if run.get("config")
                 else note(f"no run.json with the preset's settings in {e(name)}/"))
        asked = str((run.get("config") or {}).get("encoder_weights")) == "imagenet"
        if random and asked:
            inner += note(f"The {e(name)} preset asks for ImageNet weights, but none were found when it trained "
                          "(offline, or not installed): its encoder started from random weights, and its scores "
                          "are those of a network trained from scratch.")
        blocks.append(f"<div><h3>{e(name)}: preset <code>{e(preset)}</code></h3>{inner}"
                      f"<p>{_init_cell(m or run)}</p></div>")
    return section("presets", "Presets", ['<div class="side">' + "".join(blocks) + "</div>"])


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


def _titles(d, pred, scores) -> dict:
    truth = d["truth"]
    c, ious = cov.coverage(truth), cov.iou(truth, pred)
    pc = cov.coverage(pred)
    return {i: f"{d['ids'][i][:10]}  score {scores[i]:.2f}\ntruth {100 * c[i]:.1f}%  pred {100 * pc[i]:.1f}%  "
               f"IoU {ious[i]:.2f}" for i in range(len(truth))}


def examples_section(d, pred, scores) -> tuple:
    truth, images = d["truth"], d["images"]
    titles = _titles(d, pred, scores)
    legend = ("Truth <b style='color:%s'>filled blue</b>, prediction <b style='color:%s'>outlined red</b> "
              "(final rules). Each tile: image id, its score, the share of the image that is salt in the truth "
              "and in the prediction, and their IoU." % (figures.TRUTH_COLOR, figures.PRED_COLOR))
    worst = cov.worst_by_class(truth, pred, scores, N_WORST)
    rows = [(cov.CLASS_NAMES[c], idx) for c, idx in worst.items() if len(idx)]
    absent = [cov.CLASS_NAMES[c] for c, idx in worst.items() if not len(idx)]
    body = [f"<p>{legend}</p>", "<h3>Worst images with salt, by coverage class</h3>"]
    body.append(figures_or_note(images, truth, pred, rows, titles, N_WORST, "worst images with salt by coverage class",
                                "The lowest-scoring images of each class (lowest IoU first among equal scores)."
                                + (f" No image in the class{'es' if len(absent) > 1 else ''} {e(', '.join(absent))}."
                                   if absent else "")))
    shown_worst = [int(i) for idx in worst.values() for i in idx]
    best = cov.best_by_class(truth, pred, scores, 1, exclude=shown_worst)
    best_idx = [int(idx[0]) for idx in best.values() if len(idx)]
    all_worst = [cov.CLASS_NAMES[c] for c, idx in best.items() if not len(idx) and len(worst[c])]
    zero = [cov.CLASS_NAMES[c] for c, idx in best.items() if len(idx) and scores[int(idx[0])] == 0]
    body.append("<h3>Best images with salt, one per coverage class</h3>")
    best_titles = {**titles, **{int(idx[0]): f"{cov.CLASS_NAMES[c]}: {titles[int(idx[0])]}"
                                for c, idx in best.items() if len(idx)}}
    caption = ("The best image of each salt class, from the smallest salt class (left) to the largest, among the "
               "images not shown as the worst above."
               + (f" Every image of {e(', '.join(all_worst))} is among the worst shown: no best to show there."
                  if all_worst else ""))
    body.append(figures_or_note(images, truth, pred, [("", best_idx)], best_titles,
                                max(len(best_idx), 1), "best images with salt", caption))
    if zero:
        body.append(note(f"The best image of {e(', '.join(zero))} scores 0: the segmenter finds none of that class."))
    fp = cov.worst_false_positives(truth, pred, N_FALSE_POS)
    body.append("<h3>Worst false positives on empty images</h3>")
    body.append(figures_or_note(images, truth, pred, [("", list(fp))], titles, N_FALSE_POS,
                                "worst false positives on empty images",
                                "Empty images (no salt in the truth) with the largest predicted salt area; each "
                                "scores 0.") if len(fp) else "<p>No empty image got a false positive.</p>")
    return section("examples", "Examples", body)


def figures_or_note(images, truth, pred, rows, titles, ncols, alt, caption) -> str:
    if not any(len(idx) for _, idx in rows):
        return "<p>No image to show.</p>"
    return figure(figures.tiles_figure(images, truth, pred, rows, titles, ncols), alt, caption, dpi=100)


def _count(k: int, word: str) -> str:
    """'1 row', '3 rows'."""
    return f"{k} {word}{'' if k == 1 else 's'}"


def mosaic_rules_text(tuning) -> str:
    """What the tuning made of the rules from labelled neighbours, where it tried them ("" where not)."""
    by_name = {step_name(r): r for r in MOSAIC_RULES}
    parts = []
    for s in tuning_steps(tuning):
        if (s.get("rule") or by_name.get(s.get("name"))) not in MOSAIC_RULES or s.get("overall") is None:
            continue
        ns, gain = nested(s), gain_text(s)
        score = (f"nested score {num(ns.get('overall'))}" + (f", gain {gain} per fold" if gain else "")
                 if ns else f"out-of-fold score {num(s.get('overall'))}")
        verdict = "kept" if s.get("kept") else "rejected"
        kept = f'<span class="{verdict}">{verdict}</span>'
        what = params_text(s.get("params"))
        parts.append(f"<b>{e(s.get('name'))}</b>" + (f" &ndash; {what}" if what else "") + f": {score}, {kept}")
    if not parts:
        return ""
    return "<p>The tuning tried the rules from labelled neighbours: " + "; ".join(parts) + ".</p>"


def mosaics_section(data_dir, out: Path, mosaic, d, tuning) -> tuple:
    """The largest mosaics drawn whole: train tiles with their true masks, test tiles with the submitted
    masks; the counts; the tuning's verdict on the mosaic rules."""
    title = "Tile mosaics"
    if mosaic is None:
        return section("mosaics", title, f"<p>No tile mosaic for this run: <code>{e(mosaic_path(out))}</code> does "
                                         f"not exist (<code>{e(HINT_MOSAIC)}</code> writes it).</p>")
    sizes = mosaic.groupby("mosaic").size()
    sizes = sizes[sizes >= 2]
    if not len(sizes):
        return section("mosaics", title, f"<p>No tile mosaic of two or more tiles: no two tiles' edges matched "
                                         f"surely enough (<code>{e(mosaic_path(out))}</code>).</p>")
    placed = mosaic[mosaic["mosaic"].isin(sizes.index)]
    train_pos = {i: k for k, i in enumerate(d["ids"])}
    is_train = placed["id"].isin(train_pos)
    test_dir = Data(data_dir).test_images
    n_test = len(list(test_dir.glob("*.png"))) if test_dir.is_dir() else None
    order = sorted(sizes.index, key=lambda m: (-int(sizes[m]), int(m)))
    big = placed[placed["mosaic"] == order[0]]
    big_train = int(big["id"].isin(train_pos).sum())
    counts = (f"<p class=\"big\">{len(sizes)} mosaic{'s' if len(sizes) != 1 else ''} of two or more tiles; placed: "
              f"{int(is_train.sum())} of {len(d['ids'])} train tiles and {int((~is_train).sum())}"
              + (f" of {n_test}" if n_test is not None else "") + " test tiles; largest: "
              f"{len(big)} tiles on {_count(int(big['row'].max()) + 1, 'row')} &times; "
              f"{_count(int(big['col'].max()) + 1, 'column')} "
              f"({big_train} train, {len(big) - big_train} test).</p>")
    body = ["<p>Tiles put back together into the seismic sections they were cut from, by matching their edges "
            f"(<code>{e(mosaic_path(out))}</code>, written by <code>{e(HINT_MOSAIC)}</code>).</p>", counts,
            mosaic_rules_text(tuning)]

    shown = order[:N_MOSAICS]
    tiles = placed[placed["mosaic"].isin(shown)]
    test_ids = [i for i in tiles["id"] if i not in train_pos]
    images = {i: d["images"][train_pos[i]] for i in tiles["id"] if i in train_pos}
    truth = {i: d["truth"][train_pos[i]] for i in images}
    found, no_image = mosaic_images(test_dir, test_ids)
    images.update(found)
    sub = Out(out).submission_csv
    pred, problems = {}, []
    if not sub.is_file():
        problems.append(f"no <code>{e(sub)}</code> yet: the test tiles are drawn without masks")
    else:
        try:
            pred = submitted_masks(sub, test_ids)
        except UserError as err:
            problems.append(f"the submission could not be read ({e(err)}): the test tiles are drawn without masks")
        lacking = [i for i in found if i not in pred]
        if pred and lacking:
            problems.append(f"{len(lacking)} test tile{'s' if len(lacking) != 1 else ''} shown "
                            f"{'have' if len(lacking) != 1 else 'has'} no row in <code>{e(sub)}</code> (drawn without "
                            "a mask)")
    if no_image:
        problems.append(f"{len(no_image)} test tile{'s' if len(no_image) != 1 else ''} of the mosaics "
                        f"{'have' if len(no_image) != 1 else 'has'} no image in <code>{e(test_dir)}</code> (shown as "
                        f"cells without a tile), e.g. {e(no_image[0])}: was the mosaic made from other data?")
    body.append(f"<p>The {len(shown)} largest mosaic{'s' if len(shown) != 1 else ''}, whole: train tiles with their "
                f"true masks <b style='color:{figures.TRUTH_COLOR}'>filled blue</b>, test tiles "
                f"<b style='color:#b89600'>framed yellow</b> with the submitted masks "
                f"<b style='color:{figures.PRED_COLOR}'>outlined red</b> (<code>submission.csv</code>, after every "
                "tuned rule), cells where no tile was found grey.</p>")
    if problems:
        body.append(note("; ".join(problems) + "."))
    blank = np.zeros((101, 101), np.uint8)
    for m in shown:
        t = tiles[tiles["mosaic"] == m]
        drawn = {i: images.get(i, blank) for i in t["id"]}  # a tile without an image: a cell without a tile
        image, true_canvas = mosaic_canvas(t, m, drawn, truth)
        _, pred_canvas = mosaic_canvas(t, m, drawn, pred)
        rows, cols = int(t["row"].max()) + 1, int(t["col"].max()) + 1
        cells = {(r, c) for i, r, c in t[["id", "row", "col"]].itertuples(index=False) if i in images}
        test_cells = [(r, c) for i, r, c in t[["id", "row", "col"]].itertuples(index=False)
                      if i not in train_pos and i in images]
        empty = [(r, c) for r in range(rows) for c in range(cols) if (r, c) not in cells]
        n_tr = int(t["id"].isin(train_pos).sum())
        fig = figures.mosaic_figure(image, true_canvas, pred_canvas, test_cells, empty)
        body.append(figure(fig, f"mosaic {m}", f"Mosaic {int(m)}: {len(t)} tiles ({n_tr} train, {len(t) - n_tr} "
                                               f"test) on {_count(rows, 'row')} &times; {_count(cols, 'column')}.",
                           dpi=100))
    return section("mosaics", title, body)


def training_section(out: Path, models) -> tuple:
    body = ["<p>Per fold, each stage's training loss and validation score per epoch, read from its "
            "<code>log.csv</code>. Stages (rounds) are shaded and named; each stage keeps the checkpoint of its "
            "best validated epoch (circled), the next stage starts from it, and the last stage's best (star) is "
            "the fold's model. These validation scores are measured during training, on one checkpoint without "
            "test-time flips, so they differ a little from the out-of-fold scores of the other sections. The "
            "reading of a stage uses the epochs that were validated only: a best at the last of several says "
            "more epochs may pay, a score that falls after its best says the stage over-trains (or is noisy), "
            "and one validated epoch shows no trend at all.</p>"]
    for model in models:
        spec = training_logs.SPECS[model]
        stages = training_logs.load_stages(out, model)
        body.append(f"<h3>{model.capitalize()}</h3>")
        if not stages:
            body.append(note(f"no training stages found under <code>{e(Out(out).model(model).dir)}</code>"))
            continue
        logged = [st for st in stages if st.log is not None]
        untimed = [st for st in logged if st.seconds() is None]
        show_minutes = len(untimed) < len(logged)
        if logged:
            what = ("against epochs (top) and against minutes of training (bottom left)" if show_minutes else
                    "against epochs (top)")
            body.append(figure(figures.training_figure(stages, model, show_minutes), f"{model} training curves",
                               f"{e(model.capitalize())}: loss and {e(spec.score_label)} {what}, every fold in its "
                               "colour; bottom right, the folds side by side.", dpi=100))
        if not logged:
            body.append(note("No log.csv could be read for this model."))
        elif not show_minutes:
            body.append(note("These logs have no <code>epoch_s</code> column (a run from before it was logged), so "
                             "the score is shown against epochs only, not against minutes of training."))
        elif untimed:
            body.append(note("Not on the time axis, as their log.csv has no complete <code>epoch_s</code> column "
                             "(nor the later stages of their fold): "
                             + ", ".join(f"fold {st.fold} {e(st.name)}" for st in untimed) + "."))
        if training_logs.one_validation_per_stage(stages):
            body.append(note(f"Each stage of the {model} was validated at one epoch only (the preset's "
                             "<code>validate_every</code>): its best epoch is that one by construction, and the "
                             "logs say nothing about whether more epochs would pay."))
        body.append(stage_table(stages, spec))
        problems = [f"fold {st.fold} {e(st.name)} (<code>{e(st.path)}</code>): {e('; '.join(st.notes))}"
                    for st in stages if st.notes]
        if problems:
            body.append(note("Logs missing or incomplete:<br>" + "<br>".join(problems)))
    return section("training", "How training went", body)


def stage_table(stages, spec) -> str:
    rows = []
    for st in stages:
        v, s = st.column(spec.monitor), st.column(spec.score)
        b = st.best()
        sec = st.seconds()
        if st.log is None:
            rows.append([str(st.fold), e(st.name), e(st.detail), "&ndash;", "&ndash;", "&ndash;", "&ndash;"]
                        + (["&ndash;"] if spec.score != spec.monitor else []) + ["&ndash;", e("; ".join(st.notes))])
            continue
        seen = training_logs.validated(st)
        last = None if v is None or not len(seen) else v[seen[-1]]
        row = [str(st.fold), e(st.name), e(st.detail), str(st.epochs), "&ndash;" if b is None else str(b + 1),
               num(None if b is None else v[b]), num(last)]
        if spec.score != spec.monitor:
            row.append(num(None if b is None or s is None else s[b]))
        row += [minutes(None if sec is None else sec.sum()), e(training_logs.verdict(st))]
        rows.append(row)
    header = ["fold", "stage", "settings", "epochs", "best epoch", f"best {spec.monitor}",
              f"last validated {spec.monitor}"]
    if spec.score != spec.monitor:
        header.append(f"{spec.score} at best (in training)")
    return table(header + ["time", "reading"], rows, left=3, left_last=True)


def gain_text(s) -> str:
    """A step's mean per-fold nested gain &plusmn; its standard error ("" where it has none)."""
    m, se = s.get("gain_mean"), s.get("gain_se")
    if m is None or se is None:
        return ""
    return f"{m:+.4f} &plusmn; {se:.4f}"


def paired_gain(a_folds, b_folds) -> tuple[float, float] | None:
    """Mean per-fold difference a - b and its standard error (as ensemble.tune decides a rule), or None."""
    a, b = np.asarray(a_folds or [], np.float64), np.asarray(b_folds or [], np.float64)
    if len(a) != len(b) or len(a) < 2 or not np.isfinite(a - b).all():
        return None
    g = a - b
    return float(g.mean()), float(g.std(ddof=1) / np.sqrt(len(g)))


def reason_text(m: float, se: float) -> str:
    """Why a rule or a rule set that scores higher nested was not chosen, in words."""
    if m <= EPS:
        return f"no gain: {m:+.4f} &plusmn; {se:.4f}"
    if m <= se:
        return f"within noise: {m:+.4f} &plusmn; {se:.4f}"
    return f"a gain above its noise, {m:+.4f} &plusmn; {se:.4f}"


def step_decision(s) -> str:
    """The "kept" cell of a tuning step: yes, skipped, or no with its reason."""
    if s.get("kept"):
        return '<span class="kept">yes</span>'
    if s.get("overall") is None:
        return '<span class="rejected">skipped</span>'
    m, se = s.get("gain_mean"), s.get("gain_se")
    why = "" if m is None or se is None else f" ({reason_text(m, se).split(':')[0]})"
    return f'<span class="rejected">no{why}</span>'


SWEEP_RULE = {"threshold": "threshold", "empty_threshold": "classifier", "combination": "combined",
              "min_area": "min_area"}
SWEEP_NAME = {"threshold": "mask threshold", "empty_threshold": "P(empty) threshold", "combination":
              "classifier weight w", "min_area": "minimum area"}


def sweep_choices(tuning) -> dict:
    """For each sweep the tuning wrote: the setting it fitted on all folds ({"x", "kept", "edge", "lo",
    "hi"}): the chosen one where the rule is kept, else the best tried. "edge": at an end of the sweep
    that could be extended (not minimum area 0, the rule off, nor w 0 or 1, each model alone)."""
    sweeps, params = tuning_sweeps(tuning), tuning_params(tuning)
    rules = tuning.get("rules")
    steps = {s.get("rule"): s for s in tuning_steps(tuning) if s.get("rule")}
    out = {}
    for key, rule in SWEEP_RULE.items():
        curve = figures.sweep_curve(sweeps, key)
        if curve is None:
            continue
        s = steps.get(rule) or {}
        p = s.get("params") or {}
        x = {"threshold": params.get("threshold"), "empty_threshold": p.get("threshold"),
             "combination": p.get("w"), "min_area": p.get("min_area")}[key]
        grid = [float(v) for v in curve[0]]
        if x is None:
            x = grid[int(np.argmax(curve[1]))]
        kept = rule == "threshold" or (rule in rules if isinstance(rules, list) else bool(s.get("kept")))
        i = int(np.argmin(np.abs(np.asarray(grid) - float(x))))
        edge = (key in ("threshold", "empty_threshold") and i in (0, len(grid) - 1)) or \
               (key == "min_area" and i == len(grid) - 1 and len(grid) > 1)
        out[key] = {"x": float(x), "kept": kept, "edge": edge, "lo": grid[0], "hi": grid[-1], "at": i}
    return out


def edge_notes(choices) -> list[str]:
    notes = []
    for key, c in choices.items():
        if not c["edge"]:
            continue
        end = "lowest" if c["at"] == 0 else "highest"
        what = "chosen" if c["kept"] else "best tried (the rule was not kept)"
        notes.append(note(f"The {SWEEP_NAME[key]} {what}, {c['x']:g}, is the {end} of its sweep "
                          f"({c['lo']:g}&ndash;{c['hi']:g}): a {'lower' if end == 'lowest' else 'higher'} one "
                          "might score better, and the sweep in <code>ensemble.tune</code> should reach past it."))
    return notes


def tuning_section(tuning) -> tuple:
    folds = tuning_folds(tuning)
    has_nested = any(nested(s) for s in tuning_steps(tuning))
    rows = []
    higher = []
    for s in tuning_steps(tuning):
        ns = nested(s) if has_nested else {"overall": s.get("overall"), "folds": s.get("folds")}
        fs = ns.get("folds") or [None] * len(folds)
        rows.append([e(s.get("name", "?"))] + [num(v) for v in fs] + [f"<b>{num(ns.get('overall'))}</b>"]
                    + ([gain_text(s), num(s.get("overall"))] if has_nested else [])
                    + [step_decision(s) if has_nested else
                       f'<span class="{"kept" if s.get("kept") else "rejected"}">'
                       f'{"yes" if s.get("kept") else ("skipped" if s.get("overall") is None else "no")}</span>',
                       params_text(s.get("params")) or e(s.get("note", ""))])
        m, se = s.get("gain_mean"), s.get("gain_se")
        if has_nested and not s.get("kept") and m is not None and se is not None and m > EPS:
            higher.append(f"<b>{e(s.get('name'))}</b> scores higher nested than the rules before it, but is not "
                          f"kept: {reason_text(m, se)}")
    final = tuning_final(tuning)
    fn = nested(final) if has_nested else final
    rows.append(["final (kept rules)"] + [num(v) for v in fn.get("folds") or [None] * len(folds)]
                + [f"<b>{num(fn.get('overall'))}</b>"] + (["", num(final.get("overall"))] if has_nested else [])
                + ["", ""])
    if has_nested:
        intro = ("<p><i>Nested</i>: each fold's score comes from rules tuned on the other folds only, so no score "
                 "is measured on the images its rules were tuned on. A rule is kept only if its mean gain over the "
                 "folds (nested, against the rules kept before it) is positive and larger than its standard error "
                 "(&plusmn;); <i>in-sample</i> is tuned and scored on all out-of-fold predictions, for comparison "
                 "(it never falls when a rule is added). Parameters are fitted on all folds; a rejected step "
                 "shows those it would have had.</p>")
        header = ["step"] + [f"fold {k}" for k in folds] + ["nested", "gain ± s.e.", "in-sample", "kept",
                                                            "parameters (fitted on all folds)"]
    else:
        intro = ("<p>This tuning predates nested tuning: each rule was kept if it raised the out-of-fold score "
                 "over the step before, tuned and scored on the same predictions. A rejected step shows the score "
                 "of its best setting tried.</p>")
        header = ["step"] + [f"fold {k}" for k in folds] + ["out-of-fold", "kept", "parameters (best tried)"]
    body = [intro, table(header, rows, total_last=True, left_last=True),
            f"<p>Chosen: <b>{e(describe(tuning_params(tuning)))}</b>.</p>"]
    if higher:
        body.append("<p>" + "; ".join(higher) + " (a rule is kept only when its mean gain exceeds its standard "
                    "error).</p>")
    body += segmenter_only_text(tuning, has_nested)
    choices = sweep_choices(tuning)
    fig = figures.curves_figure(tuning_sweeps(tuning), choices)
    if fig is not None:
        body += ["<h3>Score against each tuned parameter</h3>",
                 figure(fig, "score curves", "In-sample score (tuned and scored on all out-of-fold images) against "
                        "each swept setting, the others at their fitted values. The red dot marks the setting the "
                        "tuning fitted on all folds: filled where the rule is kept (the choice), hollow where it "
                        "is not (the best setting tried); a setting at the end of its sweep says so.", dpi=90)]
        body += edge_notes(choices)
    return section("tuning", "Ensemble tuning", body)


def segmenter_only_text(tuning, has_nested) -> list[str]:
    """The rules for a submission without the classifier, and how they compare with the chosen rules."""
    so = tuning.get("segmenter_only") or {}
    p_so = tuning.get("params_segmenter_only")
    if not p_so or not so.get("final"):
        return []
    sf, final = so["final"], tuning_final(tuning)
    score = (f"nested {num(nested(sf).get('overall'))} (in-sample {num(sf.get('overall'))})" if nested(sf)
             else f"out-of-fold {num(sf.get('overall'))}")
    same = p_so == tuning_params(tuning)
    text = f"<p>Rules for a submission without the classifier: {e(describe(p_so))}, {score}"
    g = paired_gain(nested(sf).get("folds"), nested(final).get("folds")) if has_nested else None
    if same:
        text += ": the same rules as chosen, fitted on all folds"
        if g is None or abs(g[0]) <= EPS:
            return [text + ".</p>"]
        text += (f". Their nested score differs from the chosen rules' {num(nested(final).get('overall'))} all the "
                 "same: nested, each fold's rules are fitted on the other folds, and without the classifier those "
                 "fits choose among fewer rules")
    if g is None:
        return [text + ".</p>"]
    m, se = g
    if m > EPS:
        why = ("within noise" if m <= se else "above its noise, yet not chosen: the tuning adds rules to the "
               "chosen set one at a time, each on its own gain, and never weighs whole sets against each other; "
               "these rules are worth trying")
        return [text + f". Nested, they score higher than the chosen rules, {m:+.4f} &plusmn; {se:.4f} per fold: "
                       f"{why}.</p>"]
    return [text + f"; nested, against the chosen rules, {m:+.4f} &plusmn; {se:.4f} per fold.</p>"]


def roc_section(d, sc: Scores) -> tuple:
    if d["p_empty"] is None or sc.clf is None:
        return section("roc", "Classifier ROC", "<p>No classifier in this run.</p>")
    pooled = sc.clf["pooled"]["auc"]
    labels = {k: f"fold {k}: AUC {f['auc']:.4f}" for k, f in sc.clf["folds"].items() if np.isfinite(f["auc"])}
    labels["pooled"] = f"all folds pooled: AUC {pooled:.4f}"
    fig = figures.roc_figure(sc.empty, d["p_empty"], sc.fold, labels)
    if fig is None:
        return section("roc", "Classifier ROC", "<p>ROC undefined: the truth has only one class.</p>")
    per = ", ".join(f"fold {k} {_auc_cell(f['auc'])}" for k, f in sc.clf["folds"].items())
    return section("roc", "Classifier ROC (out-of-fold)",
                   [f"<p>ROC AUC of P(empty) (positive class: empty mask), all folds pooled <b>{num(pooled)}</b>; "
                    f"per fold: {per}; the numbers of the classifier's table above, from the same out-of-fold "
                    "P(empty).</p>", low_auc_note(sc), figure(fig, "ROC curve", dpi=80)])


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


def submission_section(submit) -> tuple:
    if submit is None:
        return section("submission", "Submission", "<p>No submission written yet (<code>ensemble/submit.json</code> "
                                                   "is missing).</p>")
    return section("submission", "Submission",
                   f"<p><code>{e(submit.get('path'))}</code>: {e(submit.get('n_images'))} images, "
                   f"{e(submit.get('n_empty'))} empty masks, {e(submit.get('mode'))}"
                   + (f" ({e(submit['combine_note'])})" if submit.get("combine_note") else "") + ", rows in "
                   f"{e(submit.get('order'))}; prediction set <code>{e(submit.get('pred'))}</code>.</p>")


def _json_or_empty(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------------------------- the page
def headline(sc: Scores, tuning) -> str:
    """The page's first sentence: the chosen rules' score and the segmenter alone's, nested and in-sample."""
    final = tuning_final(tuning)
    if sc.final_nested:
        folds = [v for v in sc.final_nested.get("folds") or [] if isinstance(v, (int, float))]
        text = (f"<b>{num(sc.final_nested.get('overall'))}</b> with the tuned rules, nested (each fold scored with "
                "rules tuned on the other folds"
                + (f"; folds from {num(min(folds))} to {num(max(folds))}" if folds else "")
                + f"); {num(sc.final.mean())} in-sample (rules tuned and scored on the same images). The segmenter "
                f"alone (its mask threshold, no other rule): {num(sc.alone_nested.get('overall'))} nested, "
                f"{num(sc.alone.mean())} in-sample at threshold {num(sc.alone_threshold, 2)}")
    else:
        folds = [v for v in final.get("folds") or [] if isinstance(v, (int, float))]
        text = (f"<b>{num(sc.final.mean())}</b> with the tuned rules, tuned and scored on the same images"
                + (f"; folds from {num(min(folds))} to {num(max(folds))}" if folds else "")
                + f". The segmenter alone: {num(sc.alone.mean())} at threshold {num(sc.alone_threshold, 2)}")
    return text


def stale_note(sc: Scores, tuning) -> str:
    """A warning where tuning.json's in-sample scores are not those of the predictions on disk."""
    steps = tuning_steps(tuning)
    pairs = [("the chosen rules", tuning_final(tuning).get("overall"), sc.final.mean())]
    if steps:
        pairs.append(("the segmenter alone", steps[0].get("overall"), sc.alone.mean()))
    off = [f"{w}: {num(a)} in tuning.json, {num(b)} now" for w, a, b in pairs
           if isinstance(a, (int, float)) and abs(a - b) > 5e-5]
    if not off:
        return ""
    return note("The out-of-fold predictions changed after the tuning ran (" + "; ".join(off) + "): re-run "
                f"<code>{e(HINT_TUNE)}</code>. The nested scores are the tuning's, the others the predictions'.")


def report(data_dir, out_dir) -> Path:
    """Write OUT/report.html (atomically) and return its path."""
    from salt.io import atomic_path

    out = Path(out_dir)
    lay = Out(out)
    tuning = read_json(lay.tuning_json, HINT_TUNE)
    sub_path = lay.submit_json
    submit = json.loads(sub_path.read_text()) if sub_path.is_file() else None
    d = load_oof(data_dir, out)
    mosaic = load_mosaic(out, required=bool(tuning_params(tuning).get("vertical")))
    context = oof_context(d["ids"], d["images"], d["fold"], d["truth"], mosaic)
    seg, clf = d["seg_metrics"], d["clf_metrics"]
    seg_run, clf_run = _json_or_empty(lay.segmenter.run_json), _json_or_empty(lay.classifier.run_json)
    n = len(d["ids"])

    pred = apply_rules(d["prob"], d["p_salt"], d["p_empty"], tuning_params(tuning), context)
    sc = compute_scores(d, tuning, pred)
    inits = "; ".join(f"{name} {_init_cell(m)}" for name, m in (("segmenter", seg), ("classifier", clf)) if m)
    intro = (f"<p class=\"big\">Out-of-fold competition score {headline(sc, tuning)}. {n} training images, "
             f"{len(sc.folds)} folds; {inits}.</p>" + stale_note(sc, tuning) +
             f"<p class=\"muted\">Data <code>{e(data_dir)}</code>, run <code>{e(out)}</code>, fingerprint "
             f"<code>{e(tuning.get('fingerprint', '?'))}</code>, generated {time.strftime('%Y-%m-%d %H:%M')}.</p>")
    models = [m for m in MODELS if m == "segmenter" or clf is not None or lay.classifier.dir.is_dir()]
    sections = [
        models_section(seg, clf, seg_run, clf_run, sc),
        failures_section(d, pred, sc, tuning),
        examples_section(d, pred, sc.final),
        mosaics_section(data_dir, out, mosaic, d, tuning),
        training_section(out, models),
        tuning_section(tuning),
        roc_section(d, sc),
        presets_section(seg_run, clf_run, seg, clf),
        time_section(seg, clf, tuning, submit),
        submission_section(submit),
    ]
    path = lay.report_html
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page("TGS Salt run report", intro, sections), encoding="utf-8")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ensemble.report", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="data folder (Kaggle layout)")
    ap.add_argument("--out", required=True, help="run folder")
    args = ap.parse_args(argv)
    print(f"wrote {report(args.data, args.out)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
