"""Classifier training: `python -m classifier.train --data DATA --out OUT --preset PRESET --folds K`.

Transfer learning of an ImageNet backbone (DenseNet121 or InceptionResNetV2) to P(empty), on the same
folds as the segmenter (OUT/folds.csv): per fold the head alone with the encoder frozen, then the whole
network at a lower learning rate, each stage keeping its best checkpoint by validation log-loss.
Finished stages are skipped and a killed run resumes where it was (``training.stage``).

Writes (salt.layout) a stage folder per fold and stage (head, finetune), the out-of-fold P(empty) in the
format of salt.oof (``p_empty``) and the scores (metrics.json).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from classifier.model import BACKBONE_LAYER, BACKBONE_NAMES, build_classifier, resolve_encoder_weights
from classifier.presets import PRESETS
from salt.cli import UserError, run_cli, settings_table
from salt.layout import StageFiles
from training import devices, kfold, reuse, runs, schedule, stage
from training.batches import AugmentedBatches
from training.pace import Pace, epochs_left
from training.predict import predict_outputs
from training.validation import Validation


def is_empty(masks: np.ndarray) -> np.ndarray:
    return ~masks.reshape(len(masks), -1).any(1)


def empty_targets(masks: np.ndarray) -> np.ndarray:
    return is_empty(masks)[:, None].astype(np.float32)


def scores(truth_empty: np.ndarray, p_empty: np.ndarray) -> dict:
    """Accuracy (at 0.5), ROC AUC and log-loss of P(empty)."""
    p = np.clip(p_empty, 1e-6, 1 - 1e-6)
    return {"accuracy": float(accuracy_score(truth_empty, p > 0.5)),
            "auc": float(roc_auc_score(truth_empty, p)) if 0 < truth_empty.sum() < len(p) else float("nan"),
            "logloss": float(log_loss(truth_empty, p, labels=[False, True])), "images": int(len(p))}


def validation_scores(truth_empty: np.ndarray):
    def score(probs: dict) -> dict:
        s = scores(truth_empty, probs["empty"])
        return {"val_loss": s["logloss"], "val_auc": s["auc"], "val_accuracy": s["accuracy"]}
    return score


MONITOR = "val_loss"


def compile_model(model: keras.Model, lr: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  jit_compile=devices.jit_compile())


def model_key(run: runs.Run, backbone: str, frozen: bool) -> str:
    """What a compiled classifier depends on besides its weights (``training.reuse``)."""
    return json.dumps({"model": "classifier", "backbone": backbone, "preset": run.preset, "frozen": frozen,
                       "precision": run.precision}, sort_keys=True)


def fit_parts(preset: dict, epochs: int, lr: float, images, masks, val_images, val_masks, seed: int):
    """The training batches and the callbacks of one stage: the learning-rate schedule and the validation
    log-loss and AUC (also what ``make bench`` times)."""
    data = AugmentedBatches(images, masks, empty_targets, preset["batch_size"], preset["augment"], seed=seed)
    callbacks = [schedule.scheduler(epochs, lr),
                 Validation(val_images, validation_scores(is_empty(val_masks)), 2 * preset["batch_size"],
                            echo="val_loss {val_loss:.4f}, val_auc {val_auc:.4f}")]
    return data, callbacks


def stage_folder(run: runs.Run, fold: int, st: dict) -> Path:
    """A fold's stage folder: best.keras, log.csv, the resume state."""
    return run.paths.stage_dir(fold, st["name"])


def train_fold(run: runs.Run, fold: int, backbone: str, weights: str | None) -> None:
    """Trains one fold's stages (skipping finished ones) and saves its out-of-fold P(empty)."""
    tr, va = kfold.fold_split(run.folds, fold)
    images, masks, preset = run.train.images, run.train.masks, run.preset
    encoder_random = weights is None
    prev = None
    for s, st in enumerate(preset["stages"]):
        stage_dir = stage_folder(run, fold, st)
        if st["frozen"] and encoder_random:
            print(f"fold {fold} {st['name']}: skipped, the encoder is random")
            continue
        if stage.is_done(stage_dir):
            print(f"fold {fold} {st['name']}: done, skipped")
            prev = stage_dir
            continue
        lr = st["lr_random"] if encoder_random and "lr_random" in st else st["lr"]
        print(f"fold {fold} {st['name']}: {st['epochs']} epochs, lr {lr}, "
              f"{'encoder frozen' if st['frozen'] else 'whole network'}", flush=True)
        key = model_key(run, backbone, st["frozen"])
        devices.new_session(100 * s + fold, run.precision, preset["batch_size"], clear=reuse.kept(key) is None)
        fresh, _ = build_classifier(backbone, preset["input_size"], weights or "none", preset["dropout"],
                                    device=devices.layer_choices())
        if prev is not None:
            stage.copy_weights(StageFiles(prev).best, fresh)
        fresh.get_layer(BACKBONE_LAYER).trainable = not st["frozen"]
        model = reuse.compiled(key, fresh, lambda m: compile_model(m, lr), lr)
        data, callbacks = fit_parts(preset, st["epochs"], lr, images[tr], masks[tr], images[va], masks[va],
                                    seed=100 * s + fold)
        state = stage.fit_stage(model, stage_dir, data, st["epochs"], MONITOR, "min", callbacks,
                                verbose=run.verbose, save_every_s=run.save_every_s, pace=run.pace)
        stage.mark_done(stage_dir, {"best_val_loss": state["best"], "best_epoch": state["best_epoch"] + 1})
        prev = stage_dir
    model = reuse.loaded(model_key(run, backbone, preset["stages"][-1]["frozen"]), StageFiles(prev).best)
    p_empty = predict_outputs(model, images[va], tta=True, batch_size=2 * preset["batch_size"])["empty"]
    kfold.save_fold(run.dir, fold, va, p_empty=p_empty)


def collect_oof(run: runs.Run) -> dict:
    """Joins the folds' out-of-fold P(empty) into the run's out-of-fold file and scores them."""
    p_empty = kfold.join_folds(run.dir, run.k, len(run.train.ids))["p_empty"]
    fold_of = run.folds["fold"].to_numpy()
    kfold.save_joined(run, p_empty=p_empty)
    truth = is_empty(run.train.masks)
    per_fold = [{"fold": f, **scores(truth[fold_of == f], p_empty[fold_of == f])} for f in range(run.k)]
    return {"folds": per_fold, "overall": scores(truth, p_empty)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m classifier.train", description=__doc__.splitlines()[0])
    runs.add_run_args(p, PRESETS)
    p.add_argument("--backbone", help="the preset's backbone by default: " + ", ".join(BACKBONE_NAMES))
    args = p.parse_args(argv)
    if args.backbone is not None and args.backbone not in BACKBONE_NAMES:
        raise UserError(f"--backbone {args.backbone}: unknown; choose one of {', '.join(BACKBONE_NAMES)}")
    run = runs.start_run(args, PRESETS, "classifier", "stages")
    args.backbone = args.backbone or run.preset.get("backbone", "densenet121")
    weights, init = resolve_encoder_weights(args.backbone, run.preset["encoder_weights"])
    run.open(encoder_init=init, backbone=args.backbone, folds=run.k)
    run.pace = Pace(epochs_left((stage_folder(run, fold, st), st["epochs"]) for fold in run.fold_list
                                if not kfold.oof_path(run.dir, fold).exists()
                                for st in run.preset["stages"] if not (st["frozen"] and weights is None)))
    print(f"classifier: {args.backbone}, preset {run.name} (encoder init: {init}, {len(run.train.ids)} images, "
          f"{run.k} folds)\n{settings_table(run.preset)}", flush=True)
    if not kfold.train_folds(run, lambda fold: train_fold(run, fold, args.backbone, weights)):
        return 0
    metrics = run.write_metrics({**collect_oof(run), "backbone": args.backbone}, init)
    o = metrics["overall"]
    print(f"classifier: out-of-fold AUC {o['auc']:.4f}, accuracy {o['accuracy']:.4f}, log-loss "
          f"{o['logloss']:.4f} (encoder init: {init}) -> {run.paths.metrics_json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
