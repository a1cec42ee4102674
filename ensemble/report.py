"""A single self-contained HTML report of a run: python -m ensemble.report --data DATA --out OUT -> OUT/report.html

Out-of-fold scores per fold for each tuning step, score curves, the classifier's ROC curve, the worst and
best out-of-fold images, wall times, presets and each model's encoder initialisation. Figures are PNGs
embedded as base64 data URIs; the page references no other file.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import time
from pathlib import Path

import numpy as np

from salt.cli import run_cli
from ensemble.tune import HINT_TUNE, apply_rules, describe, load_oof, read_json

N_SHOW = 8

CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}th{background:#eee}td.l,th.l{text-align:left}
.random{color:#c00;font-weight:bold}.kept{color:#080}.rejected{color:#888}img{max-width:100%}
.init{font-size:1.2em}"""


def _png(fig) -> str:
    """An <img> tag with the figure as a base64 PNG data URI; closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _fmt(x, nd=4) -> str:
    return "&ndash;" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{nd}f}"


def _e(s) -> str:
    return html.escape(str(s))


def steps_table(steps, final, folds) -> str:
    """HTML table: rows = steps (+ final), columns = fold 0..k-1, overall, kept."""
    head = "".join(f"<th>fold {k}</th>" for k in folds)
    rows = [f'<table class="steps"><tr><th class="l">step</th>{head}<th>overall</th><th>kept</th>'
            f'<th class="l">parameters (best tried)</th></tr>']
    for s in steps:
        fs = s["folds"] or [None] * len(folds)
        kept = "yes" if s["kept"] else ("skipped" if s["overall"] is None else "no")
        params = _e(json.dumps(s["params"])) if s["params"] else _e(s.get("note", ""))
        rows.append(f'<tr><td class="l">{_e(s["name"])}</td>' + "".join(f"<td>{_fmt(v)}</td>" for v in fs)
                    + f'<td><b>{_fmt(s["overall"])}</b></td><td class="{"kept" if s["kept"] else "rejected"}">'
                    f'{kept}</td><td class="l">{params}</td></tr>')
    rows.append('<tr><td class="l"><b>final (kept rules)</b></td>' + "".join(
        f"<td>{_fmt(v)}</td>" for v in final["folds"]) + f'<td><b>{_fmt(final["overall"])}</b></td><td></td><td></td></tr>')
    return "\n".join(rows) + "</table>"


def curves_figure(sweeps) -> str:
    """Score vs binarisation threshold, vs P(empty) threshold, vs minimum area, vs classifier weight."""
    import matplotlib.pyplot as plt

    panels = [("threshold", "mask threshold"), ("empty_threshold", "P(empty) threshold (classifier)"),
              ("min_area", "minimum area (pixels)")]
    panels = [(k, lab) for k, lab in panels if k in sweeps]
    comb = sweeps.get("combination")
    n = len(panels) + (1 if comb and len(comb["w"]) > 1 else 0)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False)
    for ax, (k, lab) in zip(axes[0], panels):
        x, y = sweeps[k]["x"], sweeps[k]["score"]
        ax.plot(x, y, ".-")
        i = int(np.argmax(y))
        ax.plot([x[i]], [y[i]], "ro")
        ax.set_xlabel(lab)
        ax.set_ylabel("OOF score")
        ax.grid(alpha=0.3)
    if n > len(panels):
        ax = axes[0][-1]
        ax.plot(comb["w"], comb["best_per_w"], ".-")
        ax.set_xlabel("classifier weight w (best P(empty) threshold)")
        ax.set_ylabel("OOF score")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def roc_figure(truth_empty, p_empty) -> tuple[str, float]:
    """The classifier's ROC curve (positive = empty mask) and its AUC."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    if truth_empty.all() or not truth_empty.any():
        return "<p>ROC undefined: the truth has only one class.</p>", float("nan")
    fpr, tpr, _ = roc_curve(truth_empty, p_empty)
    auc = float(roc_auc_score(truth_empty, p_empty))
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, label=f"AUC {auc:.4f}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (empty mask)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _png(fig), auc


def images_figure(images, truth, pred, scores, idx, ids) -> str:
    """Grey images with truth (green) and prediction (red) contours."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(len(idx), 1), figsize=(2.0 * max(len(idx), 1), 2.3), squeeze=False)
    for ax, i in zip(axes[0], idx):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        for m, c in ((truth[i], "lime"), (pred[i], "red")):
            if m.any() and not m.all():
                ax.contour(m.astype(np.float32), levels=[0.5], colors=c, linewidths=1.0)
        ax.set_title(f"{ids[i][:10]}\nscore {scores[i]:.2f}", fontsize=7)
        ax.axis("off")
    for ax in axes[0][len(idx):]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def pick_images(scores, coverage, n=N_SHOW):
    """(worst, best) image indices: worst = lowest score (larger truth coverage first on ties); best =
    highest score, non-empty and larger truth coverage first on ties (so not all trivially-empty images)."""
    worst = np.lexsort((-coverage, scores))[:n]
    best = np.lexsort((-coverage, -scores))[:n]
    return worst, best


def _model_rows(seg, clf) -> str:
    rows = ['<table><tr><th class="l">model</th><th class="l">encoder init</th><th class="l">preset</th>'
            '<th class="l">backbone</th><th>wall s</th><th class="l">OOF (model\'s own metrics)</th></tr>']
    for name, m in (("segmenter", seg), ("classifier", clf)):
        if m is None:
            rows.append(f'<tr><td class="l">{name}</td><td class="l" colspan="5">not trained (segmenter-only run)</td></tr>')
            continue
        init = str(m.get("encoder_init", "unknown"))
        cls = "random" if init == "random" or init == "unknown" else ""
        rows.append(f'<tr><td class="l">{name}</td><td class="l init {cls}">encoder init: {_e(init)}</td>'
                    f'<td class="l">{_e(m.get("preset", "?"))}</td><td class="l">{_e(m.get("backbone", ""))}</td>'
                    f'<td>{_fmt(m.get("wall_s"), 1)}</td><td class="l">{_e(json.dumps(m.get("overall", {})))}</td></tr>')
    return "\n".join(rows) + "</table>"


def report(data_dir, out_dir) -> Path:
    """Write OUT/report.html (atomically) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    from salt.io import atomic_path
    from salt.metric import image_scores

    out = Path(out_dir)
    tuning = read_json(out / "ensemble" / "tuning.json", HINT_TUNE)
    sub_path = out / "ensemble" / "submit.json"
    submit = json.loads(sub_path.read_text()) if sub_path.is_file() else None
    d = load_oof(data_dir, out)
    seg, clf = d["seg_metrics"], d["clf_metrics"]
    folds = tuning["folds"]

    pred = apply_rules(d["prob"], d["p_salt"], d["p_empty"], tuning["params"])
    scores = image_scores(d["truth"], pred)
    coverage = d["truth"].reshape(len(pred), -1).mean(axis=1)
    worst, best = pick_images(scores, coverage)

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>TGS Salt run report</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>TGS Salt run report</h1>",
             f"<p>data <code>{_e(data_dir)}</code>, run <code>{_e(out)}</code>, {len(d['ids'])} training images, "
             f"{len(folds)} folds, fingerprint <code>{_e(tuning['fingerprint'])}</code>, "
             f"generated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>",
             "<h2>Models</h2>", _model_rows(seg, clf),
             "<h2>Out-of-fold score by step</h2>",
             "<p>Each rule is kept only if it raises the out-of-fold competition score over the step before. "
             "Scores of rejected steps are those of the best setting tried.</p>",
             steps_table(tuning["steps"], tuning["final"], folds),
             f"<p>Chosen: <b>{_e(describe(tuning['params']))}</b>. "
             f"Segmenter-only rules (used when no classifier prediction is given): "
             f"{_e(describe(tuning['params_segmenter_only']))}, OOF "
             f"{_fmt(tuning['segmenter_only']['final']['overall'])}.</p>",
             "<h2>Score curves</h2>", curves_figure(tuning["sweeps"])]
    parts.append("<h2>Classifier ROC (out-of-fold)</h2>")
    if d["p_empty"] is not None:
        fig, auc = roc_figure(~d["truth"].reshape(len(pred), -1).any(axis=1), d["p_empty"])
        parts += [f"<p>AUC {_fmt(auc)} (positive class: empty mask)</p>", fig]
    else:
        parts.append("<p>No classifier in this run.</p>")
    parts += ["<h2>Worst and best out-of-fold images</h2>",
              "<p>Truth contour green, prediction red (final rules).</p><h3>worst</h3>",
              images_figure(d["images"], d["truth"], pred, scores, worst, d["ids"]), "<h3>best</h3>",
              images_figure(d["images"], d["truth"], pred, scores, best, d["ids"])]

    walls = [("segmenter training", seg.get("wall_s")), ("classifier training", None if clf is None else clf.get("wall_s")),
             ("ensemble tuning", tuning.get("wall_s")), ("submission", None if submit is None else submit.get("wall_s"))]
    parts.append('<h2>Wall time</h2><table><tr><th class="l">step</th><th>seconds</th></tr>' + "".join(
        f'<tr><td class="l">{n}</td><td>{_fmt(w, 1) if w is not None else "not recorded"}</td></tr>' for n, w in walls)
        + "</table>")
    if submit is not None:
        parts.append(f"<h2>Submission</h2><p><code>{_e(submit['path'])}</code>: {submit['n_images']} images, "
                     f"{submit['n_empty']} empty masks, {_e(submit['mode'])}, rows in {_e(submit['order'])}; "
                     f"prediction set <code>{_e(submit['pred'])}</code>.</p>")
    parts.append("</body></html>\n")

    path = out / "report.html"
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
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
