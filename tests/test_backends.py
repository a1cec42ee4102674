"""Cross-backend check: the tiny segmenter trains one step and predicts on every installed Keras backend
(TensorFlow, JAX, PyTorch); the classifier on PyTorch (on TensorFlow and JAX it trains through the
trainer's own fit in tests/test_full_preset_*.py).

The backend is fixed when Keras is imported, so each backend runs in a subprocess of its own (this file run
as a script with KERAS_BACKEND set, once per backend for all its networks: one start-up of PyTorch serves
both of its tests; tests/children.py), which prints a JSON summary per network that the tests check; the
compiled loss is checked against a numpy reference computed from the model's own outputs. The models are built
and compiled exactly as the trainers do: segmenter.unet.build_unet(**PRESETS["smoke"]["network"]) with
segmenter.train.compile_model and the smoke preset's first round; the classifier (DenseNet121 at 32x32,
random encoder) with Adam + BinaryCrossentropy(from_logits=True).
"""
from __future__ import annotations

import importlib.util
import sys
import time

import numpy as np
import pytest

from children import child_main, child_result, run_children

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # Keras backend -> package
N = 8


def fake_data(n: int = N):
    """uint8 images (n,101,101) and bool masks: half of them empty, the others a bright disc of salt."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:101, :101]
    masks = np.zeros((n, 101, 101), bool)
    for i in range(n // 2, n):
        cy, cx, r = rng.uniform(20, 80), rng.uniform(20, 80), rng.uniform(8, 30)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    images = np.clip(70 + 110 * masks + rng.normal(0, 15, masks.shape), 0, 255).astype(np.uint8)
    return images, masks


_START = time.perf_counter()


def _log(msg: str) -> None:
    """Progress of the subprocess on its stderr (shown when it fails)."""
    print(f"[{time.perf_counter() - _START:6.1f} s] {msg}", file=sys.stderr, flush=True)


def _one_step(model, x, y) -> dict:
    """Loss (inference mode) before and after one training step, and how many weight tensors changed."""
    import keras

    def weights():
        return [keras.ops.convert_to_numpy(v.value) for v in model.trainable_weights]

    before_w = weights()
    before = model.test_on_batch(x, y, return_dict=True)["loss"]
    _log(f"{model.name}: test_on_batch")
    train = model.train_on_batch(x, y, return_dict=True)["loss"]
    _log(f"{model.name}: train_on_batch")
    after = model.test_on_batch(x, y, return_dict=True)["loss"]
    changed = sum(not np.array_equal(a, b) for a, b in zip(before_w, weights()))
    return {"loss_before": float(before), "train_loss": float(train), "loss_after": float(after),
            "weights_changed": int(changed), "weights": len(before_w)}


def _bce(z, t) -> float:
    """Mean binary cross-entropy from logits, in numpy (the reference for the compiled losses)."""
    z, t = np.asarray(z, np.float64), np.asarray(t, np.float64)
    return float(np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))))


def _bce_dice(z, t) -> float:
    """Per image: mean BCE + 1 - soft Dice (smooth 1) of sigmoid(z); averaged over the batch, in numpy."""
    z, t = np.asarray(z, np.float64).reshape(len(z), -1), np.asarray(t, np.float64).reshape(len(t), -1)
    p = 1.0 / (1.0 + np.exp(-z))
    dice = (2.0 * (p * t).sum(1) + 1.0) / (p.sum(1) + t.sum(1) + 1.0)
    bce = (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean(1)
    return float(np.mean(bce + 1.0 - dice))


def _summary(p: np.ndarray) -> dict:
    return {"shape": list(p.shape), "min": float(p.min()), "max": float(p.max()), "finite": bool(np.isfinite(p).all())}


def _child_segmenter() -> dict:
    """Runs in the subprocess: the smoke preset's segmenter, compiled as segmenter.train does."""
    import keras

    from segmenter.presets import PRESETS
    from segmenter.train import compile_model, make_targets
    from segmenter.unet import build_unet
    from training.batches import to_input
    from training.predict import predict_outputs

    keras.utils.set_random_seed(0)
    images, masks = fake_data()
    x = to_input(images)
    preset = PRESETS["smoke"]
    model = build_unet(**preset["network"], encoder_weights=None)
    compile_model(model, preset, preset["rounds"][0])
    y = make_targets(preset["network"]["edge"])(masks)
    _log("segmenter: built")
    raw = {k: np.asarray(v) for k, v in model.predict(x, batch_size=4, verbose=0).items()}
    _log("segmenter: predict")
    out = {"backend": keras.backend.backend(), "loss": preset["rounds"][0]["loss"],
           "outputs": {k: [list(v.shape), str(v.dtype)] for k, v in raw.items()}}
    out["numpy_loss"] = (_bce_dice(raw["mask"], y["mask"]) + preset["salt_weight"] * _bce(raw["salt"], y["salt"])
                         + preset["edge_weight"] * _bce(raw["edge"], y["edge"]))
    out["step"] = _one_step(model, x, y)
    probs = predict_outputs(model, images, tta=True, batch_size=4)
    prob, p_salt = probs["mask"], probs["salt"]
    _log("segmenter: predict_outputs")
    out["prob"], out["p_salt"] = _summary(prob), _summary(p_salt)
    return out


def _child_classifier() -> dict:
    """Runs in the subprocess: DenseNet121 at 32x32 (random encoder), compiled as classifier.train does."""
    import keras

    from classifier.model import build_classifier
    from training.batches import to_input
    from training.predict import predict_outputs

    keras.utils.set_random_seed(0)
    images, masks = fake_data()
    x = to_input(images)
    model, init = build_classifier("densenet121", 32, "none", 0.2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    empty = (~masks.reshape(N, -1).any(1))[:, None].astype(np.float32)
    _log("classifier: built")
    raw = np.asarray(model.predict(x, batch_size=4, verbose=0))
    _log("classifier: predict")
    out = {"backend": keras.backend.backend(), "init": init, "output": [list(raw.shape), str(raw.dtype)],
           "numpy_loss": _bce(raw, empty)}
    out["step"] = _one_step(model, x, empty)
    out["p_empty"] = _summary(predict_outputs(model, images, tta=True, batch_size=4)["empty"])
    _log("classifier: predict_outputs")
    return out


CHILDREN = {"segmenter": _child_segmenter, "classifier": _child_classifier}


# The networks each backend's subprocess runs (the tests below: the segmenter on every backend, the
# classifier on PyTorch).
NETWORKS = {"tensorflow": ("segmenter",), "jax": ("segmenter",), "torch": ("segmenter", "classifier")}


def _run(backend: str, network: str) -> dict:
    """The JSON summary of CHILDREN[network] run in a subprocess with KERAS_BACKEND=backend."""
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        pytest.skip(f"the {backend} backend's package {BACKENDS[backend]!r} is not installed")
    r = child_result(run_children(__file__, backend, NETWORKS[backend]), network, f"{network} on the {backend} backend")
    assert r["backend"] == backend
    return r


def _check_step(step: dict, name: str) -> None:
    losses = [step["loss_before"], step["train_loss"], step["loss_after"]]
    assert np.isfinite(losses).all(), f"{name}: non-finite loss {losses}"
    assert step["loss_after"] != step["loss_before"], f"{name}: the loss did not change after a step {losses}"
    # Adam moves every weight that gets a gradient. Not quite all do: in the tiny network a scSE block's
    # squeeze layer has a single ReLU unit, which can be dead for the whole batch (no gradient behind it).
    assert step["weights_changed"] >= 0.9 * step["weights"], f"{name}: only {step['weights_changed']} of " \
                                                             f"{step['weights']} weight tensors changed"


def _check_probs(p: dict, shape: list, name: str) -> None:
    assert p["shape"] == shape, f"{name}: shape {p['shape']}, expected {shape}"
    assert p["finite"], f"{name}: non-finite values"
    assert 0.0 <= p["min"] <= p["max"] <= 1.0, f"{name}: outside [0, 1]: {p['min']}..{p['max']}"


def _check_loss(r: dict, name: str) -> None:
    """The compiled loss in inference mode equals the numpy reference computed from the model's outputs."""
    assert r["step"]["loss_before"] == pytest.approx(r["numpy_loss"], rel=1e-3), f"{name}: compiled loss"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_segmenter_train_step_and_predict(backend):
    r = _run(backend, "segmenter")
    assert r["outputs"] == {"mask": [[N, 101, 101, 1], "float32"], "salt": [[N, 1], "float32"],
                            "edge": [[N, 101, 101, 1], "float32"]}
    _check_loss(r, "segmenter")
    _check_step(r["step"], "segmenter")
    _check_probs(r["prob"], [N, 101, 101], "segmenter P(salt) per pixel")
    _check_probs(r["p_salt"], [N], "segmenter P(has salt)")


# On TensorFlow and JAX the classifier trains through the trainer's own fit in tests/test_full_preset_*.py.
@pytest.mark.parametrize("backend", ["torch"])
def test_classifier_train_step_and_predict(backend):
    r = _run(backend, "classifier")
    assert r["init"] == "random"
    assert r["output"] == [[N, 1], "float32"]
    _check_loss(r, "classifier")
    _check_step(r["step"], "classifier")
    _check_probs(r["p_empty"], [N], "classifier P(empty)")


if __name__ == "__main__":
    child_main(CHILDREN, sys.argv[1:])
