"""How training went: the per-epoch logs (Keras' CSVLogger ``log.csv``) of every fold's stages, read robustly.

Where the logs are, salt.layout says; which stages there are, the run's settings:
  segmenter   a stage per round and fold   (rounds from run.json's config["rounds"])
  classifier  a stage per fold and stage   (stages from run.json's config["stages"]; the frozen "head"
                                            stage is skipped when the encoder is random)
Without run.json the stage folders found on disk are used. A missing or unreadable file, or a missing
column, becomes a note on the stage; nothing here raises for a bad log.

Columns used: ``epoch``, ``loss``, the validation value each model keeps its checkpoint by (segmenter:
``val_score``, max; classifier: ``val_loss``, min), the classifier's ``val_auc`` and, when the run wrote
it, ``epoch_s`` (seconds the epoch took, validation included) for the minutes axis.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from salt.layout import ModelRun, Out, StageFiles


@dataclass(frozen=True)
class Spec:
    """What a model's logs hold: the checkpoint's monitor and its mode, and the validation score to plot."""
    monitor: str
    mode: str          # "max" or "min"
    score: str         # a validation score, higher is better
    score_label: str
    val_loss: str | None = None


SPECS = {"segmenter": Spec("val_score", "max", "val_score", "validation competition score"),
         "classifier": Spec("val_loss", "min", "val_auc", "validation ROC AUC", val_loss="val_loss")}


@dataclass
class Stage:
    """One stage of one fold: a segmenter round or a classifier stage."""
    model: str
    fold: int
    name: str            # "round 1", "finetune"
    detail: str          # "bce_dice, lr 0.003"
    path: Path
    planned: int | None  # epochs the preset asked for
    log: pd.DataFrame | None = None  # sorted by epoch, one row per epoch
    notes: list[str] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return 0 if self.log is None else len(self.log)

    def column(self, name) -> np.ndarray | None:
        """A numeric column as float64, or None if the log or the column is missing."""
        if self.log is None or name not in self.log.columns:
            return None
        return pd.to_numeric(self.log[name], errors="coerce").to_numpy(dtype=np.float64)

    def best(self) -> int | None:
        """0-based index (within the stage) of the epoch whose checkpoint was kept, by the model's monitor."""
        spec = SPECS[self.model]
        v = self.column(spec.monitor)
        if v is None or not np.isfinite(v).any():
            return None
        v = np.where(np.isfinite(v), v, -np.inf if spec.mode == "max" else np.inf)
        return int(np.argmax(v) if spec.mode == "max" else np.argmin(v))

    def seconds(self) -> np.ndarray | None:
        """Seconds per epoch (``epoch_s``), or None where the column is absent or incomplete."""
        s = self.column("epoch_s")
        return s if s is not None and len(s) and np.isfinite(s).all() else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def read_log(path: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """A log.csv as a DataFrame sorted by epoch (the last row of a repeated epoch wins), and notes."""
    if not path.is_file():
        return None, ["no log.csv"]
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None, ["log.csv is empty"]
    except Exception as ex:  # a broken file must not stop the report
        return None, [f"log.csv unreadable ({type(ex).__name__})"]
    if df.empty:
        return None, ["log.csv has no epochs"]
    notes = []
    if "epoch" in df.columns:
        ep = pd.to_numeric(df["epoch"], errors="coerce")
        df = df[ep.notna()].assign(epoch=ep[ep.notna()].astype(int))
        df = df.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)
    else:
        notes.append("no epoch column: rows taken in order")
        df = df.assign(epoch=np.arange(len(df)))
    return df, notes


def _run_config(run_dir: ModelRun) -> tuple[dict, dict]:
    """(run.json, metrics.json) of a model's run folder, {} where missing or unreadable."""
    return _read_json(run_dir.run_json), _read_json(run_dir.metrics_json)


def _n_folds(run: dict, metrics: dict, found: list[int]) -> list[int]:
    k = run.get("folds") or metrics.get("folds_k")
    if isinstance(k, int) and k > 0:
        return list(range(k))
    return sorted(set(found))


def segmenter_stages(out: Path) -> list[Stage]:
    """The segmenter's rounds x folds, in training order within each fold."""
    run_dir = Out(out).segmenter
    run, metrics = _run_config(run_dir)
    rounds = (run.get("config") or {}).get("rounds")
    if not isinstance(rounds, list) or not rounds:
        rounds = [{} for _ in range(max(run_dir.rounds_found(), default=0))]
    found_folds = run_dir.folds_found()
    stages = []
    for fold in _n_folds(run, metrics, found_folds):
        for r, rnd in enumerate(rounds, 1):
            detail = ", ".join(x for x in (str(rnd.get("loss", "")),
                                           f"lr {rnd['lr']:g}" if isinstance(rnd.get("lr"), (int, float)) else "")
                               if x)
            stages.append(Stage("segmenter", fold, f"round {r}", detail, StageFiles(run_dir.round_dir(r, fold)).log,
                                rnd.get("epochs")))
    return stages


def classifier_stages(out: Path) -> list[Stage]:
    """The classifier's stages x folds, in training order within each fold."""
    run_dir = Out(out).classifier
    run, metrics = _run_config(run_dir)
    conf = (run.get("config") or {}).get("stages")
    random = str(run.get("encoder_init", metrics.get("encoder_init", ""))) == "random"
    found_folds = run_dir.folds_found()
    if isinstance(conf, list) and conf:
        plan = [s for s in conf if not (s.get("frozen") and random)]
    else:
        names = sorted(run_dir.stage_names_found(), key=lambda n: (n != "head", n))
        plan = [{"name": n} for n in names]
    stages = []
    for fold in _n_folds(run, metrics, found_folds):
        for s in plan:
            lr = s.get("lr_random") if random and "lr_random" in s else s.get("lr")
            detail = ", ".join(x for x in ("encoder frozen" if s.get("frozen") else "",
                                           f"lr {lr:g}" if isinstance(lr, (int, float)) else "") if x)
            stages.append(Stage("classifier", fold, str(s["name"]), detail,
                                StageFiles(run_dir.stage_dir(fold, s["name"])).log, s.get("epochs")))
    return stages


def load_stages(out, model: str) -> list[Stage]:
    """Every stage of `model` ("segmenter" or "classifier") with its log read (or a note why not)."""
    out = Path(out)
    stages = segmenter_stages(out) if model == "segmenter" else classifier_stages(out)
    spec = SPECS[model]
    for st in stages:
        st.log, st.notes = read_log(st.path)
        if st.log is None:
            continue
        for col in ("loss", spec.monitor, spec.score):
            if col not in st.log.columns:
                st.notes.append(f"no {col} column")
        if st.planned and st.epochs < st.planned:
            st.notes.append(f"{st.epochs} of {st.planned} epochs logged (stopped or still running)")
    return stages


def by_fold(stages) -> dict[int, list[Stage]]:
    """Stages grouped by fold, in training order."""
    out: dict[int, list[Stage]] = {}
    for st in stages:
        out.setdefault(st.fold, []).append(st)
    return out


def has_minutes(stages) -> bool:
    """Whether every logged stage recorded ``epoch_s`` (so a fold's minutes add up)."""
    logged = [st for st in stages if st.log is not None]
    return bool(logged) and all(st.seconds() is not None for st in logged)


def validated(st: Stage) -> np.ndarray:
    """0-based indices of the epochs whose monitored value was measured (a preset's ``validate_every``
    leaves the others NaN in the log)."""
    v = st.column(SPECS[st.model].monitor)
    return np.zeros(0, np.int64) if v is None else np.flatnonzero(np.isfinite(v))


def verdict(st: Stage) -> str:
    """A plain-words reading of a stage's monitored value, from the epochs that were validated only:
    still improving, flat, or fell after its best; with one validated epoch, that no trend can be read."""
    spec = SPECS[st.model]
    v, b = st.column(spec.monitor), st.best()
    if v is None or b is None:
        return "no validation value"
    seen = validated(st)
    if len(seen) < 2:
        if len(v) < 2:
            return "one epoch: too few to judge"
        return f"one epoch validated (epoch {b + 1} of {len(v)}): no trend to read"
    last = int(seen[-1])
    some = "" if len(seen) == len(v) else f" ({len(seen)} of {len(v)} epochs validated)"
    if b == last:
        where = "its last epoch" if last == len(v) - 1 else f"its last validated epoch, {last + 1}"
        return f"best at {where}{some}: more epochs may pay"
    sign = 1 if spec.mode == "max" else -1
    drop = sign * (v[b] - v[last])
    tol = 0.005 if spec.mode == "max" else 0.02 * abs(v[b])
    if drop > tol:
        what = "lower" if spec.mode == "max" else "higher"
        return (f"best at epoch {b + 1}, {abs(v[b] - v[last]):.4f} {what} at the end{some}: "
                "over-training or noise")
    return f"best at epoch {b + 1}, flat after it{some}: more epochs unlikely to pay"


def one_validation_per_stage(stages) -> bool:
    """Whether every logged stage of more than one epoch was validated at one epoch only."""
    long = [st for st in stages if st.log is not None and st.epochs > 1 and st.column(SPECS[st.model].monitor)
            is not None]
    return bool(long) and all(len(validated(st)) <= 1 for st in long)
