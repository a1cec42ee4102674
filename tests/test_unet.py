"""Tiny U-Net: output names/shapes, pad/crop alignment, .keras round trip, one training step, bfloat16."""
import numpy as np
import pytest
import keras
from keras import ops

from segmenter.losses import bce_dice_loss, lovasz_hinge
from segmenter.unet import ReflectPad2D, build_unet
from training.layers import ImageNetNormalize

TINY = dict(encoder_args={"layers": (1, 1, 1, 1), "width": 0.125}, decoder_filters=(32, 16, 8, 8, 8), dropout=0.1)


def _batch(n=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 101, 101, 1)).astype("float32")
    m = np.zeros((n, 101, 101, 1), "float32")
    m[0, 30:70, 20:60] = 1
    return x, m


@pytest.mark.parametrize("size,fit", [(128, "pad"), (64, "resize")])
def test_outputs_and_roundtrip(size, fit, tmp_path):
    model = build_unet(input_size=size, fit=fit, edge=True, **TINY)
    x, m = _batch()
    out = {k: ops.convert_to_numpy(v) for k, v in model(x, training=False).items()}
    assert set(out) == {"mask", "salt", "edge"}
    assert out["mask"].shape == out["edge"].shape == (2, 101, 101, 1) and out["salt"].shape == (2, 1)
    assert all(v.dtype == np.float32 for v in out.values())
    model.compile(optimizer="adam", loss={"mask": lovasz_hinge, "salt": keras.losses.BinaryCrossentropy(
        from_logits=True), "edge": bce_dice_loss}, loss_weights={"mask": 1.0, "salt": 0.1, "edge": 0.2},
        # one case traced as a graph (as in training; no XLA, whose compile time would dominate), one eager
        jit_compile=False, run_eagerly=fit == "resize")
    y = {"mask": m, "salt": m.reshape(2, -1).max(1, keepdims=True), "edge": m}
    loss = model.train_on_batch(x, y)
    assert np.all(np.isfinite(loss))
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    a, b = model(x, training=False), again(x, training=False)
    for k in a:
        np.testing.assert_array_equal(ops.convert_to_numpy(a[k]), ops.convert_to_numpy(b[k]))
    assert again.loss["mask"] is lovasz_hinge and again.loss["edge"] is bce_dice_loss  # compile came back


def test_no_edge_no_hypercolumn():
    model = build_unet(input_size=128, fit="pad", edge=False, hypercolumn=False,
                       **{**TINY, "decoder_filters": (16, 8, 8, 8, 8)})
    assert sorted(model.output) == ["mask", "salt"]
    assert model.get_layer("decoder5_2_conv").filters == 8


def test_reflect_pad_and_crop_align():
    x = np.arange(2 * 101 * 101, dtype="float32").reshape(2, 101, 101, 1)
    pad = ReflectPad2D(((13, 14), (13, 14)))(x)
    np.testing.assert_array_equal(ops.convert_to_numpy(pad), np.pad(x, [(0, 0), (13, 14), (13, 14), (0, 0)], mode="reflect"))
    assert ops.convert_to_numpy(pad).shape == (2, 128, 128, 1)
    np.testing.assert_array_equal(ops.convert_to_numpy(keras.layers.Cropping2D(((13, 14), (13, 14)))(pad)), x)
    cfg = ReflectPad2D(((1, 2), (3, 4))).get_config()
    assert ReflectPad2D.from_config(cfg).padding == ((1, 2), (3, 4))


def test_imagenet_normalize():
    x = np.full((1, 2, 2, 1), 0.5, "float32")
    y = ops.convert_to_numpy(ImageNetNormalize()(x))
    assert y.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(y[0, 0, 0], [(0.5 - .485) / .229, (0.5 - .456) / .224, (0.5 - .406) / .225],
                               rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError):
        build_unet(input_size=100, **TINY)
    with pytest.raises(ValueError):
        build_unet(input_size=96, fit="pad", **TINY)
    with pytest.raises(ValueError):
        build_unet(fit="crop", **TINY)
    with pytest.raises(ValueError, match="decoder_filters"):
        build_unet(input_size=64, fit="resize", **{**TINY, "decoder_filters": (8, 8, 8)})


def test_mixed_bfloat16_outputs_float32():
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_unet(input_size=64, fit="resize", edge=True, **TINY)
        out = model.predict(_batch()[0], verbose=0)
    finally:
        keras.config.set_dtype_policy(old)
    assert all(v.dtype == np.float32 for v in out.values())
    assert model.get_layer("decoder1_1_conv").compute_dtype == "bfloat16"


@pytest.mark.parametrize("before", [True, False])
def test_head_dropout_before_or_after_its_batchnorm(before):
    """dropout_before_head_bn=False puts the head's dropout behind its BatchNormalization, whose moving
    statistics are then learned on the activations that inference sees."""
    model = build_unet(input_size=64, fit="resize", dropout_before_head_bn=before, **TINY)
    names = [layer.name for layer in model.layers]
    bn = next(n for n in names if n.startswith("head") and n.endswith("_bn"))
    assert (names.index("head_dropout") < names.index(bn)) == before, names[-12:]


def test_deep_supervision_masks():
    """Every decoder block but the last gets a mask: its 1x1 convolution (numpy) upsampled bilinearly to the
    input size and then to 101x101 (OpenCV's bilinear resize), and the main mask is the same network's."""
    import cv2

    model = build_unet(input_size=64, fit="resize", deep_supervision=True, **TINY)
    plain = build_unet(input_size=64, fit="resize", **TINY)
    assert sorted(model.output) == ["mask", "mask_ds1", "mask_ds2", "mask_ds3", "mask_ds4", "salt"]
    for layer in plain.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    x, _ = _batch()
    out = {k: ops.convert_to_numpy(v) for k, v in model(x, training=False).items()}
    np.testing.assert_allclose(out["mask"], ops.convert_to_numpy(plain(x, training=False)["mask"]), atol=1e-5)
    blocks = keras.Model(model.input, [model.get_layer(f"decoder{i}_scse").output for i in range(1, 5)])
    for i, feat in enumerate(blocks(x, training=False), 1):
        feat = ops.convert_to_numpy(feat)
        kernel, bias = model.get_layer(f"mask_ds{i}_logits").get_weights()
        logit = feat @ kernel[0, 0] + bias  # (2, h, h, 1)
        assert logit.shape[1] == 2 ** (i + 1)  # the encoder's deepest stage is 2x2 at 64; each block doubles
        for n in range(2):
            up = cv2.resize(cv2.resize(logit[n, ..., 0], (64, 64), interpolation=cv2.INTER_LINEAR), (101, 101),
                            interpolation=cv2.INTER_LINEAR)
            np.testing.assert_allclose(out[f"mask_ds{i}"][n, ..., 0], up, atol=1e-4)
