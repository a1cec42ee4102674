"""SE-ResNeXt encoder: shapes/strides from the PyTorch size formulas, channel counts, parameter count."""
import numpy as np
import pytest
import keras

from segmenter.encoders.seresnext import build_encoder, preprocess_input, se_resnext50_32x4d, stage_channels


def _torch_sizes(h):
    """Spatial sizes by PyTorch's formulas: conv7/2 pad3, maxpool3/2 ceil_mode, then stride-2 3x3 pad1 convs."""
    conv = lambda n, k, s, p: (n + 2 * p - k) // s + 1  # noqa: E731
    stem = conv(h, 7, 2, 3)
    pool = -(-(stem - 3) // 2) + 1  # ceil mode
    l2 = conv(pool, 3, 2, 1)
    l3 = conv(l2, 3, 2, 1)
    return [stem, pool, l2, l3, conv(l3, 3, 2, 1)]


@pytest.mark.parametrize("size", [101, 128, 64])
def test_tiny_encoder_shapes(size):
    inp = keras.Input((size, size, 3))
    feats = build_encoder(inp, layers=(1, 1, 1, 1), width=0.125)
    assert [f.shape[1] for f in feats] == [f.shape[2] for f in feats] == _torch_sizes(size)
    assert [f.shape[-1] for f in feats] == [8, 32, 64, 128, 256]


def test_hand_worked_sizes():
    assert _torch_sizes(101) == [51, 25, 13, 7, 4]
    assert _torch_sizes(128) == [64, 32, 16, 8, 4]
    assert _torch_sizes(224) == [112, 56, 28, 14, 7]


def test_stage_channels_full_width():
    # SEResNeXtBottleneck: width = floor(planes * 4 / 64) * 32, output planes * 4
    assert stage_channels(1.0) == [(64, 128, 256), (128, 256, 512), (256, 512, 1024), (512, 1024, 2048)]


def test_tiny_model_with_top_runs():
    m = se_resnext50_32x4d(input_shape=(64, 64, 3), classes=5, layers=(1, 1, 1, 1), width=0.125)
    out = m.predict(np.zeros((2, 64, 64, 3), "float32"), verbose=0)
    assert out.shape == (2, 5)
    headless = se_resnext50_32x4d(input_shape=(64, 64, 3), include_top=False, layers=(1, 2, 1, 1), width=0.125)
    assert headless.output.shape == (None, 2, 2, 256)
    assert "layer2_1_se_module_fc2" in [layer.name for layer in headless.layers]


def test_full_parameter_count():
    m = se_resnext50_32x4d(include_top=True)
    # torch: sum(p.numel() for p in se_resnext50_32x4d().parameters()); Keras adds BN moving mean/var
    assert sum(int(np.prod(w.shape)) for w in m.trainable_weights) == 27_559_896
    assert m.output.shape == (None, 1000)
    assert m.get_layer("layer2_0_conv2").groups == 32


def test_preprocess_input():
    x = np.array([[[0.485, 0.456, 0.406], [1.0, 0.0, 0.5]]])
    np.testing.assert_allclose(preprocess_input(x), [[[0, 0, 0], [(1 - .485) / .229, -.456 / .224, (.5 - .406) / .225]]],
                               rtol=1e-6, atol=1e-6)
