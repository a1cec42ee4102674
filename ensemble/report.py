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
from pathlib import Path

import numpy as np

from ensemble import coverage as cov
from ensemble import figures, training_logs
from ensemble.page import e, figure, minutes, note, num, page, pct, section, short, table
from ensemble.inputs import (HINT_MOSAIC, HINT_TUNE, load_mosaic, load_oof, mosaic_images, mosaic_path, read_json,
                             submitted_masks)
from ensemble.tune import apply_rules, describe, oof_context, step_name
from salt.cli import UserError, run_cli
from salt.mosaic import mosaic_canvas

N_WORST = 4        # worst images shown per coverage class
N_FALSE_POS = 5    # worst false positives on empty images shown
N_MOSAICS = 4      # largest tile mosaics drawn
MOSAIC_RULES = ("vertical", "constant")  # the tuning's rules from labelled neighbours (ensemble.tune)

# How metrics.json's keys are shown: label and decimals (other keys: their name, 4 decimals).
METRIC_LABELS = {"score": ("competition score", 4), "threshold": ("mask threshold", 2),
                 "score_empty_images": ("score, images without salt", 4),
                 "score_salt_images": ("score, images with salt", 4),
                 "auc": ("ROC AUC of P(empty)", 4), "accuracy": ("accuracy at 0.5", 4),
                 "logloss": ("log-loss", 4), "images": ("images", 0)}


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


def models_section(seg, clf, seg_run, clf_run) -> tuple:
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
    for name, m in (("Segmenter", seg), ("Classifier", clf)):
        if m is not None:
            body += [f"<h3>{name}: out-of-fold scores per fold</h3>", metrics_table(m)]
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


def metrics_table(m) -> str:
    """A model's metrics.json as a table: rows = metrics, columns = folds and out-of-fold."""
    per_fold = [f for f in (m.get("folds") or []) if isinstance(f, dict)]
    overall = m.get("overall") or {}
    keys = [k for k in METRIC_LABELS if k in overall or any(k in f for f in per_fold)]
    keys += [k for k in overall if k not in keys and isinstance(overall[k], (int, float))]
    if "images" in keys and "images" not in overall and all("images" in f for f in per_fold):
        overall = {**overall, "images": sum(int(f["images"]) for f in per_fold)}
    rows = []
    for k in keys:
        label, nd = METRIC_LABELS.get(k, (k, 4))
        rows.append([e(label)] + [num(f.get(k), nd) for f in per_fold]
                    + [f"<b>{num(overall.get(k), nd)}</b>" if k != "images" else num(overall.get(k), nd)])
    header = [""] + [f"fold {f.get('fold', i)}" for i, f in enumerate(per_fold)] + ["out-of-fold"]
    return table(header, rows)


def preset_rows(run: dict, encoder_random: bool) -> list[list[str]]:
    """A run.json's preset config as rows: one per setting, one per round or stage (a frozen-encoder stage
    is marked skipped when the encoder started random, as the classifier skips it then)."""
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
        blocks.append(f"<div><h3>{e(name)}: preset <code>{e(preset)}</code></h3>{inner}"
                      f"<p>{_init_cell(m or run)}</p></div>")
    return section("presets", "Presets", ['<div class="side">' + "".join(blocks) + "</div>"])


def failures_section(d, pred, scores, scores_alone, tuning) -> tuple:
    truth = d["truth"]
    rows = cov.class_rows(truth, pred, scores, scores_alone)
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
        f"<p>Out-of-fold predictions of all {n} training images under the final rules "
        f"({e(describe(tuning_params(tuning)))}), grouped by the share of the image that is salt in the truth. "
        "<i>Wholly wrong</i>: on empty images, a false positive (any salt predicted: the image scores 0); on "
        "images with salt, a miss (nothing predicted: scores 0). <i>Score lost</i>: the class's share of the "
        "overall score lost, (1 &minus; score) summed over its images and divided by all images; the column "
        "adds up to 1 &minus; the overall score.</p>",
        table(["coverage class", "images", "share of images", "score: segmenter alone", "score: final rules",
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
    best = cov.best_by_class(truth, pred, scores, 1)
    best_idx = [int(idx[0]) for idx in best.values() if len(idx)]
    body.append("<h3>Best images with salt, one per coverage class</h3>")
    best_titles = {**titles, **{int(idx[0]): f"{cov.CLASS_NAMES[c]}: {titles[int(idx[0])]}"
                                for c, idx in best.items() if len(idx)}}
    body.append(figures_or_note(images, truth, pred, [("", best_idx)], best_titles,
                                max(len(best_idx), 1), "best images with salt",
                                "The best image of each salt class, from the smallest salt class (left) to the largest."))
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
    test_dir = Path(data_dir) / "test" / "images"
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
    sub = out / "submission.csv"
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
            "best epoch (circled), the next stage starts from it, and the last stage's best (star) is the fold's "
            "model. A best epoch at the very end of a stage says more epochs may pay; a score that falls after its "
            "best says the stage over-trains (or is noisy).</p>"]
    for model in models:
        spec = training_logs.SPECS[model]
        stages = training_logs.load_stages(out, model)
        body.append(f"<h3>{model.capitalize()}</h3>")
        if not stages:
            body.append(note(f"no training stages found under <code>{e(out / model)}</code>"))
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
        row = [str(st.fold), e(st.name), e(st.detail), str(st.epochs), "&ndash;" if b is None else str(b + 1),
               num(None if b is None else v[b]), num(None if v is None else v[-1])]
        if spec.score != spec.monitor:
            row.append(num(None if b is None or s is None else s[b]))
        row += [minutes(None if sec is None else sec.sum()), e(training_logs.verdict(st))]
        rows.append(row)
    header = ["fold", "stage", "settings", "epochs", "best epoch", f"best {spec.monitor}", f"last {spec.monitor}"]
    if spec.score != spec.monitor:
        header.append(f"{spec.score} at best")
    return table(header + ["time", "reading"], rows, left=3, left_last=True)


def gain_text(s) -> str:
    """A step's mean per-fold nested gain &plusmn; its standard error ("" where it has none)."""
    m, se = s.get("gain_mean"), s.get("gain_se")
    if m is None or se is None:
        return ""
    return f"{m:+.4f} &plusmn; {se:.4f}"


def tuning_section(tuning) -> tuple:
    folds = tuning_folds(tuning)
    has_nested = any(nested(s) for s in tuning_steps(tuning))
    rows = []
    for s in tuning_steps(tuning):
        ns = nested(s) if has_nested else {"overall": s.get("overall"), "folds": s.get("folds")}
        fs = ns.get("folds") or [None] * len(folds)
        kept = "yes" if s.get("kept") else ("skipped" if s.get("overall") is None else "no")
        rows.append([e(s.get("name", "?"))] + [num(v) for v in fs] + [f"<b>{num(ns.get('overall'))}</b>"]
                    + ([gain_text(s), num(s.get("overall"))] if has_nested else [])
                    + [f'<span class="{"kept" if s.get("kept") else "rejected"}">{kept}</span>',
                       params_text(s.get("params")) or e(s.get("note", ""))])
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
    so = tuning.get("segmenter_only") or {}
    if tuning.get("params_segmenter_only") and so.get("final"):
        sf = so["final"]
        score = (f"nested {num(nested(sf).get('overall'))} (in-sample {num(sf.get('overall'))})" if nested(sf)
                 else f"out-of-fold {num(sf.get('overall'))}")
        body.append(f"<p>Rules for a submission without the classifier: {e(describe(tuning['params_segmenter_only']))}"
                    f", {score}.</p>")
    fig = figures.curves_figure(tuning_sweeps(tuning))
    if fig is not None:
        body += ["<h3>Score against each tuned parameter</h3>",
                 figure(fig, "score curves", "The red dot marks the best setting of each sweep.", dpi=90)]
    return section("tuning", "Ensemble tuning", body)


def roc_section(d, n) -> tuple:
    if d["p_empty"] is None:
        return section("roc", "Classifier ROC", "<p>No classifier in this run.</p>")
    fig, auc = figures.roc_figure(~d["truth"].reshape(n, -1).any(axis=1), d["p_empty"])
    if fig is None:
        return section("roc", "Classifier ROC", "<p>ROC undefined: the truth has only one class.</p>")
    return section("roc", "Classifier ROC (out-of-fold)",
                   [f"<p>AUC {num(auc)} (positive class: empty mask).</p>", figure(fig, "ROC curve", dpi=80)])


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
def report(data_dir, out_dir) -> Path:
    """Write OUT/report.html (atomically) and return its path."""
    from salt.io import atomic_path
    from salt.metric import image_scores

    out = Path(out_dir)
    tuning = read_json(out / "ensemble" / "tuning.json", HINT_TUNE)
    sub_path = out / "ensemble" / "submit.json"
    submit = json.loads(sub_path.read_text()) if sub_path.is_file() else None
    d = load_oof(data_dir, out)
    mosaic = load_mosaic(out, required=bool(tuning_params(tuning).get("vertical")))
    context = oof_context(d["ids"], d["images"], d["fold"], d["truth"], mosaic)
    seg, clf = d["seg_metrics"], d["clf_metrics"]
    seg_run, clf_run = _json_or_empty(out / "segmenter" / "run.json"), _json_or_empty(out / "classifier" / "run.json")
    n = len(d["ids"])

    pred = apply_rules(d["prob"], d["p_salt"], d["p_empty"], tuning_params(tuning), context)
    scores = image_scores(d["truth"], pred)
    alone = apply_rules(d["prob"], d["p_salt"], d["p_empty"], alone_params(tuning))
    scores_alone = image_scores(d["truth"], alone)
    del alone

    final = tuning_final(tuning)
    steps = tuning_steps(tuning)
    if nested(final):  # the honest score first: each fold scored with rules tuned on the other folds
        shown = nested(final)
        alone_score = nested(steps[0]).get("overall") if steps else None
        headline = (f"<b>{num(shown.get('overall'))}</b> with the tuned rules, nested (each fold scored with rules "
                    f"tuned on the other folds; in-sample {num(final.get('overall'))}; segmenter alone "
                    f"{num(alone_score)})")
    else:
        shown = final
        headline = (f"<b>{num(final.get('overall'))}</b> with the tuned rules (segmenter alone: "
                    f"{num(steps[0].get('overall') if steps else None)})")
    fold_scores = [v for v in shown.get("folds") or [] if isinstance(v, (int, float))]
    inits = "; ".join(f"{name} {_init_cell(m)}" for name, m in (("segmenter", seg), ("classifier", clf)) if m)
    intro = (f"<p class=\"big\">Out-of-fold competition score {headline}"
             + (f", folds from {num(min(fold_scores))} to {num(max(fold_scores))}" if fold_scores else "")
             + f". {n} training images, {len(tuning_folds(tuning))} folds; {inits}.</p>"
             f"<p class=\"muted\">Data <code>{e(data_dir)}</code>, run <code>{e(out)}</code>, fingerprint "
             f"<code>{e(tuning.get('fingerprint', '?'))}</code>, generated {time.strftime('%Y-%m-%d %H:%M')}.</p>")
    models = ["segmenter"] + (["classifier"] if clf is not None or (out / "classifier").is_dir() else [])
    sections = [
        models_section(seg, clf, seg_run, clf_run),
        failures_section(d, pred, scores, scores_alone, tuning),
        examples_section(d, pred, scores),
        mosaics_section(data_dir, out, mosaic, d, tuning),
        training_section(out, models),
        tuning_section(tuning),
        roc_section(d, n),
        presets_section(seg_run, clf_run, seg, clf),
        time_section(seg, clf, tuning, submit),
        submission_section(submit),
    ]
    path = out / "report.html"
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
