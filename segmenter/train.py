"""Segmenter training: `python -m segmenter.train --data DATA --out OUT --preset PRESET --folds K`.

K folds (OUT/folds.csv, shared with the classifier) x the preset's rounds. Round 1 trains each fold
from the encoder's initial weights; each later round restarts the fold from its best checkpoint of the
round before, with a fresh cosine learning-rate cycle. Every epoch is scored on the fold's validation
images with the competition metric (binarisation threshold swept) and the best checkpoint by it is
kept. Finished rounds are skipped and a killed run resumes from its last completed epoch.

Writes OUT/segmenter/round{r}/fold{k}/{best.keras, log.csv, done.json}, the out-of-fold probabilities
OUT/segmenter/oof.npz and the scores OUT/segmenter/metrics.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np

from salt import kfold
from salt.batches import AugmentedBatches
from salt.cli import UserError, run_cli
from salt.io import save_npz
from salt.metric import competition_score, image_scores
from segmenter import losses
from segmenter.predict import predict_probs
from segmenter.presets import PRESETS
from segmenter.seresnext import resolve_imagenet_weights
from segmenter.unet import build_unet

THRESHOLDS = np.round(np.arange(0.30, 0.71, 0.05), 2)
MASK_LOSSES = {"bce_dice": losses.bce_dice_loss, "lovasz": losses.lovasz_hinge}


def best_threshold(masks: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """The binarisation threshold with the best competition score, and that score."""
    scores = [competition_score(masks, prob > t) for t in THRESHOLDS]
    i = int(np.argmax(scores))
    return float(THRESHOLDS[i]), float(scores[i])


class ValScore(keras.callbacks.Callback):
    """Adds the validation competition score (best threshold) to every epoch's logs."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, batch_size: int):
        super().__init__()
        self.images, self.masks, self.batch_size = images, masks, batch_size

    def on_epoch_end(self, epoch, logs=None):
        prob, _ = predict_probs(self.model, self.images, tta=False, batch_size=self.batch_size)
        logs["val_threshold"], logs["val_score"] = best_threshold(self.masks, prob)
        print(f" - val_score {logs['val_score']:.4f} at threshold {logs['val_threshold']:.2f}")


def make_targets(edge: bool):
    def targets(masks: np.ndarray) -> dict:
        out = {"mask": masks[..., None].astype(np.float32),
               "salt": masks.reshape(len(masks), -1).any(1, keepdims=True).astype(np.float32)}
        if edge:
            out["edge"] = losses.edge_target(masks)[..., None].astype(np.float32)
        return out
    return targets


def build_model(preset: dict, encoder_weights: str | None) -> keras.Model:
    return build_unet(**preset["network"], encoder_weights=encoder_weights)


def compile_model(model: keras.Model, preset: dict, rnd: dict, steps: int) -> None:
    schedule = keras.optimizers.schedules.CosineDecay(rnd["lr"], decay_steps=rnd["epochs"] * steps, alpha=0.02)
    loss = {"mask": MASK_LOSSES[rnd["loss"]], "salt": keras.losses.BinaryCrossentropy(from_logits=True)}
    weights = {"mask": 1.0, "salt": preset["salt_weight"]}
    if preset["network"]["edge"]:
        loss["edge"] = keras.losses.BinaryCrossentropy(from_logits=True)
        weights["edge"] = preset["edge_weight"]
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, loss_weights=weights,
                  jit_compile=kfold.jit_compile())


def train_fold(train, folds, fold: int, preset: dict, run_dir: Path, encoder_path, verbose) -> None:
    """Trains every round of one fold (skipping finished ones) and saves its out-of-fold predictions."""
    tr, va = kfold.fold_split(folds, fold)
    oof_path = run_dir / "oof" / f"fold{fold}.npz"
    if oof_path.exists():
        print(f"fold {fold}: done, skipped")
        return
    prev = None
    for r, rnd in enumerate(preset["rounds"], 1):
        stage = run_dir / f"round{r}" / f"fold{fold}"
        if kfold.is_done(stage):
            print(f"fold {fold} round {r}: done, skipped")
            prev = stage
            continue
        print(f"fold {fold} round {r}/{len(preset['rounds'])}: {rnd['loss']}, {rnd['epochs']} epochs, "
              f"lr {rnd['lr']}, {len(tr)} train / {len(va)} validation images")
        kfold.new_session(1000 * r + fold, preset["mixed_precision"])
        model = build_model(preset, encoder_path if r == 1 else None)
        if prev is not None:
            kfold.copy_weights(prev / "best.keras", model)
        data = AugmentedBatches(train.images[tr], train.masks[tr], make_targets(preset["network"]["edge"]),
                                preset["batch_size"], preset["augment"], seed=1000 * r + fold)
        compile_model(model, preset, rnd, len(data))
        val = ValScore(train.images[va], train.masks[va], 2 * preset["batch_size"])
        state = kfold.fit_stage(model, stage, data, rnd["epochs"], "val_score", "max", [val], verbose=verbose)
        kfold.mark_done(stage, {"best_score": state["best"], "best_epoch": state["best_epoch"] + 1})
        prev = stage
    model = keras.saving.load_model(prev / "best.keras", compile=False)
    prob, p_salt = predict_probs(model, train.images[va], tta=preset["tta"], batch_size=2 * preset["batch_size"])
    save_npz(oof_path, index=va, prob=prob.astype(np.float16), p_salt=p_salt.astype(np.float16))


def collect_oof(train, folds, k: int, run_dir: Path) -> dict:
    """Joins the folds' out-of-fold predictions into oof.npz and scores them."""
    n = len(train.ids)
    prob = np.zeros((n, 101, 101), np.float16)
    p_salt = np.zeros(n, np.float16)
    per_fold = []
    for fold in range(k):
        with np.load(run_dir / "oof" / f"fold{fold}.npz") as f:
            idx = f["index"]
            prob[idx], p_salt[idx] = f["prob"], f["p_salt"]
        t, s = best_threshold(train.masks[idx], prob[idx].astype(np.float32))
        per_fold.append({"fold": fold, "score": s, "threshold": t, "images": int(len(idx))})
    t, s = best_threshold(train.masks, prob.astype(np.float32))
    save_npz(run_dir / "oof.npz", ids=np.array(train.ids), fold=folds["fold"].to_numpy(), prob=prob,
             p_salt=p_salt)
    empty = ~train.masks.reshape(n, -1).any(1)
    scores = image_scores(train.masks, prob.astype(np.float32) > t)
    return {"folds": per_fold, "overall": {"score": s, "threshold": t,
                                           "score_empty_images": float(scores[empty].mean()),
                                           "score_salt_images": float(scores[~empty].mean())}}


def resolve_encoder(choice: str) -> tuple[str | None, str]:
    """Encoder weights file (or None) and its label for the record: imagenet, random or file:PATH."""
    if choice == "imagenet":
        return resolve_imagenet_weights()
    if choice == "none":
        return None, "random"
    if not Path(choice).is_file():
        raise UserError(f"{choice}: encoder weights file not found (use imagenet, none or a .weights.h5 file)")
    return choice, f"file:{choice}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m segmenter.train", description=__doc__.splitlines()[0])
    kfold.add_run_args(p, PRESETS)
    p.add_argument("--edge", choices=["on", "off"], help="override the preset's edge channel")
    args = p.parse_args(argv)
    run = kfold.start_run(args, PRESETS, "segmenter", "rounds")
    if args.edge:
        run.preset["network"]["edge"] = args.edge == "on"
    encoder_path, init = resolve_encoder(run.preset["encoder_weights"])
    kfold.open_run(run.dir, run.name, run.preset, run.fingerprint, {"encoder_init": init, "folds": run.k})
    print(f"segmenter: preset {run.name} ({keras.backend.backend()} backend, encoder init: {init}, "
          f"{len(run.train.ids)} images, {run.k} folds)\n{json.dumps(run.preset)}")
    for fold in run.fold_list:
        train_fold(run.train, run.folds, fold, run.preset, run.dir, encoder_path, run.verbose)
    if not all((run.dir / "oof" / f"fold{f}.npz").exists() for f in range(run.k)):
        print("segmenter: not every fold is trained yet; metrics.json follows when they are")
        return 0
    metrics = run.write_metrics(collect_oof(run.train, run.folds, run.k, run.dir), init)
    print(f"segmenter: out-of-fold score {metrics['overall']['score']:.4f} at threshold "
          f"{metrics['overall']['threshold']:.2f} (encoder init: {init}) -> {run.dir / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
