"""Where every file of DATA and OUT lives: the one place that spells their folder and file names.

Every stage asks this module for its paths (``Data(root)``, ``Out(root)``) and spells none itself, so
that moving a file is one change here, and a stage never needs to know how another lays out its folder.

DATA, the Kaggle layout (``make data``)::

    train.csv, depths.csv, sample_submission.csv, train/images/ID.png, train/masks/ID.png, test/images/ID.png

OUT, what the runs write::

    folds.csv, mosaic.csv, cache/ (the checked arrays; cache/jax: compiled programs), submission.csv, report.html
    segmenter/   run.json, metrics.json, oof.npz (every image's out-of-fold prediction, salt.oof),
                 oof/fold{k}.npz (one fold's, while training), pred-NAME.npz (a test prediction),
                 round{r}/fold{k}/ (a stage, below), round{r}/pseudo-fold{k}.npz (pseudo-labels)
    classifier/  run.json, metrics.json, oof.npz, oof/fold{k}.npz, pred-NAME.npz, fold{k}/{stage name}/
    ensemble/    tuning.json, oof-tuned.npz (the out-of-fold masks under the tuned rules), submit.json

A stage folder (training.stage): best.keras, log.csv, state.json + last-EPOCH.weights.h5 (the resume
point), done.json (written last).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SEGMENTER, CLASSIFIER = "segmenter", "classifier"
MODELS = (SEGMENTER, CLASSIFIER)


def _numbers(pattern: str, paths) -> list[int]:
    """The sorted distinct numbers N of the paths named as ``pattern`` (one group) says."""
    return sorted({int(m.group(1)) for p in paths if (m := re.fullmatch(pattern, p.name))})


@dataclass(frozen=True)
class Data:
    """A data folder in the Kaggle layout."""
    root: Path

    CSV_NAMES = ("train.csv", "depths.csv", "sample_submission.csv")  # the download's CSVs, at the top

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def train_csv(self) -> Path:
        return self.root / "train.csv"

    @property
    def depths_csv(self) -> Path:
        return self.root / "depths.csv"

    @property
    def sample_submission(self) -> Path:
        return self.root / "sample_submission.csv"

    @property
    def train_images(self) -> Path:
        return self.root / "train" / "images"

    @property
    def train_masks(self) -> Path:
        return self.root / "train" / "masks"

    @property
    def test_images(self) -> Path:
        return self.root / "test" / "images"


@dataclass(frozen=True)
class StageFiles:
    """One training stage's folder (training.stage writes it)."""
    dir: Path

    RESUME_GLOB = "last-*.weights.h5"

    def __post_init__(self):
        object.__setattr__(self, "dir", Path(self.dir))

    @property
    def best(self) -> Path:
        """The best model so far, without optimizer state: what the next stage and the predictions load."""
        return self.dir / "best.keras"

    @property
    def log(self) -> Path:
        """Keras' CSVLogger, one row per epoch."""
        return self.dir / "log.csv"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def done(self) -> Path:
        return self.dir / "done.json"

    def resume(self, epoch: int) -> Path:
        """The weights and optimizer state after ``epoch``."""
        return self.dir / f"last-{epoch}.weights.h5"


@dataclass(frozen=True)
class ModelRun:
    """One model's run folder: OUT/segmenter or OUT/classifier."""
    dir: Path

    def __post_init__(self):
        object.__setattr__(self, "dir", Path(self.dir))

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def run_json(self) -> Path:
        return self.dir / "run.json"

    @property
    def metrics_json(self) -> Path:
        return self.dir / "metrics.json"

    @property
    def oof(self) -> Path:
        """Every training image's out-of-fold prediction (salt.oof), written once every fold is done."""
        return self.dir / "oof.npz"

    def oof_fold(self, fold: int) -> Path:
        """One fold's out-of-fold prediction; the fold is finished when it exists."""
        return self.dir / "oof" / f"fold{fold}.npz"

    def prediction(self, name: str) -> Path:
        """The mean of the fold models on a folder of images (``--name NAME``)."""
        return self.dir / f"pred-{name}.npz"

    # the segmenter: k folds x rounds
    def round_dir(self, r: int, fold: int) -> Path:
        """The stage folder of round ``r`` (1-based) of a fold."""
        return self.dir / f"round{r}" / f"fold{fold}"

    def pseudo(self, r: int, fold: int) -> Path:
        """The pseudo-labels of round ``r`` of a fold (segmenter.pseudo)."""
        return self.dir / f"round{r}" / f"pseudo-fold{fold}.npz"

    def rounds_found(self) -> list[int]:
        """The round numbers with a folder on disk."""
        return _numbers(r"round(\d+)", self.dir.glob("round*"))

    def round_dirs_found(self, fold: int) -> list[Path]:
        """The stage folders of a fold's rounds on disk, in round order."""
        return [self.round_dir(r, fold) for r in self.rounds_found() if self.round_dir(r, fold).is_dir()]

    # the classifier: k folds x named stages
    def stage_dir(self, fold: int, stage: str) -> Path:
        """The folder of a fold's stage (its name in the preset: head, finetune)."""
        return self.dir / f"fold{fold}" / str(stage)

    def stage_names_found(self) -> list[str]:
        """The names of the stages with a log on disk, any fold."""
        return sorted({p.parent.name for p in self.dir.glob("fold*/*/log.csv")})

    def folds_found(self) -> list[int]:
        """The fold numbers with a folder on disk (under a round for the segmenter)."""
        return _numbers(r"fold(\d+)", [*self.dir.glob("fold*"), *self.dir.glob("round*/fold*")])


@dataclass(frozen=True)
class Out:
    """A run's output folder."""
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def folds_csv(self) -> Path:
        """The folds both models train on (salt.folds), made once."""
        return self.root / "folds.csv"

    @property
    def mosaic_csv(self) -> Path:
        """Tiles put back together (salt.mosaic): id,mosaic,row,col."""
        return self.root / "mosaic.csv"

    @property
    def cache(self) -> Path:
        """The checked data arrays (salt.data), keyed by the files they came from."""
        return self.root / "cache"

    @property
    def compile_cache(self) -> Path:
        """The backend's compiled programs (training.devices.configure)."""
        return self.cache / "jax"

    def model(self, name: str) -> ModelRun:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; one of {', '.join(MODELS)}")
        return ModelRun(self.root / name)

    @property
    def segmenter(self) -> ModelRun:
        return self.model(SEGMENTER)

    @property
    def classifier(self) -> ModelRun:
        return self.model(CLASSIFIER)

    @property
    def ensemble(self) -> Path:
        return self.root / "ensemble"

    @property
    def tuning_json(self) -> Path:
        """The rules tuned on the out-of-fold predictions (ensemble.tune)."""
        return self.ensemble / "tuning.json"

    @property
    def tuned_oof(self) -> Path:
        """The out-of-fold masks and scores under the tuned rules, as the tuning made them (ensemble.tuned)."""
        return self.ensemble / "oof-tuned.npz"

    @property
    def submit_json(self) -> Path:
        """What the submission did (ensemble.submit)."""
        return self.ensemble / "submit.json"

    @property
    def submission_csv(self) -> Path:
        return self.root / "submission.csv"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"
