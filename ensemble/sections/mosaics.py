"""The report's tile-mosaic section: the largest mosaics drawn whole (train tiles with their true masks,
test tiles with the submitted ones), the counts, and the tuning's verdict on the rules from neighbours.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ensemble import figures
from ensemble.inputs import HINT_MOSAIC, mosaic_images, mosaic_path, submitted_masks
from ensemble.nested import step_name
from ensemble.page import e, figure, note, num, section
from ensemble.sections.tuning import gain_text, params_text
from ensemble.tuning_record import nested, tuning_steps
from salt.cli import UserError
from salt.layout import Data, Out
from salt.mosaic import mosaic_canvas


N_MOSAICS = 4      # largest tile mosaics drawn
MOSAIC_RULES = ("vertical", "constant")  # the tuning's rules from labelled neighbours (ensemble.tune)


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
