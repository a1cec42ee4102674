"""Classifier training: `python -m classifier.train --data DATA --out OUT --preset PRESET --folds K`.

Transfer learning of an ImageNet backbone (DenseNet121 or InceptionResNetV2) to P(empty), on the same
folds as the segmenter (OUT/folds.csv): per fold the head alone with the encoder frozen, then the whole
network at a lower learning rate, each stage keeping its best checkpoint by validation log-loss.
Finished stages are skipped and a killed run resumes from its last completed epoch.

Writes OUT/classifier/fold{k}/{head,finetune}/{best.keras, log.csv, done.json}, the out-of-fold
P(empty) OUT/classifier/oof.csv (id, fold, p_empty) and OUT/classifier/metrics.json.
"""
from __future__ import annotations

import argparse
import json

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from classifier.model import BACKBONE_LAYER, BACKBONES, build_classifier, resolve_encoder_weights
from classifier.predict import predict_p_empty
from classifier.presets import PRESETS
from salt import kfold
from salt.batches import AugmentedBatches, to_input
from salt.cli import UserError, run_cli
from salt.io import write_csv


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


def train_fold(run: kfold.Run, fold: int, backbone: str, weights: str | None) -> None:
    """Trains one fold's stages (skipping finished ones) and saves its out-of-fold P(empty)."""
    tr, va = kfold.fold_split(run.folds, fold)
    oof_path = run.dir / f"fold{fold}" / "oof.csv"
    if oof_path.exists():
        print(f"fold {fold}: done, skipped")
        return
    images, masks, preset = run.train.images, run.train.masks, run.preset
    encoder_random = weights is None
    prev = None
    for s, stage in enumerate(preset["stages"]):
        stage_dir = run.dir / f"fold{fold}" / stage["name"]
        if stage["frozen"] and encoder_random:
            print(f"fold {fold} {stage['name']}: skipped, the encoder is random")
            continue
        if kfold.is_done(stage_dir):
            print(f"fold {fold} {stage['name']}: done, skipped")
            prev = stage_dir
            continue
        lr = stage["lr_random"] if encoder_random and "lr_random" in stage else stage["lr"]
        print(f"fold {fold} {stage['name']}: {stage['epochs']} epochs, lr {lr}, "
              f"{'encoder frozen' if stage['frozen'] else 'whole network'}")
        kfold.new_session(100 * s + fold, preset["mixed_precision"])
        model, _ = build_classifier(backbone, preset["input_size"], weights or "none", preset["dropout"])
        if prev is not None:
            kfold.copy_weights(prev / "best.keras", model)
        model.get_layer(BACKBONE_LAYER).trainable = not stage["frozen"]
        data = AugmentedBatches(images[tr], masks[tr], empty_targets, preset["batch_size"], preset["augment"],
                                seed=100 * s + fold)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),
                               keras.metrics.AUC(name="auc", from_logits=True)],
                      jit_compile=kfold.jit_compile())
        state = kfold.fit_stage(model, stage_dir, data, stage["epochs"], "val_loss", "min", verbose=run.verbose,
                                validation_data=(to_input(images[va]), empty_targets(masks[va])),
                                validation_batch_size=2 * preset["batch_size"])
        kfold.mark_done(stage_dir, {"best_val_loss": state["best"], "best_epoch": state["best_epoch"] + 1})
        prev = stage_dir
    model = keras.saving.load_model(prev / "best.keras", compile=False)
    p_empty = predict_p_empty(model, images[va], tta=True, batch_size=2 * preset["batch_size"])
    write_csv(oof_path, pd.DataFrame({"index": va, "p_empty": p_empty}))


def collect_oof(run: kfold.Run) -> dict:
    """Joins the folds' out-of-fold P(empty) into oof.csv and scores them."""
    p_empty = np.zeros(len(run.train.ids))
    for fold in range(run.k):
        df = pd.read_csv(run.dir / f"fold{fold}" / "oof.csv")
        p_empty[df["index"].to_numpy()] = df["p_empty"].to_numpy()
    fold_of = run.folds["fold"].to_numpy()
    write_csv(run.dir / "oof.csv", pd.DataFrame({"id": run.train.ids, "fold": fold_of, "p_empty": p_empty}))
    truth = is_empty(run.train.masks)
    per_fold = [{"fold": f, **scores(truth[fold_of == f], p_empty[fold_of == f])} for f in range(run.k)]
    return {"folds": per_fold, "overall": scores(truth, p_empty)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m classifier.train", description=__doc__.splitlines()[0])
    kfold.add_run_args(p, PRESETS)
    p.add_argument("--backbone", default="densenet121", help=", ".join(BACKBONES))
    args = p.parse_args(argv)
    if args.backbone not in BACKBONES:
        raise UserError(f"--backbone {args.backbone}: unknown; choose one of {', '.join(BACKBONES)}")
    run = kfold.start_run(args, PRESETS, "classifier", "stages")
    weights, init = resolve_encoder_weights(args.backbone, run.preset["encoder_weights"])
    kfold.open_run(run.dir, run.name, run.preset, run.fingerprint,
                   {"encoder_init": init, "backbone": args.backbone, "folds": run.k})
    print(f"classifier: {args.backbone}, preset {run.name} ({keras.backend.backend()} backend, encoder init: "
          f"{init}, {len(run.train.ids)} images, {run.k} folds)\n{json.dumps(run.preset)}")
    for fold in run.fold_list:
        train_fold(run, fold, args.backbone, weights)
    if not all((run.dir / f"fold{f}" / "oof.csv").exists() for f in range(run.k)):
        print("classifier: not every fold is trained yet; metrics.json follows when they are")
        return 0
    metrics = run.write_metrics({**collect_oof(run), "backbone": args.backbone}, init)
    o = metrics["overall"]
    print(f"classifier: out-of-fold AUC {o['auc']:.4f}, accuracy {o['accuracy']:.4f}, log-loss "
          f"{o['logloss']:.4f} (encoder init: {init}) -> {run.dir / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
