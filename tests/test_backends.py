"""Cross-backend check: the tiny segmenter and classifier train one step and predict on every installed
Keras backend (TensorFlow, JAX, PyTorch).

The backend is fixed when Keras is imported, so each backend runs in its own subprocess (this file run as
a script with KERAS_BACKEND set), which prints a JSON summary that the test checks. The models are built
and compiled exactly as the trainers do: segmenter.unet.build_unet(**PRESETS["smoke"]["network"]) with
segmenter.train.compile_model and the smoke preset's first round; the classifier (DenseNet121 at 32x32,
random encoder) with Adam + BinaryCrossentropy(from_logits=True).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # Keras backend -> package
TAG = "BACKEND_RESULT "
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


def _one_step(model, x, y) -> dict:
    """Loss (inference mode) before and after one training step, and how many weight tensors changed."""
    import keras

    def weights():
        return [keras.ops.convert_to_numpy(v.value) for v in model.trainable_weights]

    before_w = weights()
    before = model.test_on_batch(x, y, return_dict=True)["loss"]
    train = model.train_on_batch(x, y, return_dict=True)["loss"]
    after = model.test_on_batch(x, y, return_dict=True)["loss"]
    changed = sum(not np.array_equal(a, b) for a, b in zip(before_w, weights()))
    return {"loss_before": float(before), "train_loss": float(train), "loss_after": float(after),
            "weights_changed": int(changed), "weights": len(before_w)}


def _child() -> dict:
    """Runs in the subprocess: one training step and one prediction of each network."""
    import keras

    from classifier.model import build_classifier
    from classifier.predict import predict_p_empty
    from salt.batches import to_input
    from segmenter.predict import predict_probs
    from segmenter.presets import PRESETS
    from segmenter.train import compile_model, make_targets
    from segmenter.unet import build_unet

    keras.utils.set_random_seed(0)
    images, masks = fake_data()
    x = to_input(images)
    out = {"backend": keras.backend.backend()}

    preset = PRESETS["smoke"]
    seg = build_unet(**preset["network"], encoder_weights=None)
    compile_model(seg, preset, preset["rounds"][0], steps=10)
    y = make_targets(preset["network"]["edge"])(masks)
    raw = seg.predict(x, batch_size=4, verbose=0)
    out["seg_outputs"] = {k: [list(np.shape(v)), str(np.asarray(v).dtype)] for k, v in raw.items()}
    out["seg_step"] = _one_step(seg, x, y)
    prob, p_salt = predict_probs(seg, images, tta=True, batch_size=4)
    out["seg_prob"] = {"shape": list(prob.shape), "min": float(prob.min()), "max": float(prob.max()),
                       "finite": bool(np.isfinite(prob).all())}
    out["seg_p_salt"] = {"shape": list(p_salt.shape), "min": float(p_salt.min()), "max": float(p_salt.max()),
                         "finite": bool(np.isfinite(p_salt).all())}

    cls, init = build_classifier("densenet121", 32, "none", 0.2)
    cls.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    empty = (~masks.reshape(N, -1).any(1))[:, None].astype(np.float32)
    raw = cls.predict(x, batch_size=4, verbose=0)
    out["cls_init"] = init
    out["cls_output"] = [list(np.shape(raw)), str(np.asarray(raw).dtype)]
    out["cls_step"] = _one_step(cls, x, empty)
    p = predict_p_empty(cls, images, tta=True, batch_size=4)
    out["cls_p_empty"] = {"shape": list(p.shape), "min": float(p.min()), "max": float(p.max()),
                          "finite": bool(np.isfinite(p).all())}
    return out


def _run_backend(backend: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", SALT_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, __file__], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(TAG):
            return json.loads(line[len(TAG):])
    raise AssertionError(f"{backend} backend: the subprocess failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-4000:]}")


def _check_step(step: dict, name: str) -> None:
    losses = [step["loss_before"], step["train_loss"], step["loss_after"]]
    assert np.isfinite(losses).all(), f"{name}: non-finite loss {losses}"
    assert step["loss_after"] != step["loss_before"], f"{name}: the loss did not change after a step {losses}"
    # Adam moves every weight that gets a gradient; all the trainable weights take part in the loss
    assert step["weights_changed"] == step["weights"], f"{name}: only {step['weights_changed']} of " \
                                                       f"{step['weights']} weight tensors changed"


def _check_probs(p: dict, shape: list, name: str) -> None:
    assert p["shape"] == shape, f"{name}: shape {p['shape']}, expected {shape}"
    assert p["finite"], f"{name}: non-finite values"
    assert 0.0 <= p["min"] <= p["max"] <= 1.0, f"{name}: outside [0, 1]: {p['min']}..{p['max']}"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_train_step_and_predict(backend):
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        pytest.skip(f"the {backend} backend's package {BACKENDS[backend]!r} is not installed")
    r = _run_backend(backend)
    assert r["backend"] == backend
    assert r["seg_outputs"] == {"mask": [[N, 101, 101, 1], "float32"], "salt": [[N, 1], "float32"],
                                "edge": [[N, 101, 101, 1], "float32"]}
    _check_step(r["seg_step"], "segmenter")
    _check_probs(r["seg_prob"], [N, 101, 101], "segmenter P(salt) per pixel")
    _check_probs(r["seg_p_salt"], [N], "segmenter P(has salt)")
    assert r["cls_init"] == "random"
    assert r["cls_output"] == [[N, 1], "float32"]
    _check_step(r["cls_step"], "classifier")
    _check_probs(r["cls_p_empty"], [N], "classifier P(empty)")


if __name__ == "__main__":
    print(TAG + json.dumps(_child()), flush=True)
