"""training.reuse: a compiled model handed to the next fold trains exactly like a model built and
compiled anew (the reference), so keeping the traced steps changes no result."""
import keras
import numpy as np
import pytest

from training import devices, reuse, stage


def _model(seed: int, clear: bool = True) -> keras.Model:
    devices.new_session(seed, clear=clear)
    inp = keras.Input((6,))
    x = keras.layers.Dense(16, activation="relu")(inp)
    x = keras.layers.Dropout(0.5)(x)  # its generator state must follow the new model's
    return keras.Model(inp, keras.layers.Dense(1)(x))


def _compile(model: keras.Model, lr: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse", jit_compile=devices.jit_compile())


def _fit(model: keras.Model, x, y) -> None:
    model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)


def test_a_reused_model_trains_like_a_fresh_one():
    reuse.forget()
    rng = np.random.default_rng(0)
    x1, y1 = rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")
    x2, y2 = rng.normal(size=(24, 6)).astype("float32"), rng.normal(size=(24, 1)).astype("float32")

    first = reuse.compiled("net", _model(1), lambda m: _compile(m, 1e-2), 1e-2)
    _fit(first, x1, y1)  # moves its optimizer state and its dropout generator
    assert int(first.optimizer.iterations) == 12

    reference = _model(2)
    _compile(reference, 3e-3)
    _fit(reference, x2, y2)

    # built the way the trainers build a model for a kept one: Keras' session and TensorFlow's seed kept
    second = reuse.compiled("net", _model(2, clear=False), lambda m: pytest.fail("compiled a second time"), 3e-3)
    assert second is first and reuse.kept("net") is first
    assert float(second.optimizer.learning_rate) == pytest.approx(3e-3)
    _fit(second, x2, y2)
    assert int(second.optimizer.iterations) == int(reference.optimizer.iterations) == 9
    for got, want in zip(second.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(stage.rng_variables(second), stage.rng_variables(reference), strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got.value), keras.ops.convert_to_numpy(want.value))
    reuse.forget()
    assert reuse.kept("net") is None


def test_other_keys_compile_their_own_model():
    reuse.forget()
    a = reuse.compiled("bce", _model(3), lambda m: _compile(m, 1e-3), 1e-3)
    b = reuse.compiled("lovasz", _model(3), lambda m: _compile(m, 1e-3), 1e-3)
    assert a is not b and reuse.kept("bce") is a and reuse.kept("lovasz") is b
    reuse.forget()
