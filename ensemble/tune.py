"""Tune the ensemble's post-processing rules on out-of-fold (OOF) predictions, and keep a rule only when it
raises the score on folds it was not tuned on.

python -m ensemble.tune --data DATA --out OUT   ->  OUT/ensemble/tuning.json

The rules are ensemble.rules, what is kept and how it is fitted ensemble.nested, on the tables of
ensemble.tables; this command reads the out-of-fold predictions, runs them and writes what they chose.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ensemble.inputs import load_mosaic, load_oof, mosaic_path
from ensemble.nested import CLASSIFIER_WEIGHTS, EMPTY_THRESHOLDS, JOIN, MIN_AREAS, SELECTION, tune_arrays
from ensemble.rules import apply_rules, describe, oof_context
from ensemble.tables import MASK_THRESHOLDS
from ensemble.tuned import inputs_digest, write_tuned
from salt.cli import run_cli
from salt.layout import Out

# The segmenter alone: its mask threshold (the first step's), no other rule.
ALONE = {"empty_rule": None, "min_area": 0, "vertical": False, "constant_empty": False}


def tune(data_dir, out_dir) -> dict:
    """Tune on OUT's OOF predictions; write the out-of-fold masks and scores under the chosen rules
    (ensemble.tuned), then OUT/ensemble/tuning.json, and return the latter's content."""
    from salt.io import write_json
    from salt.metric import image_scores

    t0 = time.time()
    out = Path(out_dir)
    d = load_oof(data_dir, out)
    mosaic = load_mosaic(out)
    context = oof_context(d["ids"], d["images"], d["fold"], d["truth"], mosaic)
    res = tune_arrays(d["truth"], d["prob"], d["p_salt"], d["p_empty"], d["fold"], context)
    final = apply_rules(d["prob"], d["p_salt"], d["p_empty"], res["params"], context)
    alone = apply_rules(d["prob"], d["p_salt"], d["p_empty"],
                        {**ALONE, "threshold": res["steps"][0]["params"]["threshold"]})
    write_tuned(Out(out).tuned_oof, d["ids"], final, image_scores(d["truth"], final), image_scores(d["truth"], alone),
                inputs_digest(d))
    seg, clf = d["seg_metrics"], d["clf_metrics"]
    doc = {
        **res,
        "classifier": clf is not None,
        "params_segmenter_only": res["segmenter_only"]["params"],
        "fingerprint": d["fingerprint"],
        "fingerprints": {"expected": d["fingerprint"], "segmenter": seg.get("fingerprint"),
                         "classifier": None if clf is None else clf.get("fingerprint")},
        "n_images": len(d["ids"]),
        "mosaic": str(mosaic_path(out)) if mosaic is not None else None,
        "n_propagated": None if context.propagated is None else len(context.propagated),
        "n_constant": int(context.constant.sum()),
        "selection": SELECTION,
        "join": JOIN,
        "grids": {"threshold": MASK_THRESHOLDS.tolist(), "empty_threshold": EMPTY_THRESHOLDS.tolist(),
                  "w": CLASSIFIER_WEIGHTS.tolist(), "min_area": MIN_AREAS.tolist()},
        "wall_s": round(time.time() - t0, 3),
    }
    write_json(Out(out).tuning_json, doc)
    return doc


def _num(v, fmt="{:.4f}") -> str:
    return "-" if v is None else fmt.format(v)


def steps_table(steps) -> str:
    """The tuning steps as a plain-text table (nested score, gain +- standard error, in-sample score)."""
    lines = [f"  {'step':<40} {'nested':>7} {'gain +- s.e.':>18} {'in-sample':>9}  decision"]
    for s in steps:
        nested = s.get("nested") or {}
        gain = "" if s.get("gain_mean") is None else f"{s['gain_mean']:+.4f} +- {s['gain_se']:.4f}"
        decision = "kept" if s["kept"] else ("skipped: " + s.get("note", "") if s["overall"] is None else "rejected")
        lines.append(f"  {s['name']:<40} {_num(nested.get('overall')):>7} {gain:>18} {_num(s['overall']):>9}  "
                     f"{decision}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ensemble.tune", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="data folder (Kaggle layout) with the training masks")
    ap.add_argument("--out", required=True, help="run folder with segmenter/ and classifier/ outputs")
    args = ap.parse_args(argv)
    doc = tune(args.data, args.out)
    print(steps_table(doc["steps"]))
    fin = doc["final"]
    print(f"wrote {Out(args.out).tuning_json}: OOF score {fin['nested']['overall']:.4f} nested "
          f"({fin['overall']:.4f} in-sample; {describe(doc['params'])}; {doc['wall_s']:.1f}s)")
    return 0


if __name__ == "__main__":
    run_cli(main)
