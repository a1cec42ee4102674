"""One compiled model per architecture and loss, kept for every fold and round a process trains.

Keras traces a model's training and prediction steps the first time they run: about 50 s for the cpu
preset's DenseNet121 and about 10 s for its U-Net on TensorFlow's CPU path, a trace and a (cached) XLA
compile on JAX. A model built and compiled anew for each fold and round pays that every time.
``compiled`` hands back the model compiled earlier under the same key instead, given the new model's
weights and random-generator states and an optimizer set back to its state before its first step, so
that training it is training the new model (tests/test_reuse.py) while the traced steps are kept.
"""
from __future__ import annotations

from typing import Callable

import keras

from training.stage import copy_weights, rng_variables

_MODELS: dict[str, tuple[keras.Model, list]] = {}


def compiled(key: str, fresh: keras.Model, compile_fn: Callable[[keras.Model], None], lr: float) -> keras.Model:
    """``fresh`` compiled by ``compile_fn`` the first time ``key`` is seen; later, the model compiled then,
    holding ``fresh``'s weights and generator states, its optimizer reset and at learning rate ``lr``.

    ``key`` names everything the compiled steps depend on besides the weights: the architecture, the loss,
    which layers are trainable, the numerics. ``fresh`` must be built the same way as the first one.
    """
    if key not in _MODELS:
        compile_fn(fresh)
        fresh.optimizer.build(fresh.trainable_variables)
        _MODELS[key] = fresh, [keras.ops.convert_to_numpy(v.value) for v in fresh.optimizer.variables]
        return fresh
    model, optimizer_start = _MODELS[key]
    model.set_weights(fresh.get_weights())
    for v, src in zip(rng_variables(model), rng_variables(fresh), strict=True):
        v.assign(src.value)
    for v, value in zip(model.optimizer.variables, optimizer_start, strict=True):
        v.assign(value)
    model.optimizer.learning_rate = lr
    return model


def kept(key: str) -> keras.Model | None:
    """The model compiled under ``key`` in this process, if any (to predict with its traced step)."""
    return _MODELS[key][0] if key in _MODELS else None


def loaded(key: str, path) -> keras.Model:
    """The model kept under ``key`` holding the weights saved in ``path``, so that its traced prediction
    step serves; where none is kept, the saved model itself."""
    model = kept(key)
    if model is None:
        return keras.saving.load_model(path, compile=False)
    copy_weights(path, model)
    return model


def forget() -> None:
    """Drops every kept model (tests; a process that builds other architectures afterwards)."""
    _MODELS.clear()
