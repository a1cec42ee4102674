"""Convert the Cadene pretrainedmodels se_resnext50_32x4d PyTorch checkpoint into a Keras weights file.

    python -m segmenter.convert_weights --torch se_resnext50_32x4d-a260b3a4.pth --out FILE.weights.h5

The output is an HDF5 file with one group per Keras layer (PyTorch module path, "." -> "_") holding the
Keras variables by name (kernel, bias, gamma, beta, moving_mean, moving_variance); load it with
`segmenter.encoders.seresnext.se_resnext50_32x4d(..., weights=FILE)` or `segmenter.encoders.seresnext.load_weights(model, FILE)`.
Conv kernels OIHW -> HWIO (grouped convs: torch (O, I/g, H, W) -> keras (H, W, I/g, O), same group order),
Linear (out, in) -> (in, out).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from salt.cli import UserError, run_cli
from salt.io import atomic_path
from segmenter.encoders.seresnext import ARCH, WEIGHTS_FORMAT, stage_channels

BN_KEYS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def expected_shapes(layers=(3, 4, 6, 3), classes=1000, groups=32, reduction=16):
    """{torch state_dict key: shape} of se_resnext50_32x4d (num_batches_tracked left out)."""
    shapes = {}

    def conv(name, o, i, k, bias=False):
        shapes[f"{name}.weight"] = (o, i, k, k)
        if bias:
            shapes[f"{name}.bias"] = (o,)

    def bn(name, c):
        for k in BN_KEYS:
            shapes[f"{name}.{k}"] = (c,)

    conv("layer0.conv1", 64, 3, 7)
    bn("layer0.bn1", 64)
    in_ch = 64
    for s, ((_, inner, out_ch), n) in enumerate(zip(stage_channels(1.0, groups, 4), layers)):
        for b in range(n):
            p = f"layer{s + 1}.{b}"
            conv(f"{p}.conv1", inner, in_ch, 1)
            bn(f"{p}.bn1", inner)
            conv(f"{p}.conv2", inner, inner // groups, 3)
            bn(f"{p}.bn2", inner)
            conv(f"{p}.conv3", out_ch, inner, 1)
            bn(f"{p}.bn3", out_ch)
            conv(f"{p}.se_module.fc1", out_ch // reduction, out_ch, 1, bias=True)
            conv(f"{p}.se_module.fc2", out_ch, out_ch // reduction, 1, bias=True)
            if b == 0:
                conv(f"{p}.downsample.0", out_ch, in_ch, 1)
                bn(f"{p}.downsample.1", out_ch)
            in_ch = out_ch
    shapes["last_linear.weight"] = (classes, in_ch)
    shapes["last_linear.bias"] = (classes,)
    return shapes


def _load_state_dict(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    import torch
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors of many kinds
        raise UserError(f"{path}: cannot read as a PyTorch checkpoint ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{path}: not a PyTorch state_dict (expected a dict of tensors)")
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
    return {k: v.detach().cpu().double().numpy() for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def torch_to_keras(sd, source="checkpoint"):
    """Validated state_dict (numpy) -> {keras layer name: {variable name: array}}."""
    if "last_linear.weight" not in sd:
        raise UserError(f"{source}: missing key last_linear.weight (not a {ARCH} state_dict?)")
    want = expected_shapes(classes=sd["last_linear.weight"].shape[0])
    missing = sorted(set(want) - set(sd))
    extra = sorted(set(sd) - set(want))
    if missing or extra:
        what = (f"{len(missing)} missing keys (e.g. {missing[0]})" if missing else "") + \
               (", " if missing and extra else "") + \
               (f"{len(extra)} unexpected keys (e.g. {extra[0]})" if extra else "")
        raise UserError(f"{source}: not a {ARCH} state_dict: {what}")
    for k, shape in want.items():
        if tuple(sd[k].shape) != shape:
            raise UserError(f"{source}: {k} has shape {tuple(sd[k].shape)}, expected {shape}")
    out = {}
    for key, arr in sd.items():
        module, param = key.rsplit(".", 1)
        layer = module.replace(".", "_")
        if module == "last_linear":
            out.setdefault(layer, {})["kernel" if param == "weight" else "bias"] = arr.T if arr.ndim == 2 else arr
        elif arr.ndim == 4:  # conv weight OIHW -> HWIO
            out.setdefault(layer, {})["kernel"] = arr.transpose(2, 3, 1, 0)
        elif ".se_module." in key:  # SE conv bias
            out.setdefault(layer, {})["bias"] = arr
        else:  # batch norm
            out.setdefault(layer, {})[BN_KEYS[param]] = arr
    return out


def convert(torch_path, out_path):
    """Convert the PyTorch checkpoint `torch_path` into the Keras weights file `out_path` (atomic)."""
    import h5py
    weights = torch_to_keras(_load_state_dict(torch_path), source=str(torch_path))
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = WEIGHTS_FORMAT
            f.attrs["arch"] = ARCH
            f.attrs["source"] = Path(torch_path).name
            for layer, variables in weights.items():
                g = f.create_group(layer)
                for name, arr in variables.items():
                    g.create_dataset(name, data=np.ascontiguousarray(arr, dtype="float32"))
    return out_path


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m segmenter.convert_weights", description=__doc__.split("\n")[0])
    p.add_argument("--torch", required=True, help="PyTorch state_dict (.pth) of pretrainedmodels se_resnext50_32x4d")
    p.add_argument("--out", required=True, help="output Keras weights file (.weights.h5)")
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError("converting needs torch (pip install torch, CPU build is enough)") from None
    out = convert(args.torch, args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
