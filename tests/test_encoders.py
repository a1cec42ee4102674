"""The encoder registry takes the layers' device choices from its caller: a grouped convolution split into
one convolution per group computes what the backend's own grouped convolution does (a reference built here
from plain per-group convolutions in NumPy), the choice is saved with the layer, and only an encoder that
declares a device argument receives it."""
import keras
import numpy as np

from segmenter import encoders
from segmenter.encoders.seresnext import GroupedConv2D
from segmenter.unet import build_unet
from training import devices

TINY = {"encoder": "seresnext50", "encoder_args": {"layers": [1, 1, 1, 1], "width": 0.125, "groups": 4},
        "decoder_filters": (8, 8, 8, 8, 8), "salt_units": 4}


def _reference(x, kernel, groups):
    """A 'valid' grouped 3x3 convolution, stride 1, by loops over the groups: (N, H, W, C) -> (N, H-2, W-2, F)."""
    n, h, w, c = x.shape
    f = kernel.shape[-1]
    out = np.zeros((n, h - 2, w - 2, f))
    cin, cout = c // groups, f // groups
    for g in range(groups):
        xs = x[..., g * cin:(g + 1) * cin]
        ks = kernel[..., g * cout:(g + 1) * cout]  # (3, 3, cin, cout)
        for i in range(h - 2):
            for j in range(w - 2):
                out[:, i, j, g * cout:(g + 1) * cout] = np.einsum("nabc,abcf->nf", xs[:, i:i + 3, j:j + 3], ks)
    return out


def test_split_and_native_grouped_convolutions_agree_with_the_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 7, 8)).astype(np.float32)
    outs = []
    for split in (True, False, "train"):
        layer = GroupedConv2D(12, 3, groups=4, use_bias=False, split_groups=split)
        y = keras.ops.convert_to_numpy(layer(x))
        if not outs:
            kernel = keras.ops.convert_to_numpy(layer.kernel)
        else:
            layer.set_weights([kernel])
            y = keras.ops.convert_to_numpy(layer(x))
        assert layer.get_config()["split_groups"] is split
        assert GroupedConv2D.from_config(layer.get_config()).split_groups is split
        outs.append(y)
    want = _reference(x.astype(np.float64), kernel.astype(np.float64), 4)
    for y in outs:
        assert np.allclose(y, want, atol=1e-4)
    # "train": split when training, native at inference, the same results either way
    layer.set_weights([kernel])
    for training in (True, False):
        y = keras.ops.convert_to_numpy(layer(x, training=training))
        assert layer._split_now is training and np.allclose(y, want, atol=1e-4)


def test_the_caller_chooses_and_only_a_declaring_encoder_receives_it():
    for split in (True, False):
        model = build_unet(input_size=64, fit="resize", device={"split_groups": split}, **TINY)
        grouped = [layer for layer in model.layers if isinstance(layer, GroupedConv2D)]
        assert grouped and all(layer.split_groups is split for layer in grouped)
    seen = {}
    enc = encoders.Encoder(lambda x, **args: seen.update(args) or [x], device_args=("split_groups",))
    enc.features("x", device={"split_groups": False, "other": 1}, width=2)
    assert seen == {"width": 2, "split_groups": False}
    seen.clear()
    encoders.Encoder(lambda x, **args: seen.update(args) or [x]).features("x", device={"split_groups": False})
    assert seen == {}
    # this machine: no GPU, so TensorFlow's grouped convolutions are split, JAX's in training, PyTorch's not
    want = {"tensorflow": True, "jax": "train", "torch": False}[devices.backend()]
    assert devices.layer_choices() == {"split_groups": want}
