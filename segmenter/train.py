"""Segmenter training: `python -m segmenter.train --data DATA --out OUT --preset PRESET --folds K`.

K folds (OUT/folds.csv, shared with the classifier) x the preset's rounds. Round 1 trains each fold
from the encoder's initial weights; each later round restarts the fold from its best checkpoint of the
round before, with a fresh cosine learning-rate cycle. Epochs are scored on the fold's validation
images with the competition metric (binarisation threshold swept): every epoch, or every
``validate_every``-th and the last where the preset says so; the best checkpoint of those is kept.
Finished rounds are skipped and a killed run resumes where it was (``training.stage``). Where
the preset asks for pseudo-labels, each fold ends with one more round on its training part plus the
test images that its own model of the round before predicts confidently (``segmenter.pseudo``).

Writes (salt.layout) a stage folder per round and fold, the out-of-fold probabilities in the format of
salt.oof and the scores (metrics.json).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np

from salt.cli import UserError, run_cli, settings_table
from salt.layout import Data, StageFiles
from salt.metric import competition_score, image_scores
from segmenter import encoders, losses, pseudo
from segmenter.rounds import all_rounds, snapshot_rounds
from segmenter.presets import PRESETS
from segmenter.unet import build_unet, deep_supervision_names
from training import devices, kfold, reuse, runs, schedule, stage, weights
from training.batches import AugmentedBatches
from training.pace import Pace, epochs_left
from training.predict import predict_outputs
from training.validation import Validation

# The mask binarisation thresholds that validation and the trainer's out-of-fold scores try (coarser than
# the ensemble's tuning, which decides the submission's).
VALIDATION_MASK_THRESHOLDS = np.round(np.arange(0.30, 0.71, 0.05), 2)


def best_threshold(masks: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """The binarisation threshold with the best competition score, and that score."""
    scores = [competition_score(masks, prob > t) for t in VALIDATION_MASK_THRESHOLDS]
    i = int(np.argmax(scores))
    return float(VALIDATION_MASK_THRESHOLDS[i]), float(scores[i])


def validation_score(masks: np.ndarray):
    def score(probs: dict) -> dict:
        t, s = best_threshold(masks, probs["mask"])
        return {"val_score": s, "val_threshold": t}
    return score


def deep_outputs(network: dict) -> list[str]:
    """The deep-supervision masks a network has (segmenter.unet): one per decoder block but the last."""
    if not network.get("deep_supervision"):
        return []
    return deep_supervision_names(len(network["decoder_filters"]))


def make_targets(edge: bool, deep: list[str] = ()):
    def targets(masks: np.ndarray) -> dict:
        mask = masks[..., None].astype(np.float32)
        out = {"mask": mask, "salt": masks.reshape(len(masks), -1).any(1, keepdims=True).astype(np.float32),
               **{name: mask for name in deep}}
        if edge:
            out["edge"] = losses.edge_target(masks)[..., None].astype(np.float32)
        return out
    return targets


def build_model(preset: dict, encoder_weights: str | None) -> keras.Model:
    """The preset's U-Net, its layers' device choices made for this machine."""
    return build_unet(**preset["network"], encoder_weights=encoder_weights, device=devices.layer_choices())


def optimizer(preset: dict, lr: float) -> keras.optimizers.Optimizer:
    """Adam, or AdamW where the preset sets ``weight_decay`` (decoupled, Loshchilov & Hutter): convolution and
    dense kernels decay, BatchNormalization's scales and offsets and the biases do not."""
    decay = preset.get("weight_decay", 0.0)
    if not decay:
        return keras.optimizers.Adam(lr)
    opt = keras.optimizers.AdamW(lr, weight_decay=decay)
    opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return opt


def compile_model(model: keras.Model, preset: dict, rnd: dict) -> None:
    """Adam (AdamW with the preset's ``weight_decay``) on the round's loss, the deep-supervision masks on
    the same loss at ``deep_supervision_weight`` each; the learning rate is set every epoch by
    ``training.schedule``."""
    mask = losses.mask_loss(rnd["loss"], preset.get("lovasz_symmetric", False), preset.get("lovasz_salt_only", False),
                            preset.get("lovasz_elu", False))
    loss = {"mask": mask, "salt": keras.losses.BinaryCrossentropy(from_logits=True)}
    loss_weights = {"mask": 1.0, "salt": preset["salt_weight"]}
    if preset["network"]["edge"]:
        loss["edge"] = keras.losses.BinaryCrossentropy(from_logits=True)
        loss_weights["edge"] = preset["edge_weight"]
    for name in deep_outputs(preset["network"]):
        loss[name], loss_weights[name] = mask, preset.get("deep_supervision_weight", 0.1)
    model.compile(optimizer=optimizer(preset, rnd["lr"]), loss=loss, loss_weights=loss_weights,
                  jit_compile=devices.jit_compile())


def model_key(run: runs.Run, rnd: dict) -> str:
    """What a compiled segmenter depends on besides its weights: the preset and the round's loss
    (``training.reuse``)."""
    return json.dumps({"model": "segmenter", "preset": run.preset, "loss": rnd["loss"],
                       "precision": run.precision}, sort_keys=True)


MONITOR = "val_score"


def validation_every(preset: dict, rnd: dict) -> int:
    """Validate every N-th epoch of a round (and its last): the preset's ``validate_every``, 1 by default;
    ``"last"`` validates the round's last epoch alone."""
    every = preset.get("validate_every", 1)
    if every == "last":
        return rnd["epochs"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise UserError(f"validate_every {every!r}: write a whole number of epochs (1 or more) or \"last\"")
    return every


def fit_parts(preset: dict, rnd: dict, images, masks, val_images, val_masks, seed: int):
    """The training batches and the callbacks of one round: the learning-rate schedule and the validation
    score (also what ``make bench`` times)."""
    targets = make_targets(preset["network"]["edge"], deep_outputs(preset["network"]))
    data = AugmentedBatches(images, masks, targets, preset["batch_size"], preset["augment"], seed=seed)
    callbacks = [schedule.scheduler(rnd["epochs"], rnd["lr"], rnd.get("warmup", 0)),
                 Validation(val_images, validation_score(val_masks), 2 * preset["batch_size"],
                            echo="val_score {val_score:.4f} at threshold {val_threshold:.2f}",
                            every=validation_every(preset, rnd), epochs=rnd["epochs"],
                            names=("val_score", "val_threshold"))]
    return data, callbacks


def train_round(run: runs.Run, fold: int, r: int, rnd: dict, prev, encoder_path, extra=None) -> Path:
    """Trains round ``r`` of a fold (from the encoder's initial weights, or from the best checkpoint of
    the round before) unless it is done; ``extra`` (images, masks) joins the training part."""
    tr, va = kfold.fold_split(run.folds, fold)
    train, preset = run.train, run.preset
    stage_dir = run.paths.round_dir(r, fold)
    if stage.is_done(stage_dir):
        print(f"fold {fold} round {r}: done, skipped")
        return stage_dir
    images, masks = train.images[tr], train.masks[tr]
    if extra is not None:
        images, masks = np.concatenate([images, extra[0]]), np.concatenate([masks, extra[1]])
    print(f"fold {fold} round {r}: {rnd['loss']}, {rnd['epochs']} epochs, lr {rnd['lr']}, {len(images)} train "
          f"{f'({len(extra[0])} pseudo-labelled) ' if extra is not None else ''}/ {len(va)} validation images",
          flush=True)
    # the preset's "seed" (default 0) shifts every seed: a repeat run that measures training noise
    seed = 100_000 * preset.get("seed", 0) + 1000 * r + fold
    key = model_key(run, rnd)
    devices.new_session(seed, run.precision, preset["batch_size"], clear=reuse.kept(key) is None)
    fresh = build_model(preset, encoder_path if prev is None else None)
    if prev is not None:
        stage.copy_weights(StageFiles(prev).best, fresh)
    model = reuse.compiled(key, fresh, lambda m: compile_model(m, preset, rnd), rnd["lr"])
    data, callbacks = fit_parts(preset, rnd, images, masks, train.images[va], train.masks[va], seed=seed)
    state = stage.fit_stage(model, stage_dir, data, rnd["epochs"], MONITOR, "max", callbacks,
                            verbose=run.verbose, save_every_s=run.save_every_s, pace=run.pace)
    stage.mark_done(stage_dir, {"best_score": state["best"], "best_epoch": state["best_epoch"] + 1})
    return stage_dir


def save_oof(run: runs.Run, fold: int) -> None:
    """The fold's out-of-fold predictions by the best checkpoint of every round (``prob_round{r}``,
    ``p_salt_round{r}``) and their snapshot average (``prob``, ``p_salt``: the preset's ``snapshots``)."""
    _, va = kfold.fold_split(run.folds, fold)
    arrays, rounds = {}, all_rounds(run.preset)
    for r in range(1, len(rounds) + 1):
        model = reuse.loaded(model_key(run, rounds[r - 1]), StageFiles(run.paths.round_dir(r, fold)).best)
        probs = predict_outputs(model, run.train.images[va], tta=run.preset["tta"],
                                batch_size=2 * run.preset["batch_size"])
        arrays[f"prob_round{r}"], arrays[f"p_salt_round{r}"] = probs["mask"], probs["salt"]
    chosen = snapshot_rounds(run.preset)
    prob = np.mean([arrays[f"prob_round{r}"] for r in chosen], axis=0)
    p_salt = np.mean([arrays[f"p_salt_round{r}"] for r in chosen], axis=0)
    kfold.save_fold(run.dir, fold, va, prob=prob.astype(np.float16), p_salt=p_salt.astype(np.float16),
                    **{k: v.astype(np.float16) for k, v in arrays.items()})


def train_fold(run: runs.Run, fold: int, encoder_path, test_dir: Path) -> None:
    """Every round of one fold (finished ones skipped), with the pseudo-label round last where the preset
    has one, then the fold's out-of-fold predictions."""
    prev = None
    for r, rnd in enumerate(all_rounds(run.preset), 1):
        extra = None
        if rnd.get("pseudo"):  # labelled by this fold's model of the round before (segmenter.pseudo)
            extra = pseudo.pseudo_labels(run.paths.pseudo(r, fold), test_dir, StageFiles(prev).best,
                                         run.preset["pseudo"], 2 * run.preset["batch_size"])
        prev = train_round(run, fold, r, rnd, prev, encoder_path, extra)
    save_oof(run, fold)


def collect_oof(run: runs.Run) -> dict:
    """Joins the folds' out-of-fold predictions into the run's out-of-fold file and scores them."""
    masks, n = run.train.masks, len(run.train.ids)
    joined = kfold.join_folds(run.dir, run.k, n)
    prob = joined["prob"].astype(np.float32)
    fold_of = run.folds["fold"].to_numpy()
    per_fold = []
    for fold in range(run.k):
        idx = np.flatnonzero(fold_of == fold)
        t, s = best_threshold(masks[idx], prob[idx])
        per_fold.append({"fold": fold, "score": s, "threshold": t, "images": int(len(idx))})
    t, s = best_threshold(masks, prob)
    kfold.save_joined(run, **joined)
    empty = ~masks.reshape(n, -1).any(1)
    scores = image_scores(masks, prob > t)
    by_round = [{"round": r, **dict(zip(("threshold", "score"), best_threshold(
        masks, joined[f"prob_round{r}"].astype(np.float32))))} for r in range(1, len(all_rounds(run.preset)) + 1)]
    return {"folds": per_fold, "rounds": by_round, "snapshots": snapshot_rounds(run.preset),
            "overall": {"score": s, "threshold": t, "score_empty_images": float(scores[empty].mean()),
                        "score_salt_images": float(scores[~empty].mean())}}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m segmenter.train", description=__doc__.splitlines()[0])
    runs.add_run_args(p, PRESETS)
    p.add_argument("--edge", choices=["on", "off"], help="override the preset's edge channel")
    p.add_argument("--rounds", type=int, help="train only the preset's first ROUNDS rounds")
    return p


def options(**given) -> argparse.Namespace:
    """The trainer's options for a caller other than the command line: every option at its default, but
    those ``given`` (by their attribute names: data, out, preset, folds, only_fold, epochs_scale, ...)."""
    args = parser().parse_args([])
    unknown = sorted(set(given) - set(vars(args)))
    if unknown:
        raise TypeError(f"unknown segmenter.train option {unknown[0]!r}")
    vars(args).update(given)
    return args


def train(args: argparse.Namespace) -> tuple[runs.Run, dict | None]:
    """The whole run of ``python -m segmenter.train``: every fold asked for trained (finished ones
    skipped), and once all folds are there, the out-of-fold scores. Returns (the run, its metrics; None
    while folds are missing)."""
    run = runs.start_run(args, PRESETS, "segmenter", "rounds")
    if args.rounds is not None:
        if not 1 <= args.rounds <= len(run.preset["rounds"]):
            raise UserError(f"--rounds {args.rounds}: the {run.name} preset has {len(run.preset['rounds'])} rounds")
        run.preset["rounds"] = run.preset["rounds"][:args.rounds]
    if args.edge:
        run.preset["network"]["edge"] = args.edge == "on"
    for rnd in all_rounds(run.preset):  # a bad --set fails here, before anything is written
        validation_every(run.preset, rnd)
    encoder = encoders.get(run.preset["network"]["encoder"])
    find = encoder.find_imagenet if encoder.pretrained else (lambda: weights.warn_random(
        run.preset["network"]["encoder"], "none exist for this encoder", "Use --encoder-weights none."))
    encoder_path, init = weights.resolve(run.preset["encoder_weights"], find, encoder.init_label)
    run.open(encoder_init=init, folds=run.k)
    run.pace = Pace(epochs_left((run.paths.round_dir(r, fold), rnd["epochs"]) for fold in run.fold_list
                                if not kfold.oof_path(run.dir, fold).exists()
                                for r, rnd in enumerate(all_rounds(run.preset), 1)))
    print(f"segmenter: preset {run.name} (encoder init: {init}, {len(run.train.ids)} images, {run.k} folds)\n"
          f"{settings_table(run.preset)}", flush=True)
    if not kfold.train_folds(run, lambda fold: train_fold(run, fold, encoder_path, Data(args.data).test_images)):
        return run, None
    metrics = run.write_metrics(collect_oof(run), init)
    print(f"segmenter: out-of-fold score {metrics['overall']['score']:.4f} at threshold "
          f"{metrics['overall']['threshold']:.2f} (encoder init: {init}) -> {run.paths.metrics_json}")
    return run, metrics


def main(argv=None) -> int:
    train(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    run_cli(main)
