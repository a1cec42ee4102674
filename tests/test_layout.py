"""salt.layout, the one owner of DATA's and OUT's names; salt.oof, the one out-of-fold format; and a scan
of the packages for a folder or file name of DATA or OUT spelled outside salt/layout.py."""
import ast
from pathlib import Path

import numpy as np
import pytest

from salt.cli import UserError
from salt.layout import Data, ModelRun, Out, StageFiles
from salt.oof import read_oof, write_oof

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("salt", "segmenter", "classifier", "ensemble", "training", "bench")
OWNER = REPO / "salt" / "layout.py"


def test_data_is_the_kaggle_layout():
    d = Data("d")
    assert [str(p) for p in (d.train_csv, d.depths_csv, d.sample_submission, d.train_images, d.train_masks,
                             d.test_images)] == ["d/train.csv", "d/depths.csv", "d/sample_submission.csv",
                                                 "d/train/images", "d/train/masks", "d/test/images"]


def test_out_keeps_the_layout_of_existing_runs():
    """The names written out by hand, as the runs before this module laid them out on disk."""
    o = Out("o")
    seg, clf = o.segmenter, o.classifier
    assert [str(p) for p in (o.folds_csv, o.mosaic_csv, o.cache, o.compile_cache, o.submission_csv, o.report_html,
                             o.tuning_json, o.submit_json)] == [
        "o/folds.csv", "o/mosaic.csv", "o/cache", "o/cache/jax", "o/submission.csv", "o/report.html",
        "o/ensemble/tuning.json", "o/ensemble/submit.json"]
    assert [str(p) for p in (seg.run_json, seg.metrics_json, seg.oof, seg.oof_fold(3), seg.prediction("submit"),
                             seg.round_dir(2, 4), seg.pseudo(3, 1))] == [
        "o/segmenter/run.json", "o/segmenter/metrics.json", "o/segmenter/oof.npz", "o/segmenter/oof/fold3.npz",
        "o/segmenter/pred-submit.npz", "o/segmenter/round2/fold4", "o/segmenter/round3/pseudo-fold1.npz"]
    assert str(clf.stage_dir(0, "head")) == "o/classifier/fold0/head"
    s = StageFiles("st")
    assert [str(p) for p in (s.best, s.log, s.state, s.done, s.resume(7))] == [
        "st/best.keras", "st/log.csv", "st/state.json", "st/done.json", "st/last-7.weights.h5"]
    with pytest.raises(ValueError):
        o.model("ensemble")


def test_what_is_found_on_disk(tmp_path):
    run = ModelRun(tmp_path)
    for d in ("round1/fold0", "round1/fold1", "round10/fold0", "round2/fold0", "fold3/head", "fold3/finetune"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "fold3/finetune/log.csv").write_text("epoch\n")
    assert run.rounds_found() == [1, 2, 10]
    assert run.round_dirs_found(0) == [tmp_path / "round1/fold0", tmp_path / "round2/fold0", tmp_path / "round10/fold0"]
    assert run.folds_found() == [0, 1, 3]
    assert run.stage_names_found() == ["finetune"]


def test_oof_round_trip_and_one_line_errors(tmp_path):
    path = tmp_path / "oof.npz"
    write_oof(path, ["b", "a"], [1, 0], p_empty=np.array([0.25, 0.5]))
    got = read_oof(path, ["p_empty"], "make x")
    assert got["ids"] == ["b", "a"] and got["fold"].tolist() == [1, 0] and got["p_empty"].tolist() == [0.25, 0.5]
    with pytest.raises(UserError, match=r"oof\.npz: missing array 'prob'"):
        read_oof(path, ["prob"], "make x")
    with pytest.raises(UserError, match=r"nope\.npz: not found; run make x$"):
        read_oof(tmp_path / "nope.npz", ["p_empty"], "make x")
    np.savez(path, ids=np.array(["a", "b"]), fold=np.array([0, 1]), p_empty=np.array([0.1]))
    with pytest.raises(UserError, match=r"oof\.npz: inconsistent shapes \(ids 2, p_empty \(1,\)\)"):
        read_oof(path, ["p_empty"], "make x")
    path.write_text("not a zip")
    with pytest.raises(UserError, match=r"oof\.npz: unreadable npz"):
        read_oof(path, ["p_empty"], "make x")
    with pytest.raises(ValueError):
        write_oof(path, ["a", "b"], [0], p_empty=np.zeros(2))


# ------------------------------------------------------------------------------------ the spellings scan
# The names that salt.layout owns: file names, and folder names (only where a path is built of them).
FILE_NAMES = {"folds.csv", "mosaic.csv", "run.json", "metrics.json", "oof.npz", "oof.csv", "tuning.json",
              "submit.json", "report.html", "submission.csv", "best.keras", "log.csv", "state.json", "done.json",
              "train.csv", "depths.csv", "sample_submission.csv"}
FOLDER_NAMES = {"oof", "cache", "ensemble", "segmenter", "classifier", "train", "test", "images", "masks", "jax"}
NUMBERED = ("round", "fold", "pred-", "pseudo-fold", "last-")  # f"round{r}", f"pred-{name}.npz", ...


def _docstrings(tree) -> set:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _path_literal(node) -> str | None:
    """What a path operand spells, a formatted value written as {}; None where it is not a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _bad_path(text: str) -> bool:
    for part in text.replace("\\", "/").split("/"):
        if part in FILE_NAMES or part in FOLDER_NAMES or part.rstrip("*") in ("round", "fold", "pred-"):
            return True
        if any(part.startswith(p + "{}") for p in NUMBERED):
            return True
    return False


def spellings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every name of DATA or OUT that the source spells: a file name anywhere as a whole
    string (not a docstring), and a folder or file name, or a numbered folder (f"round{r}"), where a path is
    built: either operand of `/`, the arguments of Path(...), .glob, .rglob, .joinpath."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                and node.value in FILE_NAMES:
            hits.append((node.lineno, node.value))
        operands = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            operands = [node.left, node.right]
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("Path", "PurePath", "glob", "rglob", "joinpath"):
                operands = list(node.args)
        for op in operands:
            text = _path_literal(op)
            if text is not None and _bad_path(text):
                hits.append((op.lineno, text))
    return sorted(set(hits))


def test_the_scan_finds_what_it_looks_for():
    planted = ("def f(out, r, k, name):\n"
               "    '''folds.csv in a docstring is fine'''\n"
               "    a = out / 'folds.csv'\n"
               "    b = out / f'round{r}' / f'fold{k}'\n"
               "    c = Path(out, 'test/images')\n"
               "    d = out.glob('round*/fold0/log.csv')\n"
               "    e = ('train.csv', 'depths.csv')\n"
               "    g = out / 'segmenter' / f'pred-{name}.npz'\n"
               "    h = print(f'{out}: see metrics.json for more')\n")
    assert [line for line, _ in spellings(planted)] == [3, 4, 4, 5, 6, 7, 7, 8, 8]


def test_no_name_of_data_or_out_is_spelled_outside_its_owner():
    hits = [f"{path.relative_to(REPO)}:{line}: {text!r}"
            for package in PACKAGES for path in sorted((REPO / package).rglob("*.py")) if path != OWNER
            for line, text in spellings(path.read_text())]
    assert not hits, "ask salt.layout for these paths:\n" + "\n".join(hits)
