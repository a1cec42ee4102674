"""The report's figures, drawn with matplotlib's object API (no pyplot, no global backend state).

Each function returns a matplotlib Figure; ensemble.page.figure embeds it as a PNG.
"""
from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from ensemble.training_logs import SPECS, by_fold

TRUTH_COLOR = "#00b4ff"   # truth: filled
PRED_COLOR = "#ff2d00"    # prediction: outlined
TEST_FRAME_COLOR = "#ffd400"  # mosaics: the frame of a test tile
NO_TILE_COLOR = "#d8d8d8"     # mosaics: a cell without a tile
FOLD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]


def _fold_color(fold: int) -> str:
    return FOLD_COLORS[fold % len(FOLD_COLORS)]


# -------------------------------------------------------------------------------------------- training
def _fold_series(stages, spec, boundaries):
    """Per stage of one fold: x in epochs (1-based, continuing over the stages), x in minutes (or None),
    the columns to plot and the best epoch's position."""
    t0 = 0.0
    minutes_ok = True
    out = []
    for i, st in enumerate(stages):
        if st.log is None:
            minutes_ok = False
            continue
        x = boundaries[i] + st.log["epoch"].to_numpy(dtype=np.float64) + 1
        sec = st.seconds()
        if sec is None:
            minutes_ok = False
        xm = None
        if minutes_ok:
            xm = t0 + np.cumsum(sec) / 60.0
            t0 = float(xm[-1])
        out.append({"stage": st, "x": x, "xm": xm, "loss": st.column("loss"),
                    "val_loss": st.column(spec.val_loss) if spec.val_loss else None,
                    "score": st.column(spec.score), "best": st.best()})
    return out


def stage_boundaries(stages) -> list[int]:
    """Epoch offsets of the stages of a fold (from the planned epochs, else from the longest logs)."""
    folds = by_fold(stages)
    n = max((len(v) for v in folds.values()), default=0)
    lengths = []
    for i in range(n):
        per = [v[i] for v in folds.values() if len(v) > i]
        planned = [s.planned for s in per if s.planned]
        lengths.append(max(planned) if planned else max((s.epochs for s in per), default=0))
    return [int(x) for x in np.concatenate([[0], np.cumsum(lengths)])]


def _stage_names(stages) -> list[str]:
    names: list[str] = []
    for v in by_fold(stages).values():
        for i, st in enumerate(v):
            if i >= len(names):
                loss = st.detail.split(",")[0] if st.model == "segmenter" and st.detail else ""
                names.append(st.name + (f" ({loss})" if loss else ""))
    return names


def training_figure(stages, model: str, show_minutes: bool) -> Figure:
    """Four panels, every fold in its colour: training loss and validation score against epochs (stages
    shaded and named), the score against minutes of training (where the logs hold ``epoch_s``), and the
    folds side by side (the score of each stage's kept epoch). Each stage's best epoch (its kept
    checkpoint) is circled, the fold's final model (the best epoch of its last stage) starred."""
    spec = SPECS[model]
    folds = by_fold(stages)
    bounds = stage_boundaries(stages)
    names = _stage_names(stages)
    fig = Figure(figsize=(11, 8.4))
    (ax_loss, ax_ep), (ax_min, ax_cmp) = fig.subplots(2, 2)
    for ax in (ax_loss, ax_ep):
        for i in range(len(bounds) - 1):
            if i % 2 == 1:
                ax.axvspan(bounds[i] + 0.5, bounds[i + 1] + 0.5, color="#000", alpha=0.06, lw=0)
            if i > 0:
                ax.axvline(bounds[i] + 0.5, color="#555", lw=0.8, ls=":")
    kept = {}  # fold -> [(stage index, score at the kept epoch)]
    for fold, sts in folds.items():
        c = _fold_color(fold)
        for s in _fold_series(sts, spec, bounds):
            st = s["stage"]
            last = st is sts[-1]
            if s["loss"] is not None:
                ax_loss.plot(s["x"], s["loss"], "-", color=c, lw=1.5, marker=".", ms=4)
            if s["val_loss"] is not None:  # crosses: a one-epoch stage has no line to dash
                ax_loss.plot(s["x"], s["val_loss"], "--", color=c, lw=1.2, marker="x", ms=4)
            if s["score"] is None:
                continue
            b = s["best"]
            ok = b is not None and np.isfinite(s["score"][b])
            if ok:
                kept.setdefault(fold, []).append((sts.index(st), float(s["score"][b])))
            seen = np.isfinite(s["score"])  # epochs not validated (``validate_every``) log NaN
            for ax, x in [(ax_ep, s["x"])] + ([(ax_min, s["xm"])] if show_minutes and s["xm"] is not None else []):
                ax.plot(x[seen], s["score"][seen], "-", color=c, lw=1.5, marker=".", ms=4)
                if ok:
                    if last:
                        ax.plot([x[b]], [s["score"][b]], "*", color=c, ms=14, mec="k", mew=0.7, zorder=5)
                    else:
                        ax.plot([x[b]], [s["score"][b]], "o", mfc="none", mec=c, ms=10, mew=1.8, zorder=5)
    for ax in (ax_loss, ax_ep):
        ax.set_xlabel("epoch (a fold's stages one after another)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if bounds[-1] > 0:  # whole epochs, even where every stage has one epoch (no fractional ticks)
            ax.set_xlim(0.5, bounds[-1] + 0.5)
        if len(bounds) > 1:
            for i, nm in enumerate(names[:len(bounds) - 1]):
                ax.text((bounds[i] + bounds[i + 1]) / 2 + 0.5, 1.01, nm, ha="center", va="bottom", fontsize=9,
                        color="#333", transform=ax.get_xaxis_transform())
    ax_loss.set_title("loss" + (" (solid, dots: training; dashed, crosses: validation)" if spec.val_loss
                                else " (training)"),
                      pad=16)
    ax_ep.set_title(f"{spec.score_label} per epoch", pad=16)
    ax_ep.set_ylabel(spec.score_label)
    ax_min.set_title(f"{spec.score_label} against training time")
    if show_minutes:
        ax_min.set_xlabel("minutes of training per fold (validation included)")
        ax_min.set_ylabel(spec.score_label)
    else:
        ax_min.text(0.5, 0.5, "these logs have no epoch_s column\n(a run from before it was logged):\n"
                    "no time axis", ha="center", va="center", transform=ax_min.transAxes, color="#666")
        ax_min.set_xticks([])
        ax_min.set_yticks([])
    # the folds side by side: the score of each stage's kept epoch, the final model starred
    markers = "os^D"
    for fold, vals in kept.items():
        c = _fold_color(fold)
        for i, v in vals:
            final = i == len(folds[fold]) - 1
            ax_cmp.plot([fold], [v], "*" if final else markers[i % len(markers)], ms=15 if final else 8,
                        color=c, mfc=c if final else "none", mec="k" if final else c, mew=0.7 if final else 1.6)
            if final:
                ax_cmp.annotate(f"{v:.4f}", (fold, v), xytext=(10, -4), textcoords="offset points", fontsize=9)
        ax_cmp.plot([fold] * len(vals), [v for _, v in vals], "-", color=c, lw=0.8, alpha=0.6)
    finals = [vals[-1][1] for f, vals in kept.items() if vals and vals[-1][0] == len(folds[f]) - 1]
    if finals:
        ax_cmp.axhline(float(np.mean(finals)), color="k", ls="--", lw=1)
    ax_cmp.set_xticks(list(folds), [f"fold {f}" for f in folds])
    ax_cmp.set_xlim(min(folds) - 0.6, max(folds) + 0.9)
    marker_names = {"o": "circle", "s": "square", "^": "triangle", "D": "diamond"}
    stage_key = ", ".join(f"{'star' if i == len(names) - 1 else marker_names.get(markers[i], 'marker')} {nm}"
                          for i, nm in enumerate(names)) if len(names) > 1 else ""
    ax_cmp.set_title("the folds side by side: each stage's kept epoch, as validated\nduring training (one "
                     "checkpoint, no flip TTA)"
                     + (f"; dashed: mean over the folds, {np.mean(finals):.4f}" if finals else ""), fontsize=9.5)
    if stage_key:
        ax_cmp.set_xlabel("stages: " + stage_key, fontsize=9)
    ax_cmp.margins(y=0.15)
    ax_cmp.set_ylabel(spec.score_label)
    for ax in (ax_loss, ax_ep, ax_min, ax_cmp):
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=_fold_color(f), lw=2, label=f"fold {f}") for f in folds]
    handles += [Line2D([], [], ls="none", marker="o", mfc="none", mec="k", ms=10, label="best epoch of a stage"),
                Line2D([], [], ls="none", marker="*", color="#888", mec="k", ms=14,
                       label="the fold's final model")]
    if spec.monitor != spec.score:
        handles.append(Line2D([], [], ls="none", label=f"(best = lowest {spec.monitor})"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False, fontsize=9.5)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


# ---------------------------------------------------------------------------------------------- images
def _outline(ax, mask, color, lw):
    """Outline a bool mask; padded so a mask touching the border (or covering all) is closed too."""
    if not mask.any():
        return
    p = np.pad(mask.astype(np.float32), 1)
    r = np.arange(-1, mask.shape[0] + 1)
    c = np.arange(-1, mask.shape[1] + 1)
    ax.contour(c, r, p, levels=[0.5], colors=color, linewidths=lw)


def tile(ax, image, truth, pred, title: str) -> None:
    """One image: grey, truth filled, prediction outlined, a title."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if truth.any():
        ax.imshow(np.ma.masked_where(~truth, np.ones(truth.shape)), cmap=ListedColormap([TRUTH_COLOR]),
                  alpha=0.45, vmin=0, vmax=1, interpolation="nearest")
        _outline(ax, truth, TRUTH_COLOR, 0.8)
    _outline(ax, pred, PRED_COLOR, 2.0)
    ax.set_xlim(-1.5, image.shape[1] + 0.5)
    ax.set_ylim(image.shape[0] + 0.5, -1.5)
    ax.set_title(title, fontsize=9)
    ax.axis("off")  # no frame: a prediction outline along the image's edge stays visible


def tiles_figure(images, truth, pred, rows, titles: dict, ncols: int, tile_in: float = 2.5) -> Figure:
    """A grid of tiles: `rows` is a list of (row label or "", indices); titles[i] is image i's title."""
    nrows = max(len(rows), 1)
    fig = Figure(figsize=(tile_in * ncols + (0.4 if any(lab for lab, _ in rows) else 0),
                          (tile_in + 0.45) * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for r, (label, idx) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            if c < len(idx):
                i = int(idx[c])
                tile(ax, images[i], truth[i], pred[i], titles[i])
            else:
                ax.axis("off")
            if c == 0 and label:
                ax.text(-0.06, 0.5, label, transform=ax.transAxes, rotation=90, ha="right", va="center",
                        fontsize=11, fontweight="bold")
                if c >= len(idx):
                    ax.text(0.5, 0.5, "no image in this class", transform=ax.transAxes, ha="center",
                            fontsize=9, color="#666")
    fig.tight_layout()
    return fig


def mosaic_figure(image, truth, pred, test_cells, empty_cells, tile_px: int = 101, max_w: float = 10.0,
                  max_h: float = 12.0, tile_in: float = 1.8) -> Figure:
    """One mosaic (salt.mosaic.mosaic_canvas's picture) in one panel: train tiles with their true masks
    filled blue, test tiles framed yellow with the submitted masks filled light red and outlined red, cells
    without a tile grey. `truth` holds the train tiles' masks only and `pred` the test tiles' (bool, the
    image's shape); `test_cells` and `empty_cells` are (row, col) cells. A tile is drawn at most `tile_in`
    inches, the panel within `max_w` x `max_h` inches; a legend below."""
    rows, cols = image.shape[0] // tile_px, image.shape[1] // tile_px
    t = min(tile_in, max_w / cols, max_h / rows)
    width = max(cols * t, 4.0)
    one_line = width >= 7  # the legend on one line below the panel, else on two
    foot = 0.45 if one_line else 0.7
    fig = Figure(figsize=(width, rows * t + foot))
    ax = fig.add_axes((0, foot / (rows * t + foot), 1, rows * t / (rows * t + foot)))
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    for mask, color, alpha, lw in ((truth, TRUTH_COLOR, 0.45, 0.8), (pred, PRED_COLOR, 0.22, 1.6)):
        if mask is not None and mask.any():
            ax.imshow(np.ma.masked_where(~mask, np.ones(mask.shape)), cmap=ListedColormap([color]), alpha=alpha,
                      vmin=0, vmax=1, interpolation="nearest")
            _outline(ax, mask, color, lw)
    for r, c in empty_cells:
        ax.add_patch(Rectangle((c * tile_px - 0.5, r * tile_px - 0.5), tile_px, tile_px, facecolor=NO_TILE_COLOR,
                               edgecolor="#b0b0b0", hatch="//", lw=0, zorder=3))
    inset = 0.04 * tile_px  # inside the tile, so neighbouring frames stay apart
    for r, c in test_cells:
        ax.add_patch(Rectangle((c * tile_px - 0.5 + inset, r * tile_px - 0.5 + inset), tile_px - 2 * inset,
                               tile_px - 2 * inset, fill=False, edgecolor=TEST_FRAME_COLOR, lw=1.3, zorder=4))
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.axis("off")
    handles = [Patch(facecolor=TRUTH_COLOR, alpha=0.6, edgecolor=TRUTH_COLOR, label="train tile: true mask"),
               Patch(fill=False, edgecolor=TEST_FRAME_COLOR, lw=1.3, label="test tile"),
               Patch(facecolor=(1, 0.18, 0, 0.22), edgecolor=PRED_COLOR, lw=1.6, label="test tile: submitted mask")]
    if len(empty_cells):
        handles.append(Patch(facecolor=NO_TILE_COLOR, edgecolor="#b0b0b0", hatch="//", label="no tile found"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles) if one_line else 2,
               frameon=False, fontsize=9)
    return fig


# ------------------------------------------------------------------------------------------- tuning
SWEEP_PANELS = [("threshold", "mask threshold"), ("empty_threshold", "P(empty) threshold (classifier)"),
                ("min_area", "minimum area (pixels)"), ("combination", "classifier weight w (best P(empty) threshold)")]


def sweep_curve(sweeps, key):
    """(x, score) of a sweep as the tuning wrote it, or None: the classifier weight's curve is the best
    score over the P(empty) thresholds at each weight."""
    sw = sweeps.get(key)
    if not isinstance(sw, dict):
        return None
    if key == "combination":
        x, y = sw.get("w") or [], sw.get("best_per_w") or []
        return (x, y) if len(x) > 1 and len(x) == len(y) else None
    x, y = sw.get("x") or [], sw.get("score") or []
    return (x, y) if len(x) and len(x) == len(y) else None


def curves_figure(sweeps, chosen=None) -> Figure | None:
    """Score against each swept parameter (mask threshold, P(empty) threshold, minimum area, classifier
    weight). `chosen` {key: {"x", "kept", "edge"}}: the setting the tuning fitted for that sweep, marked
    red, filled where its rule was kept and hollow where it was not (then it is the best setting tried); a
    setting at the end of its sweep is labelled so."""
    chosen = chosen or {}
    panels = [(k, lab, c) for k, lab in SWEEP_PANELS if (c := sweep_curve(sweeps, k)) is not None]
    if not panels:
        return None
    fig = Figure(figsize=(3.8 * len(panels), 3.3))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (k, lab, (x, y)) in zip(axes, panels):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        ax.plot(x, y, ".-")
        mark = chosen.get(k)
        i = int(np.argmin(np.abs(x - float(mark["x"])))) if mark and mark.get("x") is not None else int(np.argmax(y))
        kept = bool(mark.get("kept", True)) if mark else True
        ax.plot([x[i]], [y[i]], "o", color="red", mfc="red" if kept else "none", ms=8, mew=2, zorder=5)
        label = f"{x[i]:g} " + ("chosen" if kept else "best tried, rule not kept")
        ax.annotate(label + (",\nat the end of the sweep" if mark and mark.get("edge") else ""), (x[i], y[i]),
                    xytext=(0, 8), textcoords="offset points", ha="right" if i > len(x) / 2 else "left",
                    fontsize=8.5, color="red")
        ax.set_xlabel(lab)
        ax.set_ylabel("out-of-fold score (in-sample)")
        ax.margins(y=0.2)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def roc_figure(truth_empty, p_empty, fold, labels: dict) -> Figure | None:
    """The classifier's ROC curves (positive = empty mask): all folds pooled (black) and each fold in its
    colour, from the same out-of-fold P(empty) that the tables score; `labels` {fold or "pooled": legend
    text} (their AUCs, computed once by the report). None where the truth has one class only."""
    from sklearn.metrics import roc_curve

    truth_empty, p_empty, fold = np.asarray(truth_empty, bool), np.asarray(p_empty, np.float64), np.asarray(fold)
    if truth_empty.all() or not truth_empty.any():
        return None
    fig = Figure(figsize=(4.8, 4.8))
    ax = fig.subplots()
    for k in sorted(set(fold.tolist())):
        sel = fold == k
        if truth_empty[sel].all() or not truth_empty[sel].any() or k not in labels:
            continue
        fpr, tpr, _ = roc_curve(truth_empty[sel], p_empty[sel])
        ax.plot(fpr, tpr, color=_fold_color(int(k)), lw=1.2, label=labels[k])
    fpr, tpr, _ = roc_curve(truth_empty, p_empty)
    ax.plot(fpr, tpr, color="k", lw=2.2, label=labels.get("pooled", "all folds pooled"))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (empty mask)")
    ax.legend(loc="lower right", fontsize=8.5)
    fig.tight_layout()
    return fig
