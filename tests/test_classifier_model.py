"""Tests for classifier/model.py (tiny inputs; few model builds, module-scoped)."""
import contextlib
import io
import os

import numpy as np
import pytest

import keras
from keras.applications import densenet, inception_resnet_v2

from classifier import model as cm
from training import weights
from training.layers import ImageNetNormalize
from salt.cli import UserError

# keras internals call np.array(x) on tensors: numpy 2 deprecation noise, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

DN = "densenet121"
DN_FILE = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _images(n, seed=0):
    return np.random.default_rng(seed).random((n, 101, 101, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def offline_densenet(tmp_path_factory):
    """DenseNet121 classifier built with 'imagenet' but an empty cache and an unreachable URL."""
    home = tmp_path_factory.mktemp("keras_home_empty")
    weights._warned.clear()
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        mp.setenv("KERAS_HOME", str(home))
        mp.delenv("SALT_OFFLINE", raising=False)
        # real keras get_file, but a URL that is refused at once (port 9 on localhost)
        mp.setitem(cm.BACKBONES[DN], "weights_url", "http://127.0.0.1:9/")
        model, init = cm.build_classifier(DN, input_size=64, encoder_weights="imagenet")
    return model, init, err.getvalue(), home


@pytest.fixture(scope="module")
def saved_backbone(tmp_path_factory):
    """A notop DenseNet121 with distinctive random weights, saved in legacy .h5 format."""
    ref = keras.applications.DenseNet121(include_top=False, weights=None, pooling="avg",
                                         input_shape=(64, 64, 3))
    rng = np.random.default_rng(123)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in ref.get_weights()]
    ref.set_weights(weights)
    folder = tmp_path_factory.mktemp("saved_backbone")
    path = folder / DN_FILE
    keras.saving.save_model(ref, str(path))  # .h5 name -> Keras' legacy HDF5 format
    return path, weights


def _assert_backbone_equals(model, weights):
    got = model.get_layer(cm.BACKBONE_LAYER).get_weights()
    assert len(got) == len(weights)
    for i in (0, 1, len(weights) // 2, len(weights) - 1):
        np.testing.assert_array_equal(got[i], weights[i])
    assert all(np.array_equal(a, b) for a, b in zip(got, weights))


def test_no_cache_falls_back_to_random_with_one_warning(offline_densenet):
    model, init, err, home = offline_densenet
    assert init == "random"
    assert err.count("WARNING") == 1
    assert "RANDOM" in err and DN_FILE in err and str(home) in err
    # a second failing lookup in the same process does not repeat the warning
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(buf):
        mp.setenv("KERAS_HOME", str(home))
        mp.setenv("SALT_OFFLINE", "1")
        assert cm.resolve_encoder_weights(DN, "imagenet") == (None, "random")
    assert "WARNING" not in buf.getvalue()


def test_salt_offline_skips_download(tmp_path, monkeypatch, capfd):
    def no_download(*a, **k):
        raise AssertionError("get_file must not be called when SALT_OFFLINE=1")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("SALT_OFFLINE", "1")
    weights._warned.clear()
    assert cm.resolve_encoder_weights("inceptionresnetv2", "imagenet") == (None, "random")
    err = capfd.readouterr().err
    assert err.count("WARNING") == 1 and "inception_resnet_v2" in err


def test_output_shape_names_and_freezing(offline_densenet):
    model = offline_densenet[0]
    x = _images(3)
    logits = model.predict(x, verbose=0)
    assert logits.shape == (3, 1) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    assert ((p > 0) & (p < 1)).all()
    assert model.output.shape == (None, 1)
    assert model.get_layer("empty").dtype_policy.compute_dtype == "float32"
    assert model.input.shape == (None, 101, 101, 1)
    bb = model.get_layer("backbone")
    assert isinstance(bb, keras.Model)
    bb.trainable = False
    try:
        assert len(model.trainable_weights) == 2  # Dense kernel + bias only
    finally:
        bb.trainable = True


def test_keras_save_load_round_trip(offline_densenet, tmp_path):
    model = offline_densenet[0]
    x = _images(2, seed=1)
    path = tmp_path / "clf.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # custom layer registered by importing classifier.model
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.get_layer("preprocess"), ImageNetNormalize)


@pytest.mark.parametrize("mode,reference", [("torch", densenet.preprocess_input),
                                            ("tf", inception_resnet_v2.preprocess_input)])
def test_preprocess_matches_keras_applications(mode, reference):
    rng = np.random.default_rng(5)
    layer = ImageNetNormalize(mode)
    grey = rng.random((2, 7, 9, 1), dtype=np.float32)
    want = reference(np.repeat(grey, 3, axis=-1) * 255.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(grey)), want, rtol=1e-5, atol=1e-5)
    rgb = rng.random((2, 5, 4, 3), dtype=np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(rgb)), reference(rgb * 255.0),
                               rtol=1e-5, atol=1e-5)
    assert ImageNetNormalize.from_config(layer.get_config()).mode == mode


def test_imagenet_weights_from_keras_cache(saved_backbone, tmp_path, monkeypatch):
    path, weights = saved_backbone
    (tmp_path / "models").mkdir()
    os.symlink(path, tmp_path / "models" / DN_FILE)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: pytest.fail("no download expected"))
    model, init = cm.build_classifier(DN, input_size=64, encoder_weights="imagenet")
    assert init == "imagenet"
    _assert_backbone_equals(model, weights)


def test_weights_from_path(saved_backbone):
    path, weights = saved_backbone
    model, init = cm.build_classifier(DN, input_size=96, encoder_weights=str(path))
    assert init == f"file:{path}"
    _assert_backbone_equals(model, weights)


def test_bad_arguments_raise_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        cm.build_classifier(DN, input_size=64, encoder_weights=str(tmp_path / "missing.h5"))
    with pytest.raises(UserError):
        cm.build_classifier("resnet9000", encoder_weights="none")
    with pytest.raises(UserError, match="minimum 75"):
        cm.build_classifier("inceptionresnetv2", input_size=74, encoder_weights="none")


def test_inceptionresnetv2_at_minimum_size():
    model, init = cm.build_classifier("inceptionresnetv2", input_size=75, encoder_weights="none")
    assert init == "random"
    assert model.get_layer("preprocess").mode == "tf"
    out = model.predict(_images(2), verbose=0)
    assert out.shape == (2, 1) and np.isfinite(out).all()


def test_backbones_table():
    for name, spec in cm.BACKBONES.items():
        assert spec["min_input_size"] <= spec["default_input_size"]
        assert spec["weights_file"].endswith("_notop.h5")
        assert callable(spec["constructor"])
