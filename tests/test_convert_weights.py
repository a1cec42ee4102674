"""Converter + Keras SE-ResNeXt50 against the reference PyTorch network (pretrainedmodels' senet.py)."""
import copy
import importlib.util
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (needed for the reference network)")

from salt.cli import UserError, run_cli  # noqa: E402
from training import weights  # noqa: E402
from segmenter.convert_weights import convert, main  # noqa: E402
from segmenter.encoders.seresnext import find_imagenet, load_weights, se_resnext50_32x4d  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _senet_module():
    """pretrainedmodels/models/senet.py loaded by file path (the package's __init__ needs torchvision)."""
    spec = importlib.util.find_spec("pretrainedmodels")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pretrainedmodels is not installed (pip install --no-deps pretrainedmodels==0.7.4)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "senet.py"
    mspec = importlib.util.spec_from_file_location("_ref_senet", path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Randomised torch se_resnext50_32x4d (eval mode, random BN stats) and its state_dict file."""
    senet = _senet_module()
    torch.manual_seed(0)
    net = senet.se_resnext50_32x4d(num_classes=1000, pretrained=None)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 1 and name.endswith("weight"):  # batch-norm gamma
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.75)
            elif p.ndim == 1:  # biases, batch-norm beta
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:  # conv / linear weights, He-scaled
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    net.eval()
    d = tmp_path_factory.mktemp("ref")
    pth = d / "se_resnext50_32x4d-a260b3a4.pth"
    torch.save(net.state_dict(), pth)
    return net, pth


@pytest.fixture(scope="module")
def converted(reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "w.weights.h5"
    convert(reference[1], out)
    return out


def _rel_err(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@contextmanager
def _keras_float64():
    """Compare in float64: with random weights the deep net amplifies float32 rounding (torch float32 is
    itself ~1e-3 off torch float64 at the logits), which would hide real mistakes."""
    old, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(old)
        keras.config.set_dtype_policy(old_policy)


def _torch_ref(net, x, features=False):
    with torch.no_grad():
        net64 = copy.deepcopy(net).double()
        t = torch.from_numpy(x.transpose(0, 3, 1, 2)).double()
        return (net64.features(t).numpy().transpose(0, 2, 3, 1) if features else net64(t).numpy())


def test_parameter_count_matches_torch(reference):
    net, _ = reference
    model = se_resnext50_32x4d(include_top=True)
    n_torch = sum(p.numel() for p in net.parameters())
    n_keras = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert n_torch == 27_559_896
    assert n_keras == n_torch
    n_bn_stats = sum(b.numel() for name, b in net.named_buffers() if "running" in name)
    assert model.count_params() == n_torch + n_bn_stats


def test_logits_match_torch_224(reference, converted):
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3))
    ref = _torch_ref(reference[0], x)
    with _keras_float64():
        model = se_resnext50_32x4d(input_shape=(224, 224, 3), include_top=True, weights=converted)
        got = np.asarray(model(x))
    assert got.dtype == np.float64
    assert got.shape == (2, 1000) and np.std(ref) > 1e-3
    assert _rel_err(got, ref) < 1e-4


def test_features_match_torch_101(reference, converted):
    """Odd size: checks the ceil-mode max pool and the stride/padding of every stage."""
    x = np.random.default_rng(1).normal(size=(2, 101, 101, 3))
    ref = _torch_ref(reference[0], x, features=True)
    with _keras_float64():
        model = se_resnext50_32x4d(input_shape=(101, 101, 3), include_top=False, weights=converted)
        got = np.asarray(model(x))
    assert got.shape == ref.shape == (2, 4, 4, 2048)
    assert _rel_err(got, ref) < 1e-4
    # the float32 model as used: within float32 noise of the float64 reference
    model32 = se_resnext50_32x4d(input_shape=(101, 101, 3), include_top=False, weights=converted)
    assert _rel_err(np.asarray(model32.predict(x.astype("float32"), verbose=0)), ref) < 1e-2


def test_cli(reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli.weights.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run([sys.executable, "-m", "segmenter.convert_weights", "--torch", str(reference[1]),
                        "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    # error path through run_cli (in process: saves a second TensorFlow start-up)
    monkeypatch.setattr(sys, "argv", ["convert_weights", "--torch", str(tmp_path / "nope.pth"), "--out", str(out)])
    with pytest.raises(SystemExit) as e:
        run_cli(main)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error:") and "nope.pth" in err and "not found" in err
    assert len(err.splitlines()) == 1


def test_bad_checkpoints(reference, tmp_path):
    sd = torch.load(reference[1], weights_only=True)
    cases = {"missing.pth": None, "notdict.pth": [1, 2, 3],
             "lacking.pth": {k: v for k, v in sd.items() if k != "layer3.2.conv2.weight"},
             "extra.pth": {**sd, "layer9.weight": torch.zeros(3)},
             "shape.pth": {**sd, "layer1.0.bn1.weight": torch.zeros(7)}}
    expect = {"missing.pth": "not found", "notdict.pth": "state.dict", "lacking.pth": "layer3.2.conv2.weight",
              "extra.pth": "layer9.weight", "shape.pth": "layer1.0.bn1.weight"}
    for name, obj in cases.items():
        if obj is not None:
            torch.save(obj, tmp_path / name)
        with pytest.raises(UserError, match=expect[name]):
            main(["--torch", str(tmp_path / name), "--out", str(tmp_path / "o.weights.h5")])
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="garbage.pth"):
        main(["--torch", str(tmp_path / "garbage.pth"), "--out", str(tmp_path / "o.weights.h5")])
    assert not (tmp_path / "o.weights.h5").exists()


def test_load_weights_errors(converted, tmp_path):
    tiny = se_resnext50_32x4d(input_shape=(64, 64, 3), include_top=False, layers=(1, 1, 1, 1), width=0.125)
    with pytest.raises(UserError, match="shape"):
        load_weights(tiny, converted)
    with pytest.raises(UserError, match="not found"):
        load_weights(tiny, tmp_path / "none.weights.h5")


def test_find_imagenet_weights(reference, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setattr(weights, "_warned", set())

    def resolve_imagenet_weights():
        return weights.resolve("imagenet", find_imagenet)

    # nothing there: random + one prominent warning
    assert resolve_imagenet_weights() == (None, "random")
    err = capsys.readouterr().err
    assert "WARNING" in err and "RANDOM" in err and str(tmp_path / "kh" / "models") in err
    assert "se_resnext50_32x4d-a260b3a4.pth" in err
    assert resolve_imagenet_weights() == (None, "random")
    assert "WARNING" not in capsys.readouterr().err  # once
    # only the .pth: converted on first use, then reused
    models = tmp_path / "kh" / "models"
    models.mkdir(parents=True)
    (models / "se_resnext50_32x4d-a260b3a4.pth").write_bytes(reference[1].read_bytes())
    path, label = resolve_imagenet_weights()
    assert label == "imagenet" and Path(path) == models / "se_resnext50_32x4d_imagenet.weights.h5"
    assert Path(path).is_file() and "convert" in capsys.readouterr().err
    assert sorted(p.name for p in models.iterdir()) == ["se_resnext50_32x4d-a260b3a4.pth",
                                                        "se_resnext50_32x4d_imagenet.weights.h5"]
    mtime = Path(path).stat().st_mtime_ns
    assert resolve_imagenet_weights() == (path, "imagenet") and Path(path).stat().st_mtime_ns == mtime
    model = se_resnext50_32x4d(input_shape=(64, 64, 3), include_top=False)
    assert load_weights(model, path) == sum(1 for layer in model.layers if layer.weights)
    ref = reference[0].state_dict()["layer4.2.se_module.fc2.bias"].numpy()
    np.testing.assert_allclose(model.get_layer("layer4_2_se_module_fc2").weights[1].numpy(), ref, rtol=1e-6)


def test_unet_loads_encoder_weights(reference, converted):
    from segmenter.unet import build_unet
    model = build_unet(input_size=128, fit="pad", encoder_weights=str(converted))
    sd = reference[0].state_dict()
    k = model.get_layer("layer3_1_conv2").kernel.numpy()  # grouped conv (H, W, I/groups, O)
    np.testing.assert_array_equal(k, sd["layer3.1.conv2.weight"].numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("layer0_bn1").moving_variance.numpy(),
                                  sd["layer0.bn1.running_var"].numpy())
