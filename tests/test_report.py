"""Tests of the HTML report (ensemble.report) on a run folder fabricated here: synthetic data, and every
file the trainers and the tuner write (oof.npz of each model, metrics.json, run.json, log.csv per stage,
tuning.json, submit.json) written directly, so no model is trained. No browser is needed."""
from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble import coverage as cov
from ensemble.training_logs import Stage, read_log, verdict
from salt.data import load_train
from salt.folds import load_or_make_folds, run_fingerprint
from salt.io import save_npz, write_csv, write_json

REPO = Path(__file__).resolve().parents[1]
SEG_ROUNDS = [{"loss": "bce_dice", "epochs": 6, "lr": 3e-3}, {"loss": "lovasz", "epochs": 3, "lr": 1e-3}]
CLF_STAGES = [{"name": "head", "epochs": 2, "lr": 1e-3, "frozen": True},
              {"name": "finetune", "epochs": 4, "lr": 1e-4, "lr_random": 1e-3, "frozen": False}]
K = 3
MISSING_LOG = Path("segmenter") / "round2" / "fold2" / "log.csv"  # as if fold 2 stopped after round 1
# The fabricated tile mosaics, one grid each: "r" a train tile, "t" a test tile, "." no tile. Mosaics 3 and 4
# tie at 2 tiles, so 4 is the fifth largest (not drawn); mosaic 5 has a single tile (no mosaic at all).
MOSAICS = [["rrrt", "rr.t", "rrrt"], ["rr", "rt"], ["rtr"], ["r", "t"], ["rr"], ["r"]]


# ------------------------------------------------------------------------------------------ fabrication
def blur(masks, passes=3):
    x = masks.astype(np.float32)
    for _ in range(passes):
        p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        x = sum(p[:, 1 + dy:p.shape[1] - 1 + dy, 1 + dx:p.shape[2] - 1 + dx]
                for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    return x


def seg_log(rng, epochs, start, epoch_s):
    e = np.arange(epochs)
    df = pd.DataFrame({"epoch": e, "edge_loss": 0.4 - 0.01 * e, "loss": 1.2 - 0.05 * e + rng.normal(0, 0.01, epochs),
                       "mask_loss": 1.0 - 0.05 * e, "salt_loss": 0.69 - 0.01 * e,
                       "val_score": np.clip(start + 0.04 * np.sqrt(e + 1) + rng.normal(0, 0.01, epochs), 0, 1),
                       "val_threshold": 0.5})
    if epoch_s:
        df["epoch_s"] = rng.uniform(25, 35, epochs)
    return df


def clf_log(rng, epochs, epoch_s):
    e = np.arange(epochs)
    df = pd.DataFrame({"epoch": e, "accuracy": 0.6 + 0.05 * e, "auc": 0.6 + 0.06 * e, "loss": 0.7 - 0.05 * e,
                       "val_accuracy": 0.6 + 0.04 * e, "val_auc": 0.65 + 0.05 * e + rng.normal(0, 0.01, epochs),
                       "val_loss": 0.7 - 0.04 * e + np.where(e == epochs - 1, 0.06, 0.0)})
    if epoch_s:
        df["epoch_s"] = rng.uniform(10, 20, epochs)
    return df


def make_mosaics(data_dir, out, train_ids, train_masks):
    """Write OUT/mosaic.csv laid out as MOSAICS (train tiles with the most salt first) and OUT/submission.csv
    with a disc of salt in every test image; returns the mosaic table."""
    from salt.data import load_images
    from salt.rle import write_submission

    test_ids, _ = load_images(Path(data_dir) / "test" / "images")
    by_salt = iter(np.array(train_ids)[np.argsort(-train_masks.reshape(len(train_ids), -1).sum(axis=1),
                                                  kind="stable")])
    tests = iter(test_ids)
    rows = []
    for m, grid in enumerate(MOSAICS):
        for r, line in enumerate(grid):
            for c, kind in enumerate(line):
                if kind != ".":
                    tile = next(by_salt if kind == "r" else tests)
                    rows.append({"id": str(tile), "mosaic": m, "row": r, "col": c})
    df = pd.DataFrame(rows)
    write_csv(Path(out) / "mosaic.csv", df)
    yy, xx = np.mgrid[:101, :101]
    discs = np.stack([(yy - 50) ** 2 + (xx - 30 - 4 * k) ** 2 < 300 + 40 * k for k in range(len(test_ids))])
    write_submission(Path(out) / "submission.csv", test_ids, discs)
    return df


def make_run(data_dir, out, epoch_s=True, seed=0):
    """Write a complete run folder for the data in `data_dir` and return its fingerprint."""
    from ensemble.tune import tune

    rng = np.random.default_rng(seed)
    out = Path(out)
    tr = load_train(data_dir)
    n = len(tr.ids)
    folds = load_or_make_folds(out, tr.ids, tr.masks, k=K)
    fold = folds.set_index("id").loc[tr.ids, "fold"].to_numpy()
    fp = run_fingerprint(tr, out / "folds.csv")
    empty = ~tr.masks.reshape(n, -1).any(axis=1)
    prob = blur(tr.masks) * 0.8 + 0.1 + rng.normal(0, 0.1, tr.masks.shape)
    p_salt = np.clip(np.where(empty, 0.3, 0.7) + rng.normal(0, 0.2, n), 0, 1)
    p_empty = np.where(empty, rng.uniform(0.4, 1.0, n), rng.uniform(0.0, 0.6, n))
    yy, xx = np.mgrid[:101, :101]
    fpos = np.flatnonzero(empty)[::3]  # confident false-positive blobs on a third of the empty images
    for i in fpos:
        cy, cx = rng.integers(25, 75, 2)
        prob[i][(yy - cy) ** 2 + (xx - cx) ** 2 < 100 + 80 * (i % 5)] = 0.9
    p_salt[fpos], p_empty[fpos] = 0.9, 0.1
    prob[np.flatnonzero(~empty)[::5]] = 0.05  # every fifth image with salt is missed
    prob = np.clip(prob, 0, 1).astype(np.float16)
    p_salt = p_salt.astype(np.float16)
    save_npz(out / "segmenter" / "oof.npz", ids=np.array(tr.ids), fold=fold, prob=prob, p_salt=p_salt)
    env = {"backend": "tensorflow", "gpu": False, "dtype_policy": "float32",
           "versions": {"python": "3.11.2", "keras": "3.15.1"}}
    write_json(out / "segmenter" / "run.json", {
        "preset": "cpu", "fingerprint": fp, "encoder_init": "random", "folds": K, "environment": env,
        "config": {"network": {"layers": [2, 2, 2, 2], "width": 0.25, "input_size": 64}, "encoder_weights": "none",
                   "batch_size": 32, "mixed_precision": False, "rounds": SEG_ROUNDS}})
    write_json(out / "segmenter" / "metrics.json", {
        "folds": [{"fold": k, "score": 0.69 + 0.0123456789 * k, "threshold": 0.45 + 0.05 * k, "images": 20}
                  for k in range(K)],
        "overall": {"score": 0.7121234567, "threshold": 0.5, "score_empty_images": 0.9612345,
                    "score_salt_images": 0.5531234},
        "preset": "cpu", "encoder_init": "random", "fingerprint": fp, "folds_k": K, "wall_s": 5160.0,
        "environment": env})
    for k in range(K):
        for r, rnd in enumerate(SEG_ROUNDS, 1):
            path = out / "segmenter" / f"round{r}" / f"fold{k}" / "log.csv"
            if path == out / MISSING_LOG:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            log = seg_log(rng, rnd["epochs"], 0.4 + 0.1 * r, epoch_s)
            if (k, r) == (1, 1):  # validated every 3rd epoch (``validate_every``): NaN in between, as Keras logs it
                log.loc[(log["epoch"] + 1) % 3 != 0, ["val_score", "val_threshold"]] = np.nan
            log.to_csv(path, index=False)
    save_npz(out / "classifier" / "oof.npz", ids=np.array(tr.ids), fold=fold, p_empty=p_empty)
    write_json(out / "classifier" / "run.json", {
        "preset": "cpu", "fingerprint": fp, "encoder_init": "random", "backbone": "densenet121", "folds": K,
        "config": {"input_size": 64, "dropout": 0.3, "batch_size": 32, "stages": CLF_STAGES}})
    write_json(out / "classifier" / "metrics.json", {
        "folds": [{"fold": k, "auc": 0.85 + 0.01111 * k, "accuracy": 0.8 + 0.00555 * k, "logloss": 0.45 + 0.0321 * k,
                   "images": 20} for k in range(K)],
        "overall": {"auc": 0.8523456, "accuracy": 0.7781234, "logloss": 0.4891234, "images": n},
        "backbone": "densenet121", "preset": "cpu", "encoder_init": "random", "fingerprint": fp, "folds_k": K,
        "wall_s": 4080.0})
    for k in range(K):  # random encoder: no head stage
        path = out / "classifier" / f"fold{k}" / "finetune" / "log.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        clf_log(rng, 4, epoch_s).to_csv(path, index=False)
    make_mosaics(data_dir, out, tr.ids, tr.masks)
    tune(data_dir, out)  # with OUT/mosaic.csv: it tries the rules from labelled neighbours
    write_json(out / "ensemble" / "submit.json", {
        "path": str(out / "submission.csv"), "n_images": 10, "n_empty": 4, "mode": "segmenter + classifier",
        "order": "sample_submission.csv", "pred": "submit", "wall_s": 105.0,
        "predict_wall_s": {"segmenter": 57.0, "classifier": 39.0}})
    return fp


# --------------------------------------------------------------------------------------- reading the page
class Page(HTMLParser):
    """Tables (rows of cell texts, with the heading above them), image sources, links and notes."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.imgs, self.links, self.notes = [], [], [], []
        self.figs = []  # (heading above, src) of every image
        self.heading, self._in_h, self._row, self._cell, self._note = "", None, None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("h2", "h3"):
            self._in_h, self.heading = tag, ""
        elif tag == "table":
            self.tables.append({"heading": self.heading, "rows": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
            self.figs.append((self.heading, a.get("src", "")))
        elif tag == "a":
            self.links.append(a.get("href", ""))
        elif tag == "p" and "note" in (a.get("class") or ""):
            self._note = ""
        for k in ("src", "href"):
            if k in a and tag not in ("img", "a"):
                self.links.append(a[k])

    def handle_endtag(self, tag):
        if tag == self._in_h:
            self._in_h = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join(self._cell.split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1]["rows"].append(self._row)
            self._row = None
        elif tag == "p" and self._note is not None:
            self.notes.append(" ".join(self._note.split()))
            self._note = None

    def handle_data(self, data):
        if self._in_h:
            self.heading += data
        if self._cell is not None:
            self._cell += data
        if self._note is not None:
            self._note += data

    def table(self, heading_start, first_header=None):
        """The first table under a heading that starts with `heading_start` (and whose first header cell is)."""
        for t in self.tables:
            if t["heading"].startswith(heading_start) and (first_header is None or t["rows"][0][0] == first_header):
                return t["rows"]
        raise AssertionError(f"no table under a heading {heading_start!r}")


def plain(text):
    """The page's text without tags, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", text)).split())


def section_text(text, anchor):
    """The plain text of the report section with this anchor, its title first."""
    return plain(text.split(f'<h2 id="{anchor}">')[1].split("<h2")[0])


def row(rows, first):
    found = [r for r in rows if r[0] == first]
    assert len(found) == 1, f"row {first!r} not found once in {rows}"
    return found[0]


def decode_png(src):
    """The image of a data URI, as an array; asserts it is a PNG that decodes and is not blank."""
    from PIL import Image

    assert src.startswith("data:image/png;base64,"), src[:40]
    img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
    assert img.format == "PNG"
    img.load()
    arr = np.asarray(img.convert("RGB"))
    assert arr.shape[0] >= 150 and arr.shape[1] >= 150, arr.shape
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 20  # drawn, not a blank or one-colour image
    return arr


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def data_dir(request, tmp_path_factory):
    try:
        return Path(request.getfixturevalue("synthetic_data"))
    except pytest.FixtureLookupError:
        from salt.synthetic import make_dataset

        return Path(make_dataset(tmp_path_factory.mktemp("synth") / "data", 60, 10, seed=0))


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """A fabricated run folder and its report: (out, Page)."""
    from ensemble.report import report

    out = tmp_path_factory.mktemp("run")
    make_run(data_dir, out)
    path = report(data_dir, out)
    assert path == out / "report.html"
    return out, Page(path.read_text(encoding="utf-8"))


@pytest.fixture
def run_copy(run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run[0], out)
    (out / "report.html").unlink()
    return out


# -------------------------------------------------------------------------------------------------- tests
def test_every_figure_decodes_and_nothing_is_outside(run):
    out, page = run
    # segmenter and classifier training, worst / best / false positives, 4 mosaics, tuning curves, ROC
    assert len(page.imgs) == 11
    for src in page.imgs:
        decode_png(src)
    # self-contained: images are data URIs, links point inside the page, and every link has its target
    text = (out / "report.html").read_text()
    assert all(h.startswith("#") for h in page.links) and page.links
    for h in page.links:
        assert f'id="{h[1:]}"' in text
    assert not re.search(r"<(script|link|iframe)\b", text) and "url(" not in text


def test_models_tables(run):
    out, page = run
    rows = page.table("Segmenter: out-of-fold scores per fold")
    assert rows[0] == ["", "fold 0", "fold 1", "fold 2", "all folds pooled"]
    assert [r[0] for r in rows[1:]] == ["segmenter alone, nested", "segmenter alone, in-sample",
                                        "score, images without salt (in-sample)", "score, images with salt (in-sample)",
                                        "images"]
    assert row(rows, "images")[1:] == ["20", "20", "20", "60"]
    # the trainer's own reading is named as such, with its threshold
    assert "The trainer's own reading (metrics.json, printed at the end of training): 0.7121 at threshold 0.50" in \
        plain((out / "report.html").read_text())
    rows = page.table("Classifier: out-of-fold scores per fold")
    assert [r[0] for r in rows[1:]] == ["ROC AUC of P(empty)", "accuracy at 0.5", "log-loss", "images"]
    assert row(rows, "images")[-1] == "60"
    models = page.table("Models", "model")
    assert row(models, "segmenter")[1:] == ["encoder init: random", "cpu", "SE-ResNeXt U-Net", "float32", "3",
                                            "86.0 min"]
    assert row(models, "classifier")[1:] == ["encoder init: random", "cpu", "densenet121", "not recorded", "3",
                                             "68.0 min"]
    text = (out / "report.html").read_text()
    assert text.count('class="init random">encoder init: random') >= 2
    assert "Backend tensorflow, GPU no, dtype policy float32; keras 3.15.1, python 3.11.2." in plain(text)
    assert row(page.table("segmenter: preset"), "round 2")[1] == "epochs 3, loss lovasz, lr 0.001"
    assert "skipped: the encoder started random" in row(page.table("classifier: preset"), "head")[1]
    assert "{" not in "".join(c for t in page.tables for r in t["rows"] for c in r)  # no raw JSON dict in a table


def _cell(v, fmt="{:.4f}"):
    return "–" if v is None else fmt.format(v)


def test_tuning_table_holds_tuning_json(run):
    out, page = run
    t = json.loads((out / "ensemble" / "tuning.json").read_text())
    rows = page.table("Ensemble tuning")
    assert rows[0] == ["step"] + [f"fold {k}" for k in t["folds"]] + [
        "nested", "gain ± s.e.", "in-sample", "kept", "parameters (fitted on all folds)"]
    for s in t["steps"]:
        r = row(rows, s["name"])
        nested = s["nested"] or {"folds": [None] * K, "overall": None}
        assert r[1:K + 1] == [_cell(v) for v in nested["folds"]]  # per fold: the nested (honest) scores
        assert r[K + 1] == _cell(nested["overall"])
        assert r[K + 2] == ("" if s["gain_mean"] is None else f"{s['gain_mean']:+.4f} ± {s['gain_se']:.4f}")
        assert r[K + 3] == _cell(s["overall"])  # in-sample
        why = "" if s["gain_mean"] is None else " (no gain)" if s["gain_mean"] <= 0 else " (within noise)"
        assert r[K + 4] == ("yes" if s["kept"] else "skipped" if s["overall"] is None else "no" + why)
    assert any(s["gain_mean"] is not None for s in t["steps"])
    fin = row(rows, "final (kept rules)")
    assert fin[1:K + 4] == [f"{v:.4f}" for v in t["final"]["nested"]["folds"]] + [
        f"{t['final']['nested']['overall']:.4f}", "", f"{t['final']['overall']:.4f}"]
    assert row(rows, "segmenter alone")[-1] == f"mask threshold {t['steps'][0]['params']['threshold']:.2f}"
    text = " ".join((out / "report.html").read_text().split())
    assert "<i>Nested</i>: each fold's score comes from rules tuned on the other folds only" in text
    assert f"<b>{t['final']['nested']['overall']:.4f}</b> with the tuned rules, nested" in text


def test_tuning_json_from_before_nested_tuning(run_copy, data_dir):
    from ensemble.report import report

    out = run_copy
    path = out / "ensemble" / "tuning.json"
    t = json.loads(path.read_text())
    old_keys = ("name", "kept", "params", "note", "overall", "folds")
    t["steps"] = [{k: s[k] for k in old_keys} for s in t["steps"]]
    t["final"] = {k: t["final"][k] for k in ("overall", "folds")}
    t["params"] = {k: t["params"][k] for k in ("threshold", "empty_rule", "min_area")}
    write_json(path, t)
    page = Page(report(data_dir, out).read_text())
    rows = page.table("Ensemble tuning")
    assert rows[0] == ["step"] + [f"fold {k}" for k in t["folds"]] + ["out-of-fold", "kept", "parameters (best tried)"]
    for s in t["steps"]:
        r = row(rows, s["name"])
        assert r[1:K + 2] == [_cell(v) for v in (s["folds"] or [None] * K)] + [_cell(s["overall"])]
    assert row(rows, "final (kept rules)")[K + 1] == f"{t['final']['overall']:.4f}"


def test_coverage_table_counts_by_hand(run, data_dir):
    from ensemble.rules import apply_rules

    out, page = run
    tr = load_train(data_dir)
    counts = [0] * 6
    for m in tr.masks:  # by hand: salt pixels over 101 x 101
        share = int(m.sum()) / (101 * 101)
        k = 0 if share == 0 else 1 if share < 0.05 else 2 if share < 0.2 else 3 if share < 0.5 else 4 if share < 0.9 else 5
        counts[k] += 1
    rows = page.table("Where it fails")
    names = ["empty", "salt < 5%", "salt 5–20%", "salt 20–50%", "salt 50–90%", "salt > 90%"]
    assert [r[0] for r in rows[1:]] == names + ["all images"]
    assert [int(row(rows, nm)[1]) for nm in names] == counts
    assert row(rows, "all images")[1] == str(len(tr.masks))
    # wholly wrong: false positives on empty images, misses on images with salt, under the tuned rules
    z = np.load(out / "segmenter" / "oof.npz")
    t = json.loads((out / "ensemble" / "tuning.json").read_text())
    p_empty = np.load(out / "classifier" / "oof.npz")["p_empty"]
    assert list(z["ids"]) == list(tr.ids)
    pred = apply_rules(z["prob"], z["p_salt"], p_empty, t["params"])
    empty = ~tr.masks.reshape(len(pred), -1).any(1)
    fp = int((empty & pred.reshape(len(pred), -1).any(1)).sum())
    missed = int((~empty & ~pred.reshape(len(pred), -1).any(1)).sum())
    assert 0 < fp and 0 < missed  # the fabricated run has both
    assert int(row(rows, "empty")[6]) == fp
    assert sum(int(row(rows, nm)[6]) for nm in names[1:]) == missed
    lost = [float(row(rows, nm)[8]) for nm in names]
    assert sum(lost) == pytest.approx(1 - t["final"]["overall"], abs=6 * 5e-5)
    assert float(row(rows, "all images")[4]) == pytest.approx(t["final"]["overall"], abs=5e-5)


def test_training_section_minutes_and_missing_log(run):
    out, page = run
    text = (out / "report.html").read_text()
    assert "against minutes of training (bottom left)" in text and "no <code>epoch_s</code>" not in text
    rows = page.table("Segmenter", "fold")
    assert len(rows) == 1 + K * len(SEG_ROUNDS)
    missing = [r for r in rows if r[:2] == ["2", "round 2"]][0]
    assert "no log.csv" in missing[-1]
    r0 = [r for r in rows if r[:2] == ["0", "round 1"]][0]
    log = pd.read_csv(out / "segmenter" / "round1" / "fold0" / "log.csv")
    b = int(log["val_score"].idxmax())
    assert r0[3:7] == ["6", str(b + 1), f"{log['val_score'][b]:.4f}", f"{log['val_score'].iloc[-1]:.4f}"]
    assert r0[7] == f"{log['epoch_s'].sum() / 60:.1f} min"
    r1 = [r for r in rows if r[:2] == ["1", "round 1"]][0]  # validated at epochs 3 and 6 only
    log1 = pd.read_csv(out / "segmenter" / "round1" / "fold1" / "log.csv")
    assert log1["val_score"].isna().sum() == 4
    b1 = int(log1["val_score"].idxmax())
    assert r1[3:7] == ["6", str(b1 + 1), f"{log1['val_score'][b1]:.4f}", f"{log1['val_score'].iloc[-1]:.4f}"]
    assert any(str(MISSING_LOG) in n and "no log.csv" in n for n in page.notes)
    crow = [r for r in page.table("Classifier", "fold") if r[:2] == ["1", "finetune"]][0]
    clog = pd.read_csv(out / "classifier" / "fold1" / "finetune" / "log.csv")
    cb = int(clog["val_loss"].idxmin())
    assert crow[4:8] == [str(cb + 1), f"{clog['val_loss'][cb]:.4f}", f"{clog['val_loss'].iloc[-1]:.4f}",
                         f"{clog['val_auc'][cb]:.4f}"]
    assert "over-training" in crow[-1]  # the fabricated val_loss rises at the last epoch


def test_time_table_has_every_command_and_their_sum(run, run_copy, data_dir):
    from ensemble.report import report

    out, page = run
    tuning_s = json.loads((out / "ensemble" / "tuning.json").read_text())["wall_s"]
    rows = page.table("Time", "step")
    assert rows[5][0] == "ensemble tuning"  # its seconds come from the tuning run in the fixture
    assert rows[1:5] + rows[6:] == [
        ["segmenter training", "86.0 min"], ["classifier training", "68.0 min"],
        ["segmenter test prediction", "0.95 min"], ["classifier test prediction", "0.65 min"],
        ["submission", "1.8 min"], ["total", f"{(5160 + 4080 + 57 + 39 + tuning_s + 105) / 60:.1f} min"]]
    # a submit.json from before the predictions' times were kept: those rows say so and the sum leaves them out
    sub = json.loads((run_copy / "ensemble" / "submit.json").read_text())
    del sub["predict_wall_s"]
    write_json(run_copy / "ensemble" / "submit.json", sub)
    rows = Page(report(data_dir, run_copy).read_text(encoding="utf-8")).table("Time", "step")
    assert rows[3:5] == [["segmenter test prediction", "not recorded"], ["classifier test prediction", "not recorded"]]
    assert rows[-1] == ["total", f"{(5160 + 4080 + tuning_s + 105) / 60:.1f} min"]


def test_old_logs_without_epoch_s_and_broken_logs(run_copy, data_dir):
    from ensemble.report import report

    out = run_copy
    for p in out.glob("**/log.csv"):
        pd.read_csv(p).drop(columns="epoch_s").to_csv(p, index=False)
    (out / "classifier" / "fold0" / "finetune" / "log.csv").write_text("")
    (out / "segmenter" / "round1" / "fold1" / "log.csv").write_text("epoch,loss\n0,1.0\n1,0.9\n")
    page = Page(report(data_dir, out).read_text())
    assert any("no epoch_s column" in n and "against epochs only" in n for n in page.notes)
    assert "against minutes of training (bottom left)" not in (out / "report.html").read_text()
    assert any("fold 0 finetune" in n and "log.csv is empty" in n for n in page.notes)
    assert any("fold 1 round 1" in n and "no val_score column" in n for n in page.notes)
    assert len(page.imgs) == 11
    for src in page.imgs:
        decode_png(src)


def test_one_stage_without_epoch_s_is_named(run_copy, data_dir):
    from ensemble.report import report

    out = run_copy
    p = out / "segmenter" / "round2" / "fold1" / "log.csv"
    pd.read_csv(p).drop(columns="epoch_s").to_csv(p, index=False)
    text = report(data_dir, out).read_text()
    page = Page(text)
    assert "against minutes of training (bottom left)" in text
    assert [n for n in page.notes if "Not on the time axis" in n] == [
        "Not on the time axis, as their log.csv has no complete epoch_s column (nor the later stages of their "
        "fold): fold 1 round 2."]
    assert not any("against epochs only" in n for n in page.notes)


def test_no_logs_and_no_run_json_still_reports(run_copy, data_dir):
    from ensemble.report import report

    out = run_copy
    for p in out.glob("**/log.csv"):
        p.unlink()
    (out / "segmenter" / "run.json").unlink()
    page = Page(report(data_dir, out).read_text())
    assert any("No log.csv could be read" in n for n in page.notes)
    assert any("no run.json" in n for n in page.notes)
    assert len(page.imgs) == 9  # no training figures


def test_cli_writes_the_report_and_fails_in_one_line(run_copy, data_dir):
    r = subprocess.run([sys.executable, "-m", "ensemble.report", "--data", str(data_dir), "--out", str(run_copy)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wrote {run_copy / 'report.html'}"
    (run_copy / "ensemble" / "tuning.json").unlink()
    r = subprocess.run([sys.executable, "-m", "ensemble.report", "--data", str(data_dir), "--out", str(run_copy)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "tuning.json: not found" in lines[0]


def _near(arr, color, tol=40):
    """How many pixels of an RGB array lie within `tol` of the colour "#rrggbb" in every channel."""
    rgb = np.array([int(color[k:k + 2], 16) for k in (1, 3, 5)])
    return int((np.abs(arr.astype(int) - rgb) <= tol).all(axis=-1).sum())


def test_mosaic_section_draws_the_largest_mosaics(run):
    from ensemble import figures
    from ensemble.nested import step_name

    out, page = run
    text = (out / "report.html").read_text()
    figs = [src for head, src in page.figs if head == "Tile mosaics"]
    assert len(figs) == 4  # the 4 largest of the 5 mosaics of 2+ tiles
    caps = re.findall(r"<figcaption>(Mosaic \d+:[^<]*)</figcaption>", text)
    assert [plain(c) for c in caps] == ["Mosaic 0: 11 tiles (8 train, 3 test) on 3 rows × 4 columns.",
                                        "Mosaic 1: 4 tiles (3 train, 1 test) on 2 rows × 2 columns.",
                                        "Mosaic 2: 3 tiles (2 train, 1 test) on 1 row × 3 columns.",
                                        "Mosaic 3: 2 tiles (1 train, 1 test) on 2 rows × 1 column."]
    big = decode_png(figs[0])
    assert big.shape[1] > big.shape[0] * 1.1  # 4 columns by 3 rows, the legend below
    assert big.shape[1] >= 600  # drawn large enough to read
    # train truth (blue), the submitted masks (red outline), the frames of test tiles, the cell without a tile
    for color in (figures.TRUTH_COLOR, figures.PRED_COLOR, figures.TEST_FRAME_COLOR, figures.NO_TILE_COLOR):
        assert _near(big, color) > 200, color
    tall = decode_png(figs[3])
    assert _near(tall, figures.NO_TILE_COLOR, tol=10) < _near(big, figures.NO_TILE_COLOR, tol=10)
    # the counts: 60 train and 10 test images; mosaic 5 (one tile) is no mosaic
    assert ("5 mosaics of two or more tiles; placed: 16 of 60 train tiles and 6 of 10 test tiles; largest: 11 tiles "
            "on 3 rows × 4 columns (8 train, 3 test).") in plain(text)
    # the tuning tried the rules from labelled neighbours: their nested result
    t = json.loads((out / "ensemble" / "tuning.json").read_text())
    steps = {s["rule"]: s for s in t["steps"]}
    line = plain(text).split("The tuning tried the rules from labelled neighbours: ")[1].split(". ")[0]
    for rule in ("vertical", "constant"):
        s = steps[rule]
        assert s["nested"] is not None and f"{step_name(rule)} – " in line
        assert f"nested score {s['nested']['overall']:.4f}, gain {s['gain_mean']:+.4f} ± {s['gain_se']:.4f}" in line
        assert ("kept" if s["kept"] else "rejected") in line
    assert "without masks" not in text and "no image in" not in text


def test_no_mosaic_is_one_sentence(run_copy, data_dir):
    from ensemble.report import report

    out = run_copy
    (out / "mosaic.csv").unlink()
    text = report(data_dir, out).read_text()
    page = Page(text)
    assert not [src for head, src in page.figs if head == "Tile mosaics"] and len(page.imgs) == 7
    assert section_text(text, "mosaics") == f"Tile mosaics No tile mosaic for this run: {out / 'mosaic.csv'} does not exist " \
                      "(python -m salt.mosaic --data DATA --out OUT writes it)."
    (out / "mosaic.csv").write_text(f"id,mosaic,row,col\n{load_train(data_dir).ids[0]},0,0,0\n")
    text = report(data_dir, out).read_text()  # a lone tile is no mosaic
    assert len(Page(text).imgs) == 7
    assert section_text(text, "mosaics") == ("Tile mosaics No tile mosaic of two or more tiles: no two tiles' edges "
                                             f"matched surely enough ({out / 'mosaic.csv'}).")


def test_mosaic_csv_without_rows(run_copy, data_dir):
    from ensemble.report import report

    (run_copy / "mosaic.csv").write_text("id,mosaic,row,col\n")  # what salt.mosaic writes for no mosaic
    text = report(data_dir, run_copy).read_text()
    assert section_text(text, "mosaics").startswith("Tile mosaics No tile mosaic of two or more tiles")


def test_mosaic_without_submission_or_test_image(run_copy, data_dir):
    from ensemble.report import report

    out = run_copy
    (out / "submission.csv").unlink()
    df = pd.read_csv(out / "mosaic.csv", dtype={"id": str})
    df.loc[(df["mosaic"] == 0) & (df["row"] == 0) & (df["col"] == 3), "id"] = "notanimage"
    write_csv(out / "mosaic.csv", df)
    text = report(data_dir, out).read_text()
    page = Page(text)
    figs = [src for head, src in page.figs if head == "Tile mosaics"]
    assert len(figs) == 4
    for src in figs:
        decode_png(src)
    notes = [n for n in page.notes if "submission.csv" in n]
    assert len(notes) == 1 and "test tiles are drawn without masks" in notes[0]
    assert "1 test tile of the mosaics has no image in" in notes[0] and "notanimage" in notes[0]


# ---------------------------------------------------------------------------------------- the parts alone
def square_mask(n_pixels):
    m = np.zeros(101 * 101, bool)
    m[:n_pixels] = True
    return m.reshape(101, 101)


def test_coverage_classes_and_rows_by_hand():
    # pixels: 0 -> empty; 505 = 4.95% and 510 = 4.9995% -> < 5%; 511 = 5.009% -> 5-20%;
    # 2041 = 20.01% -> 20-50%; 9180 = 89.99% -> 50-90%; 9181 = 90.0% -> > 90%
    pixels = [0, 0, 0, 505, 510, 511, 2041, 9180, 9181, 10201]
    truth = np.stack([square_mask(p) for p in pixels])
    assert cov.coverage_class(truth).tolist() == [0, 0, 0, 1, 1, 2, 3, 4, 5, 5]
    pred = truth.copy()
    pred[0, 50, 50] = True    # a false positive on an empty image
    pred[3] = False           # a miss of a small salt body
    pred[9] = square_mask(5000)  # half of the full image found
    scores = np.array([0, 1, 1, 0, 1, 1, 1, 1, 1, 0.1])
    rows = cov.class_rows(truth, pred, scores)
    assert [r["name"] for r in rows] == cov.CLASS_NAMES + ["all images"]
    assert [r["n"] for r in rows] == [3, 2, 1, 1, 1, 2, 10]
    assert [r["wrong"] for r in rows[:-1]] == [1, 1, 0, 0, 0, 0]
    assert rows[0]["wrong_share"] == pytest.approx(1 / 3)
    assert rows[1]["score"] == pytest.approx(0.5) and rows[5]["score"] == pytest.approx(0.55)
    assert [r["lost"] for r in rows[:-1]] == pytest.approx([0.1, 0.1, 0, 0, 0, 0.09])
    assert rows[-1]["lost"] == pytest.approx(1 - scores.mean())
    assert rows[5]["iou"] == pytest.approx((1 + 5000 / 10201) / 2)
    assert cov.worst_false_positives(truth, pred).tolist() == [0]
    worst = cov.worst_by_class(truth, pred, scores, n=2)
    assert worst[1].tolist() == [3, 4] and worst[5].tolist() == [9, 8]


def test_read_log_is_robust(tmp_path):
    assert read_log(tmp_path / "nope.csv") == (None, ["no log.csv"])
    p = tmp_path / "log.csv"
    p.write_text("")
    assert read_log(p)[0] is None and "empty" in read_log(p)[1][0]
    p.write_bytes(b"\x00\xff\xfe garbage\n\x00")
    df, notes = read_log(p)  # whatever pandas makes of it, no exception escapes
    # a resumed run repeats an epoch: the last row of it wins, rows come sorted
    p.write_text("epoch,loss,val_score\n0,1.0,0.1\n1,0.9,0.2\n1,0.8,0.3\n2,0.7,0.25\n")
    df, notes = read_log(p)
    assert df["epoch"].tolist() == [0, 1, 2] and df["val_score"].tolist() == [0.1, 0.3, 0.25] and not notes
    p.write_text("loss,val_score\n1.0,0.1\n0.9,0.2\n")
    df, notes = read_log(p)
    assert df["epoch"].tolist() == [0, 1] and "no epoch column" in notes[0]


def _stage(values, model="segmenter"):
    col = "val_score" if model == "segmenter" else "val_loss"
    return Stage(model, 0, "round 1", "", Path("x"), None,
                 pd.DataFrame({"epoch": range(len(values)), col: values}))


def test_verdict_reads_the_curve():
    assert "more epochs may pay" in verdict(_stage([0.3, 0.4, 0.5]))
    assert "over-training" in verdict(_stage([0.3, 0.6, 0.5]))
    assert "flat after it" in verdict(_stage([0.3, 0.6, 0.598]))
    assert "more epochs may pay" in verdict(_stage([0.7, 0.6, 0.5], "classifier"))  # a loss: lower is better
    assert "over-training" in verdict(_stage([0.7, 0.5, 0.6], "classifier"))
    assert "too few" in verdict(_stage([0.5]))
    # validated at the last epoch only (validate_every "last"): the best is the last by construction
    assert verdict(_stage([np.nan, np.nan, 0.5])) == "one epoch validated (epoch 3 of 3): no trend to read"
    assert verdict(_stage([np.nan, 0.4, np.nan, 0.5])) == (
        "best at its last epoch (2 of 4 epochs validated): more epochs may pay")
    assert verdict(_stage([np.nan, 0.6, np.nan, 0.5])).startswith("best at epoch 2, 0.1000 lower at the end")


def test_imagenet_encoder_and_its_head_stage(run_copy, data_dir):
    from ensemble.report import report

    out = run_copy
    for name in ("metrics.json", "run.json"):
        p = out / "classifier" / name
        write_json(p, {**json.loads(p.read_text()), "encoder_init": "imagenet"})
    text = report(data_dir, out).read_text()
    page = Page(text)
    assert 'class="init ">encoder init: imagenet' in text and text.count('class="init random"') >= 1
    rows = page.table("Classifier", "fold")
    # a pretrained encoder trains the frozen head first: its logs are expected, and missing here
    assert [r[1] for r in rows[1:]] == ["head", "finetune"] * K
    assert all("no log.csv" in r[-1] for r in rows[1:] if r[1] == "head")
    assert "skipped" not in row(page.table("classifier: preset"), "head")[1]


def test_segmenter_only_run(run_copy, data_dir):
    from ensemble.report import report
    from ensemble.tune import tune

    out = run_copy
    shutil.rmtree(out / "classifier")
    tune(data_dir, out)
    text = report(data_dir, out).read_text()
    page = Page(text)
    assert row(page.table("Models", "model"), "classifier")[1] == "not trained (segmenter-only run)"
    assert "No classifier in this run." in text
    assert len(page.imgs) == 9  # segmenter training, worst / best / false positives, 4 mosaics, tuning curves
    for src in page.imgs:
        decode_png(src)


# ------------------------------------------------------------------------- one value per labelled quantity
@pytest.fixture(scope="module")
def rich(run, data_dir, tmp_path_factory):
    """The fabricated run changed so that the tuning keeps a classifier rule (in-sample and nested differ),
    fold 2's classifier ranks worse than chance, the classifier asked for ImageNet weights and got random
    ones, and every segmenter stage was validated at its last epoch only: (out, page text, Page)."""
    from ensemble.report import report
    from ensemble.tune import tune

    out = tmp_path_factory.mktemp("rich") / "out"
    shutil.copytree(run[0], out)
    (out / "report.html").unlink()
    tr = load_train(data_dir)
    n = len(tr.ids)
    oof = dict(np.load(out / "classifier" / "oof.npz"))
    assert list(oof["ids"]) == list(tr.ids)
    empty = ~tr.masks.reshape(n, -1).any(1)
    rng = np.random.default_rng(1)
    p = np.where(empty, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.45, n))  # folds 0 and 1: zeroing pays
    two = oof["fold"] == 2
    p[two] = 0.3 + np.where(empty[two], -0.02, 0.02) + rng.uniform(-0.005, 0.005, int(two.sum()))  # inverted
    save_npz(out / "classifier" / "oof.npz", **{**oof, "p_empty": p})
    run_json = json.loads((out / "classifier" / "run.json").read_text())
    run_json["config"]["encoder_weights"] = "imagenet"
    write_json(out / "classifier" / "run.json", run_json)
    for path in (out / "segmenter").glob("round*/fold*/log.csv"):
        log = pd.read_csv(path)
        log.loc[log["epoch"] < log["epoch"].max(), ["val_score", "val_threshold"]] = np.nan
        log.to_csv(path, index=False)
    tune(data_dir, out)
    text = report(data_dir, out).read_text(encoding="utf-8")
    return out, text, Page(text)


def _by_hand(out, data_dir):
    """The rich run's arrays and every score the page shows, computed here with salt.metric and sklearn
    from the fixture's files and tuning.json's parameters (the rules applied by hand, not by ensemble.tune)."""
    from sklearn.metrics import roc_auc_score

    from salt.metric import competition_score

    t = json.loads((out / "ensemble" / "tuning.json").read_text())
    tr = load_train(data_dir)
    n = len(tr.ids)
    with np.load(out / "segmenter" / "oof.npz") as z:
        assert list(z["ids"]) == list(tr.ids)
        prob, p_salt, fold = z["prob"].astype(np.float32), z["p_salt"].astype(np.float64), z["fold"]
    p_empty = np.load(out / "classifier" / "oof.npz")["p_empty"].astype(np.float64)
    truth, empty = tr.masks, ~tr.masks.reshape(n, -1).any(1)
    t_alone = t["steps"][0]["params"]["threshold"]
    alone = prob > np.float32(t_alone)
    par = t["params"]
    assert par["empty_rule"] is not None and not par["vertical"] and not par["constant_empty"]
    final = prob > np.float32(par["threshold"])
    w, te = par["empty_rule"]["w"], par["empty_rule"]["threshold"]
    final[w * p_empty + (1 - w) * (1 - p_salt) > te] = False
    final[final.reshape(n, -1).sum(1) < par["min_area"]] = False
    want = {"final rules, nested": t["final"]["nested"]["overall"],
            "final rules, in-sample": competition_score(truth, final),
            "segmenter alone, nested": t["steps"][0]["nested"]["overall"],
            "segmenter alone, in-sample": competition_score(truth, alone),
            "segmenter alone, in-sample, images without salt": competition_score(truth[empty], alone[empty]),
            "segmenter alone, in-sample, images with salt": competition_score(truth[~empty], alone[~empty]),
            "classifier AUC, all folds pooled": roc_auc_score(empty, p_empty)}
    for k in range(K):
        f = fold == k
        want[f"classifier AUC, fold {k}"] = roc_auc_score(empty[f], p_empty[f])
        want[f"segmenter alone, in-sample, fold {k}"] = competition_score(truth[f], alone[f])
        want[f"segmenter alone, nested, fold {k}"] = t["steps"][0]["nested"]["folds"][k]
        want[f"final rules, nested, fold {k}"] = t["final"]["nested"]["folds"][k]
    return t, want


def test_each_labelled_quantity_has_one_value_everywhere(rich, data_dir):
    out, text, page = rich
    t, want = _by_hand(out, data_dir)
    assert abs(want["final rules, nested"] - want["final rules, in-sample"]) > 1e-4  # two quantities, two labels
    seen = {}

    def saw(label, where, value):
        seen.setdefault(label, []).append((where, value))

    intro = plain(text.split('<nav>')[0])
    m = re.search(r"Out-of-fold competition score (\d\.\d{4}) with the tuned rules, nested \(.*?\); (\d\.\d{4}) "
                  r"in-sample \(.*?\)\. The segmenter alone \(.*?\): (\d\.\d{4}) nested, (\d\.\d{4}) in-sample at "
                  r"threshold (\d\.\d\d)", intro)
    assert m, intro
    for label, v in zip(["final rules, nested", "final rules, in-sample", "segmenter alone, nested",
                         "segmenter alone, in-sample"], m.groups()):
        saw(label, "headline", v)
    assert float(m.group(5)) == pytest.approx(t["steps"][0]["params"]["threshold"])
    seg = page.table("Segmenter: out-of-fold scores per fold")
    for label, name in [("segmenter alone, nested", "segmenter alone, nested"),
                        ("segmenter alone, in-sample", "segmenter alone, in-sample"),
                        ("segmenter alone, in-sample, images without salt", "score, images without salt (in-sample)"),
                        ("segmenter alone, in-sample, images with salt", "score, images with salt (in-sample)")]:
        r = row(seg, name)
        saw(label, "models", r[-1])
        if name.startswith("segmenter alone"):
            for k in range(K):
                saw(f"{label}, fold {k}", "models", r[1 + k])
    fails = page.table("Where it fails")
    assert fails[0][3:5] == ["segmenter alone, in-sample", "final rules, in-sample"]
    saw("segmenter alone, in-sample", "failures", row(fails, "all images")[3])
    saw("final rules, in-sample", "failures", row(fails, "all images")[4])
    saw("segmenter alone, in-sample, images without salt", "failures", row(fails, "empty")[3])
    tun = page.table("Ensemble tuning")
    for label, name in [("segmenter alone", "segmenter alone"), ("final rules", "final (kept rules)")]:
        r = row(tun, name)
        saw(f"{label}, nested", "tuning", r[K + 1])
        saw(f"{label}, in-sample", "tuning", r[K + 3])
        for k in range(K):
            saw(f"{label}, nested, fold {k}", "tuning", r[1 + k])
    clf = row(page.table("Classifier: out-of-fold scores per fold"), "ROC AUC of P(empty)")
    saw("classifier AUC, all folds pooled", "models", clf[-1])
    for k in range(K):
        saw(f"classifier AUC, fold {k}", "models", clf[1 + k])
    roc = section_text(text, "roc")
    m = re.search(r"all folds pooled (\d\.\d{4}); per fold: fold 0 (\d\.\d{4}), fold 1 (\d\.\d{4}), fold 2 "
                  r"(\d\.\d{4});", roc)
    assert m, roc
    saw("classifier AUC, all folds pooled", "roc", m.group(1))
    for k in range(K):
        saw(f"classifier AUC, fold {k}", "roc", m.group(2 + k))
    assert set(seen) == set(want), set(want) ^ set(seen)
    for label, found in seen.items():
        values = {v for _, v in found}
        assert len(values) == 1, f"{label}: {found}"
        assert float(values.pop()) == pytest.approx(want[label], abs=5e-5 + 1e-9), (label, found, want[label])
    assert want["classifier AUC, fold 2"] < 0.5


def test_warnings_a_reader_needs(rich):
    out, text, page = rich
    low = [n for n in page.notes if n.startswith("AUC under 0.5: fold 2 (")]
    assert len(low) == 2  # beside the classifier's table and beside its ROC curves
    assert "fold 0" not in low[0] and "fold 1" not in low[0]
    weights = row(page.table("classifier: preset"), "encoder_weights")[1]
    assert weights == "imagenet asked for, not found: the encoder started random"
    presets = section_text(text, "presets")
    assert "The classifier preset asks for ImageNet weights, but none were found" in presets
    assert "The segmenter preset asks" not in presets  # its preset asks for none
    # one validated epoch per stage: said, and no trend read into it
    training = section_text(text, "training")
    assert "Each stage of the segmenter was validated at one epoch only" in training
    assert "Each stage of the classifier" not in training
    readings = [r[-1] for r in page.table("Segmenter", "fold")[1:] if r[-1] != "no log.csv"]
    assert readings and all(re.fullmatch(r"one epoch validated \(epoch (\d) of \1\): no trend to read", r)
                            for r in readings), readings


def _tuning(**over):
    """A tuning.json as ensemble.tune writes it, small: 3 folds, every rule's step."""
    def step(name, rule, kept, params, nested_folds, gain=None, se=None, overall=0.5):
        return {"name": name, "rule": rule, "kept": kept, "params": params, "note": "", "overall": overall,
                "folds": nested_folds, "nested": {"overall": float(np.mean(nested_folds)), "folds": nested_folds},
                "gain_mean": gain, "gain_se": se}

    grid = [0.2, 0.4, 0.6, 0.8]
    t = {"folds": [0, 1, 2], "rules": ["threshold", "combined"],
         "params": {"threshold": 0.8, "empty_rule": {"w": 0.3, "threshold": 0.45}, "min_area": 0,
                    "vertical": False, "constant_empty": False},
         "steps": [step("segmenter alone", "threshold", True, {"threshold": 0.8}, [0.40, 0.50, 0.45]),
                   step("+ classifier zeroing", "classifier", False, {"w": 1.0, "threshold": 0.95},
                        [0.40, 0.50, 0.44], -0.0033, 0.0033),
                   step("+ combined with segmenter image head", "combined", True, {"w": 0.3, "threshold": 0.45},
                        [0.45, 0.55, 0.47], 0.04, 0.006),
                   step("+ minimum area", "min_area", False, {"min_area": 5}, [0.452, 0.55, 0.4725],
                        0.0015, 0.0040)],
         "final": {"overall": 0.52, "folds": [0.46, 0.56, 0.48], "nested": {"overall": 0.49, "folds": [0.45, 0.55, 0.47]}},
         "sweeps": {"threshold": {"x": grid, "score": [0.1, 0.3, 0.4, 0.48]},
                    "empty_threshold": {"x": [0.05, 0.5, 0.95], "score": [0.3, 0.45, 0.47]},
                    "combination": {"w": [0.0, 0.3, 1.0], "best_per_w": [0.49, 0.52, 0.47],
                                    "empty_threshold": [0.45], "score": [[0.49], [0.52], [0.47]]},
                    "min_area": {"x": [0, 5, 10], "score": [0.52, 0.521, 0.52]}},
         "params_segmenter_only": {"threshold": 0.8, "empty_rule": {"w": 0.0, "threshold": 0.425}, "min_area": 0,
                                   "vertical": False, "constant_empty": False},
         "segmenter_only": {"final": {"overall": 0.50, "folds": [0.45, 0.55, 0.47],
                                      "nested": {"overall": 0.4915, "folds": [0.452, 0.556, 0.4665]}}}}
    t.update(over)
    return t


def test_every_sweep_marks_its_choice_and_edges_are_flagged():
    from ensemble import figures
    from ensemble.sections.tuning import edge_notes, sweep_choices, tuning_section

    t = _tuning()
    c = sweep_choices(t)
    assert set(c) == {"threshold", "empty_threshold", "combination", "min_area"}  # every sweep, w included
    assert c["threshold"] == {"x": 0.8, "kept": True, "edge": True, "lo": 0.2, "hi": 0.8, "at": 3}
    assert c["combination"]["x"] == 0.3 and c["combination"]["kept"] and not c["combination"]["edge"]
    assert c["empty_threshold"]["x"] == 0.95 and not c["empty_threshold"]["kept"] and c["empty_threshold"]["edge"]
    assert c["min_area"]["x"] == 5 and not c["min_area"]["edge"]
    notes = [plain(n) for n in edge_notes(c)]
    assert notes == ["The mask threshold chosen, 0.8, is the highest of its sweep (0.2–0.8): a higher one might "
                     "score better, and the sweep in ensemble.tune should reach past it.",
                     "The P(empty) threshold best tried (the rule was not kept), 0.95, is the highest of its sweep "
                     "(0.05–0.95): a higher one might score better, and the sweep in ensemble.tune should reach "
                     "past it."]
    fig = figures.curves_figure(t["sweeps"], c)
    assert len(fig.axes) == 4
    for ax, key in zip(fig.axes, ["threshold", "empty_threshold", "min_area", "combination"]):
        red = [ln for ln in ax.lines if ln.get_color() == "red"]
        assert len(red) == 1 and red[0].get_xdata()[0] == pytest.approx(c[key]["x"]), key
        assert (red[0].get_markerfacecolor() == "red") == c[key]["kept"], key
    text = plain(tuning_section(t)[2])
    assert text.count("is the highest of its sweep") == 2
    # min area at 0 (the rule off) or w at 0 or 1 (one model alone) is no edge to widen
    t2 = _tuning(sweeps={**t["sweeps"], "threshold": {"x": [0.2, 0.4, 0.6, 0.8], "score": [0.1, 0.5, 0.4, 0.3]}},
                 params={**t["params"], "threshold": 0.4})
    t2["steps"][3]["params"] = {"min_area": 0}
    c2 = sweep_choices(t2)
    assert not any(v["edge"] for k, v in c2.items() if k != "empty_threshold")


def test_an_alternative_that_scores_higher_says_why_it_was_not_chosen():
    from ensemble.sections.tuning import tuning_section

    text = plain(tuning_section(_tuning())[2])
    assert ("+ minimum area scores higher nested than the rules before it, but is not kept: within noise: "
            "+0.0015 ± 0.0040") in text
    assert "+ classifier zeroing scores higher" not in text  # it scores lower
    assert ("Rules for a submission without the classifier: threshold 0.8, zero if P(empty) > 0.425 (w_classifier=0), "
            "min area 0, nested 0.4915 (in-sample 0.5000). Nested, they score higher than the chosen rules, "
            "+0.0015 ± 0.0028 per fold: within noise.") in text
    # the same rules fitted on all folds, but a different nested score: said, and why
    t = _tuning()
    t["params_segmenter_only"] = t["params"]
    text = plain(tuning_section(t)[2])
    assert ("nested 0.4915 (in-sample 0.5000): the same rules as chosen, fitted on all folds. Their nested score "
            "differs from the chosen rules' 0.4900 all the same") in text
    assert "+0.0015 ± 0.0028 per fold: within noise." in text
    rows = Page(tuning_section(_tuning())[2]).table("Ensemble tuning")
    assert row(rows, "+ minimum area")[K + 4] == "no (within noise)"
    assert row(rows, "+ classifier zeroing")[K + 4] == "no (no gain)"


def test_best_images_are_not_among_the_worst():
    from ensemble.sections.examples import examples_section
    from salt.metric import image_scores

    # class "salt < 5%" holds two images, both among its worst four; class "salt 20-50%" holds six
    truth = np.stack([square_mask(p) for p in [0, 300, 400] + [3000] * 6])
    pred = truth.copy()
    pred[1] = False
    pred[3:6, :5] = True  # three of the six found loosely
    scores = image_scores(truth, pred)
    worst = cov.worst_by_class(truth, pred, scores, N_WORST_TEST)
    best = cov.best_by_class(truth, pred, scores, 1, exclude=[int(i) for v in worst.values() for i in v])
    assert best[1].tolist() == [] and len(best[3]) == 1 and best[3][0] not in worst[3]
    d = {"truth": truth, "images": np.zeros((9, 101, 101), np.uint8), "ids": [f"id{k}" for k in range(9)]}
    text = plain(examples_section(d, pred, scores)[2])
    assert "Every image of salt < 5% is among the worst shown: no best to show there." in text


N_WORST_TEST = 4


def test_the_report_reads_the_tuned_masks_and_applies_no_rule(run_copy, data_dir, monkeypatch):
    """The page's masks and per-image scores are those the tuning wrote (ensemble.tuned), read back bit for
    bit; no rule is applied again. Changed predictions after the tuning say so in one note."""
    import ensemble.rules
    from ensemble.report import report
    from salt.cli import UserError
    from salt.metric import image_scores

    out = run_copy
    tr = load_train(data_dir)
    with np.load(out / "segmenter" / "oof.npz") as z:
        ids, prob = list(z["ids"]), z["prob"].astype(np.float32)
    t = json.loads((out / "ensemble" / "tuning.json").read_text())
    with np.load(out / "ensemble" / "oof-tuned.npz") as z:
        assert list(z["ids"]) == ids
        final = np.unpackbits(z["final"], axis=1, count=101 * 101).astype(bool).reshape(len(ids), 101, 101)
        final_score, alone_score = z["final_score"], z["alone_score"]
    truth = tr.masks[[tr.ids.index(i) for i in ids]]
    alone = prob > np.float32(t["steps"][0]["params"]["threshold"])  # the segmenter alone, by hand
    assert np.allclose(alone_score, image_scores(truth, alone)) and np.allclose(final_score, image_scores(truth, final))
    assert final_score.mean() == pytest.approx(t["final"]["overall"])

    def refuse(*args, **kwargs):
        raise AssertionError("the report applied a rule")

    monkeypatch.setattr(ensemble.rules, "apply_rules", refuse)
    text = report(data_dir, out).read_text()
    page_modules = [m for name, m in sys.modules.items() if name == "ensemble.report" or name == "ensemble.scores"
                    or name.startswith("ensemble.sections")]
    assert len(page_modules) > 5 and not any(hasattr(m, "apply_rules") for m in page_modules)
    assert "changed after the tuning ran" not in text
    assert f"{alone_score.mean():.4f} in-sample at threshold" in text
    with np.load(out / "segmenter" / "oof.npz") as z:
        arrays = dict(z)
    arrays["prob"] = (arrays["prob"].astype(np.float32) * 0.5).astype(np.float16)
    save_npz(out / "segmenter" / "oof.npz", **arrays)
    assert "changed after the tuning ran" in report(data_dir, out).read_text()
    (out / "ensemble" / "oof-tuned.npz").unlink()
    with pytest.raises(UserError, match=r"oof-tuned\.npz: not found; run make submit \(python -m ensemble\.tune"):
        report(data_dir, out)
