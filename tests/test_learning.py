"""Both models learn: a small network of each kind overfits a handful of real training images to a high
score within a fixed number of steps. A broken loss, target, head or input scaling fails this.

The two runs go through Keras' ``fit`` on the PyTorch backend, in one subprocess (this file run as a
script, tests/children.py), as tests/test_train.py's trainers do: the code under test (losses, targets, heads, input
scaling) is written in ``keras.ops`` and is the same on every backend, and PyTorch runs eagerly, where
TensorFlow spends most of these runs tracing graphs (the classifier's DenseNet121: 51 s on TensorFlow
against 19 s on PyTorch, on 2 CPU cores; docs/suite.md). The subprocess prints what the tests assert.
"""
from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from children import child_main, child_result, run_children
from salt.data import read_image, read_mask


def _handful(data_dir, n_salt=4, n_empty=4):
    """The first real training images with 10-60% salt, and the first empty ones (images, masks)."""
    ids = sorted(pd.read_csv(data_dir / "train.csv")["id"])
    chosen, salt, empty = [], 0, 0
    for i in ids:
        mask = read_mask(data_dir / "train" / "masks" / f"{i}.png")
        cover = mask.mean()
        if 0.1 <= cover <= 0.6 and salt < n_salt:
            chosen.append(i)
            salt += 1
        elif cover == 0 and empty < n_empty:
            chosen.append(i)
            empty += 1
        if salt == n_salt and empty == n_empty:
            break
    images = np.stack([read_image(data_dir / "train" / "images" / f"{i}.png") for i in chosen])
    masks = np.stack([read_mask(data_dir / "train" / "masks" / f"{i}.png") for i in chosen])
    return images, masks


def _short_run_batchnorm(model):
    """BatchNorm momentum 0.5 instead of 0.99, so that the moving statistics that inference uses follow
    the weights of a short run (at 0.99 they need a few hundred steps to forget their initial values)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.5


def _segmenter(data_dir) -> dict:
    """In the subprocess: a small U-Net, built and compiled as segmenter.train does, fits 8 real images."""
    from salt.metric import competition_score
    from segmenter.train import build_model, compile_model, make_targets
    from training import devices
    from training.batches import to_input
    from training.predict import predict_outputs

    images, masks = _handful(Path(data_dir))
    preset = {"network": {"encoder": "resnet", "encoder_args": {"channels": [16, 32, 64], "blocks": [1, 1, 1]},
                          "input_size": 64, "fit": "resize", "decoder_filters": [32, 16], "head_kernel": 1,
                          "salt_units": 8, "dropout": 0.0, "edge": False},
              "salt_weight": 0.1}
    devices.new_session(0)
    model = build_model(preset, None)
    _short_run_batchnorm(model)
    compile_model(model, preset, {"loss": "bce_dice", "lr": 3e-3})
    before = competition_score(masks, predict_outputs(model, images, tta=False, batch_size=8)["mask"] > 0.5)
    model.fit(to_input(images), make_targets(False)(masks), batch_size=8, epochs=150, verbose=0, shuffle=False)
    prob = predict_outputs(model, images, tta=False, batch_size=8)
    return {"before": float(before), "after": float(competition_score(masks, prob["mask"] > 0.5)),
            "salt": (prob["salt"] > 0.5).tolist(), "has_salt": masks.reshape(len(masks), -1).any(1).tolist()}


def _classifier(data_dir) -> dict:
    """In the subprocess: DenseNet121 at 32x32 (random encoder), compiled as classifier.train does, fits
    the same 8 images."""
    from classifier.model import build_classifier
    from classifier.train import compile_model, empty_targets
    from training import devices
    from training.batches import to_input
    from training.predict import predict_outputs

    images, masks = _handful(Path(data_dir))
    devices.new_session(0)
    model, init = build_classifier("densenet121", input_size=32, encoder_weights="none", dropout=0.0)
    _short_run_batchnorm(model)
    compile_model(model, 1e-3)
    model.fit(to_input(images), empty_targets(masks), batch_size=8, epochs=40, verbose=0, shuffle=False)
    p_empty = predict_outputs(model, images, tta=False, batch_size=8)["empty"]
    return {"init": init, "p_empty": p_empty.tolist(), "empty": (~masks.reshape(len(masks), -1).any(1)).tolist()}


CHILDREN = {"segmenter": _segmenter, "classifier": _classifier}


def _result(data_dir, name) -> dict:
    """``name``'s run, both run once in one PyTorch subprocess (tests/children.py)."""
    return child_result(run_children(__file__, "torch", tuple(CHILDREN), (str(data_dir),)), name, name)


def test_segmenter_overfits_a_handful_of_real_images(real_data):
    r = _result(real_data, "segmenter")
    assert r["after"] >= 0.8, f"segmenter score on its own 8 training images: {r['before']:.3f} -> {r['after']:.3f}"
    assert r["salt"] == r["has_salt"]


def test_classifier_overfits_a_handful_of_real_images(real_data):
    r = _result(real_data, "classifier")
    assert r["init"] == "random"
    p_empty, truth = np.array(r["p_empty"]), np.array(r["empty"])
    assert ((p_empty > 0.5) == truth).all(), f"P(empty) {np.round(p_empty, 2)} for empty {truth}"
    log_loss = keras.ops.convert_to_numpy(keras.losses.binary_crossentropy(truth.astype("float32"), p_empty))
    assert float(log_loss) < 0.2


def test_weight_decay_spares_batchnorm_and_biases():
    """AdamW (the preset's ``weight_decay``): a step with zero gradients moves no weight by Adam, so a kernel
    shrinks by exactly lr * decay and BatchNormalization's scale and offset and the biases keep their values."""
    from segmenter.train import optimizer

    assert type(optimizer({}, 1e-3)) is keras.optimizers.Adam
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.BatchNormalization()(keras.layers.Dense(3)(inp)))
    for v in model.trainable_variables:
        v.assign(np.full(v.shape, 2.0, "float32"))
    opt = optimizer({"weight_decay": 0.05}, 0.1)
    opt.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables])
    after = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    kernel = [p for p in after if p.endswith("kernel")]
    assert len(kernel) == 1 and len(after) == 4
    np.testing.assert_allclose(after[kernel[0]], 2.0 * (1 - 0.1 * 0.05), rtol=1e-6)
    for p in after:
        if p not in kernel:
            np.testing.assert_array_equal(after[p], 2.0)


if __name__ == "__main__":
    child_main(CHILDREN, sys.argv[1:])
