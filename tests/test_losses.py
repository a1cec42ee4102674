"""Losses against brute-force references (definitions in python loops, float64) and hand-worked cases."""
import itertools

import keras
import numpy as np
import pytest
from keras import ops

from segmenter.losses import bce_dice_loss, edge_target, lovasz_grad, lovasz_hinge


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def _is64(x):
    """Float64 results unless the backend computes in float32 (JAX without x64)."""
    return ops.convert_to_numpy(x).dtype == np.float64


def _jaccard_loss(gt, mistakes):
    """Jaccard loss of a set of mispredicted pixels: |M| / |gt U M| (0 when both are empty)."""
    union = gt | mistakes
    return len(mistakes) / len(union) if union else 0.0


def _relu(e):
    return max(0.0, e), (1.0 if e > 0 else 0.0)


def _elu1(e):
    return (e + 1.0, 1.0) if e > 0 else (np.exp(e), np.exp(e))


def _lovasz_brute(labels, logits, penalty=_relu):
    """Lovasz extension of the Jaccard loss at m = penalty(1 - logit*sign), and its gradient, per definition
    (``penalty`` returns its value and derivative at one error)."""
    labels, logits = labels.ravel(), logits.ravel()
    signs = 2.0 * labels - 1.0
    pm = [penalty(e) for e in 1.0 - logits * signs]
    m, dm = np.array([v for v, _ in pm]), np.array([d for _, d in pm])
    gt = {i for i in range(len(labels)) if labels[i] == 1}
    order = sorted(range(len(m)), key=lambda i: -m[i])
    value, grad, prev, chosen = 0.0, np.zeros(len(m)), 0.0, set()
    for i in order:
        chosen.add(i)
        cur = _jaccard_loss(gt, chosen)
        value += m[i] * (cur - prev)
        grad[i] = (cur - prev) * dm[i] * (-signs[i])
        prev = cur
    return value, grad


def _keras_grad(fn, y, x):
    """d sum(fn(y, x)) / dx with the active backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        xt = tf.Variable(x)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(fn(tf.constant(y), xt))
        return tape.gradient(loss, xt).numpy()
    if backend == "jax":
        import jax
        return np.asarray(jax.grad(lambda v: fn(y, v).sum())(x))
    if backend == "torch":
        import torch
        xt = torch.tensor(x, requires_grad=True)
        fn(torch.tensor(y), xt).sum().backward()
        return xt.grad.numpy()
    pytest.skip(f"no autodiff helper for backend {backend}")


def _tiny_batch(seed=0):
    """3 images of 2x3: mixed, mixed, empty; logits away from ties and from the hinge kink."""
    rng = np.random.default_rng(seed)
    y = np.array([[[1, 0, 1], [0, 0, 1]], [[1, 1, 1], [1, 0, 0]], [[0, 0, 0], [0, 0, 0]]], np.float64)
    while True:
        x = rng.uniform(-2.5, 2.5, size=y.shape)
        e = (1 - x * (2 * y - 1)).reshape(3, -1)
        gaps = [np.diff(np.sort(r)).min() for r in e]
        if min(gaps) > 0.05 and np.abs(e).min() > 0.05 and (e > 0).sum() >= 8:
            return y[..., None], x[..., None]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lovasz_hinge_matches_brute_force(seed):
    y, x = _tiny_batch(seed)
    out = lovasz_hinge(y, x)
    tol = 1e-10 if _is64(out) else 1e-5
    ref = [_lovasz_brute(y[i], x[i]) for i in range(len(y))]
    np.testing.assert_allclose(_np(out), [r[0] for r in ref], rtol=tol, atol=tol)
    ref_grad = np.stack([r[1] for r in ref]).reshape(x.shape)
    # autodiff through argsort / take_along_axis
    np.testing.assert_allclose(_keras_grad(lovasz_hinge, y, x), ref_grad, atol=tol)
    # finite differences of the keras loss (exact away from ties and kinks: piecewise linear)
    eps, fd = (1e-6 if _is64(out) else 1e-2), np.zeros(x.size)
    for j in range(x.size):
        d = np.zeros(x.size)
        d[j] = eps
        fd[j] = (_np(lovasz_hinge(y, x + d.reshape(x.shape))).sum()
                 - _np(lovasz_hinge(y, x - d.reshape(x.shape))).sum()) / (2 * eps)
    np.testing.assert_allclose(fd, ref_grad.ravel(), atol=1e-6 if _is64(out) else 1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_lovasz_elu_matches_brute_force(seed):
    """elu(e) + 1 for relu(e): value and gradient per definition; pixels right by the margin, which the
    hinge leaves alone, get a gradient too."""
    from segmenter.losses import lovasz_elu, mask_loss

    y, x = _tiny_batch(seed)
    out = lovasz_elu(y, x)
    tol = 1e-10 if _is64(out) else 1e-5
    ref = [_lovasz_brute(y[i], x[i], _elu1) for i in range(len(y))]
    np.testing.assert_allclose(_np(out), [r[0] for r in ref], rtol=tol, atol=tol)
    grad = _keras_grad(lovasz_elu, y, x)
    np.testing.assert_allclose(grad, np.stack([r[1] for r in ref]).reshape(x.shape), atol=tol)
    assert np.count_nonzero(grad) > np.count_nonzero(_keras_grad(lovasz_hinge, y, x))
    assert mask_loss("lovasz", elu=True) is lovasz_elu


def test_lovasz_hand_worked():
    # gt = pixels 0,1; pixels 0 and 2 have error 1 (logit 0), the rest are right with margin (error -1)
    y = np.array([1, 1, 0, 0, 0, 0], np.float64).reshape(1, 2, 3, 1)
    x = np.array([0, 2, 0, -2, -2, -2], np.float64).reshape(1, 2, 3, 1)
    # Lovasz extension at a 0/1 vector = Jaccard loss of that set: |{0,2}| / |{0,1,2}| = 2/3
    tol = 1e-12 if _is64(lovasz_hinge(y, x)) else 1e-6
    np.testing.assert_allclose(_np(lovasz_hinge(y, x)), [2 / 3], rtol=tol)
    # empty truth: the loss is the largest hinge error
    y0 = np.zeros((1, 2, 3, 1))
    x0 = np.array([-3, -0.5, 0.25, -2, -2, -2], np.float64).reshape(1, 2, 3, 1)
    np.testing.assert_allclose(_np(lovasz_hinge(y0, x0)), [1.25], rtol=tol)
    # all right with margin: zero
    np.testing.assert_allclose(_np(lovasz_hinge(y, np.where(y > 0, 3.0, -3.0))), [0.0], atol=tol)


def test_lovasz_grad_brute_force():
    for gt in itertools.product([0.0, 1.0], repeat=5):
        g = _np(lovasz_grad(np.array([gt])))[0]
        gt_set = {i for i, v in enumerate(gt) if v}
        prev, ref = 0.0, []
        for k in range(1, 6):
            cur = _jaccard_loss(gt_set, set(range(k)))
            ref.append(cur - prev)
            prev = cur
        np.testing.assert_allclose(g, ref, atol=1e-6)


def test_bce_dice_matches_numpy():
    rng = np.random.default_rng(3)
    y = (rng.random((3, 4, 5, 1)) > 0.5).astype(np.float64)
    y[2] = 0
    x = rng.normal(scale=3, size=y.shape)
    out = bce_dice_loss(y, x)
    p = 1 / (1 + np.exp(-x))
    ref = []
    for i in range(3):
        t, q, z = y[i].ravel(), p[i].ravel(), x[i].ravel()
        # -t log(sigmoid z) - (1-t) log(1 - sigmoid z), written stably
        bce = np.mean(t * np.logaddexp(0, -z) + (1 - t) * np.logaddexp(0, z))
        dice = (2 * np.sum(q * t) + 1) / (np.sum(q) + np.sum(t) + 1)
        ref.append(bce + 1 - dice)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-9 if _is64(out) else 1e-5)
    # float32 / huge logits stay finite
    big = _np(bce_dice_loss(y.astype("float32"), (x * 100).astype("float32")))
    assert np.all(np.isfinite(big))


def test_edge_target_hand_worked():
    m = np.zeros((7, 7), bool)
    m[2:5, 2:5] = True
    e = edge_target(m[None], width=2)[0]
    ref = np.zeros((7, 7), bool)
    ref[1:6, 1:6] = True
    ref[3, 3] = False  # the square's interior beyond 1 pixel
    np.testing.assert_array_equal(e, ref)
    # touching the image border: the border is not a boundary
    h = np.zeros((1, 5, 6), bool)
    h[0, :, :3] = True
    e = edge_target(h, width=2)
    ref = np.zeros((1, 5, 6), bool)
    ref[0, :, 2:4] = True
    np.testing.assert_array_equal(e, ref)
    assert e.dtype == bool
    # wider band, empty and full masks
    assert edge_target(m[None], width=4)[0].all()  # 2 px out + 2 px in cover the whole 7x7
    assert not edge_target(np.zeros((2, 5, 5), bool)).any()
    assert not edge_target(np.ones((2, 5, 5), bool)).any()


def test_lovasz_symmetric_is_the_mean_of_both_hinges():
    """(L(z, y) + L(-z, 1 - y)) / 2 against the brute-force definition, image by image; an empty image
    now trains more than its worst pixel."""
    from segmenter.losses import lovasz_symmetric

    y, x = _tiny_batch(1)
    out = _np(lovasz_symmetric(y, x))
    for i in range(len(y)):
        want = 0.5 * (_lovasz_brute(y[i], x[i])[0] + _lovasz_brute(1 - y[i], -x[i])[0])
        assert out[i] == pytest.approx(want, rel=1e-5, abs=1e-6)
    g = _keras_grad(lovasz_symmetric, y, x)[2]
    g_plain = _keras_grad(lovasz_hinge, y, x)[2]
    assert np.count_nonzero(g) > np.count_nonzero(g_plain) >= 1


def test_salt_only_losses_ignore_empty_images():
    from segmenter.losses import lovasz_hinge_salt_only, mask_loss

    y, x = _tiny_batch(2)
    out, plain = _np(lovasz_hinge_salt_only(y, x)), _np(lovasz_hinge(y, x))
    assert out[2] == 0.0 and plain[2] > 0  # the third image is empty
    np.testing.assert_allclose(out[:2], plain[:2], rtol=1e-6)
    assert np.all(_keras_grad(lovasz_hinge_salt_only, y, x)[2] == 0)
    assert mask_loss("lovasz") is lovasz_hinge and mask_loss("bce_dice") is bce_dice_loss
    with pytest.raises(ValueError):
        mask_loss("focal")


def test_confident_pseudo_labels_hand_worked():
    """1st place's rule: at least 90% of the pixels below 0.2 or above 0.8, and the mask not blank."""
    from segmenter.pseudo import confident

    n = 100
    sure_salt = np.full((10, 10), 0.05); sure_salt[:5] = 0.95           # all pixels sure, half salt
    blank = np.full((10, 10), 0.05)                                     # sure, but blank: not used
    unsure = np.full((10, 10), 0.05); unsure[:5] = 0.95; unsure[0, :] = 0.5; unsure[1, :2] = 0.5  # 88% sure
    edge = np.full((10, 10), 0.05); edge[:5] = 0.95; edge[0, :] = 0.5   # exactly 90% sure
    assert sure_salt.size == n
    got = confident(np.stack([sure_salt, blank, unsure, edge]))
    assert got.tolist() == [True, False, False, True]
