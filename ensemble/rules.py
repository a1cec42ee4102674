"""The ensemble's post-processing rules: what they do to out-of-fold or test predictions, given their
parameters (ensemble.nested decides which are kept and fits the parameters).

The rules, applied in this order (``apply_rules``):
  threshold   the mask binarisation threshold, prob > t (always kept);
  classifier  zero the mask when the classifier's P(empty) > t_e (w = 1);
  combined    P(empty) = w * p_empty_clf + (1 - w) * (1 - p_salt), w on a grid (w=1: the classifier only,
              w=0: the segmenter's own image head only), threshold t_e; supersedes `classifier` when kept;
  min_area    drop predicted masks with fewer than `min_area` pixels;
  vertical    (only with OUT/mosaic.csv) a labelled tile whose mask is vertical (all rows equal, not empty,
              not all salt) continues into the unlabelled tiles below it, down the column
              (salt.mosaic.propagate_vertical). Out of fold, the labelled tiles of a tile in fold k are the
              training tiles of the other folds, as they were for the model that predicted it; on test
              every training tile is labelled;
  constant    an image whose pixels are all equal is predicted empty.
The last two do not depend on the models ("tile rules"): the submission applies them after the others.

What the rules are tuned for: the submission (ensemble.submit) applies them once, to the mean of the fold
models' probabilities (pixel P(salt), image-head P(salt) and P(empty), each averaged over the models). The
out-of-fold prediction of an image is the mean of its own fold's models (the snapshot rounds, with the
same flip TTA), made by models that never saw it: the same kind of prediction and the same rules, with
fewer models in the mean. Nothing here takes one fold's decision at a time or votes between folds; a mean
of more models is smoother, which the nested selection (ensemble.nested) cannot see, since no image has an
out-of-fold prediction from more than one fold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from salt.cli import UserError


def combined_p_empty(p_empty, p_salt, w) -> np.ndarray:
    """P(empty) = w * p_empty (classifier) + (1 - w) * (1 - p_salt) (segmenter image head), float64 (N,)."""
    w = float(w)
    out = 0.0
    if w > 0:
        if p_empty is None:
            raise UserError("the tuned rule needs the classifier's P(empty), which is missing")
        out = w * np.asarray(p_empty, dtype=np.float64)
    if w < 1:
        out = out + (1.0 - w) * (1.0 - np.asarray(p_salt, dtype=np.float64))
    return np.asarray(out, dtype=np.float64)


def binarise(prob, threshold) -> np.ndarray:
    """prob > threshold, compared in float32 (exact for the float16 probabilities the models write)."""
    return np.asarray(prob, dtype=np.float32) > np.float32(threshold)


@dataclass
class TileContext:
    """What the tile rules need beside the predictions, for the images `ids` (in the order of the
    predictions): `constant` bool (N,), the image is constant (None: images unknown); `propagated`
    {id: bool (101, 101)}, the vertical masks that flow into unlabelled tiles from labelled ones above
    (None: no mosaic). Make one with `oof_context` or `submit_context`."""
    ids: list
    constant: np.ndarray | None = None
    propagated: dict | None = None


def _constant(images):
    from salt.mosaic import constant_images

    return None if images is None else constant_images(images)


def oof_context(ids, images, fold, truth, mosaic_df=None) -> TileContext:
    """The tile-rule context of out-of-fold predictions: a tile of fold k sees the labels (true masks) of
    the training tiles of the other folds, as the model that predicted it did."""
    from salt.mosaic import propagate_vertical

    ids = [str(i) for i in ids]
    prop = None
    if mosaic_df is not None:
        fold = np.asarray(fold)
        masks = dict(zip(ids, np.asarray(truth, dtype=bool)))
        prop = {}
        for k in np.unique(fold):
            here = {i for i, f in zip(ids, fold) if f == k}
            out = propagate_vertical(masks, mosaic_df, known_ids=[i for i in ids if i not in here])
            prop.update({i: m for i, m in out.items() if i in here})
    return TileContext(ids, _constant(images), prop)


def submit_context(ids, images, train_ids, train_masks, mosaic_df=None) -> TileContext:
    """The tile-rule context of test predictions (the submission): every training tile is labelled."""
    from salt.mosaic import propagate_vertical

    ids = [str(i) for i in ids]
    prop = None
    if mosaic_df is not None:
        masks = dict(zip(map(str, train_ids), np.asarray(train_masks, dtype=bool)))
        want = set(ids)
        prop = {i: m for i, m in propagate_vertical(masks, mosaic_df).items() if i in want}
    return TileContext(ids, _constant(images), prop)


def model_rules(prob, p_salt, p_empty, params) -> np.ndarray:
    """The rules that depend on the models: bool masks (N,101,101) from per-pixel P(salt) `prob`,
    image-head `p_salt` (N,), classifier `p_empty` (N,) or None, and `params`
    {"threshold", "empty_rule": None|{"w","threshold"}, "min_area"}."""
    masks = binarise(prob, params["threshold"])
    rule = params.get("empty_rule")
    if rule:
        pe = combined_p_empty(p_empty, p_salt, rule["w"])
        masks[pe > rule["threshold"]] = False
    min_area = int(params.get("min_area") or 0)
    if min_area > 0:
        area = masks.reshape(len(masks), -1).sum(axis=1)
        masks[area < min_area] = False
    return masks


def tile_rules(masks, params, context=None) -> np.ndarray:
    """The rules that do not depend on the models, in place on bool masks (N,101,101):
    params["vertical"]: a propagated vertical mask replaces the prediction; params["constant_empty"]:
    constant images are empty. `context` (TileContext) must cover the masks' images when either is on."""
    vertical, constant = bool(params.get("vertical")), bool(params.get("constant_empty"))
    if (vertical or constant) and (context is None or len(context.ids) != len(masks)):
        raise UserError("the tuned rules need the images' ids (mosaic rules), which were not given")
    if vertical:
        if context.propagated is None:
            raise UserError("the tuned rules propagate vertical masks down the mosaic, but no mosaic was given "
                            "(OUT/mosaic.csv)")
        for k, i in enumerate(context.ids):
            m = context.propagated.get(i)
            if m is not None:
                masks[k] = m
    if constant:
        if context.constant is None:
            raise UserError("the tuned rules make constant images empty, but the images were not given")
        masks[np.asarray(context.constant, dtype=bool)] = False
    return masks


def apply_rules(prob, p_salt, p_empty, params, context=None) -> np.ndarray:
    """Bool masks (N,101,101) under the tuned `params` (tuning.json's "params": threshold, empty_rule,
    min_area, vertical, constant_empty): `model_rules`, then `tile_rules` with `context` (a TileContext,
    needed only when a tile rule is on).

    The single implementation, used by the tuning (its scores are checked against it; it writes the
    out-of-fold masks it makes, ensemble.tuned, which the report reads) and the submission (on the mean of
    the fold models' probabilities, a chunk of images at a time)."""
    return tile_rules(model_rules(prob, p_salt, p_empty, params), params, context)


def describe(params) -> str:
    """One-line description of a parameter set."""
    r = params.get("empty_rule")
    rule = "no empty-image rule" if not r else f"zero if P(empty) > {r['threshold']:g} (w_classifier={r['w']:g})"
    text = f"threshold {params['threshold']:g}, {rule}, min area {params.get('min_area', 0)}"
    if params.get("vertical"):
        text += ", vertical masks continue down the mosaic"
    if params.get("constant_empty"):
        text += ", constant images empty"
    return text

