"""A single self-contained HTML report of a run: python -m ensemble.report --data DATA --out OUT -> OUT/report.html

What it answers, in order: how good the run is (summary; each model's scores per fold), where it fails
(out-of-fold score by salt coverage class, false positives on empty images, missed salt, and examples
drawn large: truth filled, prediction outlined), the largest tile mosaics (train tiles with their true
masks, test tiles with the submitted ones), how training went (per fold and stage: training loss
and validation score per epoch, against epochs and, where the logs hold ``epoch_s``, against minutes),
what the ensemble tuning chose and how each rule fared on folds it was not tuned on, the classifier's ROC
curve, the presets, and the time each step took.
Figures are PNGs embedded as base64 data URIs; the page references no other file.

This module assembles the page; each section is a module of ensemble.sections.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ensemble.inputs import HINT_TUNE, load_mosaic, load_oof, read_json
from ensemble.page import e, note, num, page
from ensemble.scores import Scores, compute_scores
from ensemble.sections.examples import examples_section
from ensemble.sections.failures import failures_section
from ensemble.sections.models import init_cell, models_section
from ensemble.sections.mosaics import mosaics_section
from ensemble.sections.presets import presets_section
from ensemble.sections.roc import roc_section
from ensemble.sections.submission import submission_section
from ensemble.sections.timing import time_section
from ensemble.sections.training import training_section
from ensemble.sections.tuning import tuning_section
from ensemble.tuned import inputs_digest, read_tuned
from ensemble.tuning_record import tuning_final, tuning_params
from salt.cli import run_cli
from salt.layout import MODELS, Out


def _json_or_empty(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


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


def stale_note(tuned, d) -> str:
    """A warning where the out-of-fold predictions on disk are not those the tuning ran on."""
    if tuned["digest"] == inputs_digest(d):
        return ""
    return note("The out-of-fold predictions changed after the tuning ran: re-run "
                f"<code>{e(HINT_TUNE)}</code>. The masks and scores on this page are the tuning's, made from the "
                "predictions it saw.")


def report(data_dir, out_dir) -> Path:
    """Write OUT/report.html (atomically) and return its path."""
    from salt.io import atomic_path

    out = Path(out_dir)
    lay = Out(out)
    tuning = read_json(lay.tuning_json, HINT_TUNE)
    sub_path = lay.submit_json
    submit = json.loads(sub_path.read_text()) if sub_path.is_file() else None
    d = load_oof(data_dir, out)
    tuned = read_tuned(lay.tuned_oof, d["ids"], HINT_TUNE)
    mosaic = load_mosaic(out, required=bool(tuning_params(tuning).get("vertical")))
    seg, clf = d["seg_metrics"], d["clf_metrics"]
    seg_run, clf_run = _json_or_empty(lay.segmenter.run_json), _json_or_empty(lay.classifier.run_json)
    n = len(d["ids"])

    pred = tuned["final"]
    sc = compute_scores(d, tuning, tuned)
    inits = "; ".join(f"{name} {init_cell(m)}" for name, m in (("segmenter", seg), ("classifier", clf)) if m)
    intro = (f"<p class=\"big\">Out-of-fold competition score {headline(sc, tuning)}. {n} training images, "
             f"{len(sc.folds)} folds; {inits}.</p>" + stale_note(tuned, d) +
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
