"""Read a PyTorch checkpoint (``torch.save`` of a state dict) into numpy arrays, without torch.

ImageNet weights ship as ``.pth`` files inside ordinary Python packages; reading 20 MB of tensors should
not make a user install torch (about 2 GB with CUDA) next to the Keras backend. Both of torch's file
formats are read: the zip archive (``archive/data.pkl`` plus one file per storage, torch >= 1.6) and the
legacy stream (magic number, protocol, system info, the pickled object, the storage keys, then each
storage's raw bytes). Only what a state dict holds is understood: tensors (``_rebuild_tensor_v2``) in
dicts; any other class in the pickle is refused, so no code from the file runs.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from salt.cli import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage classes by name -> numpy dtype (little-endian, as torch writes them)
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}


class _StorageType:
    def __init__(self, name):
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A storage's bytes, filled in once read (legacy files put them after the pickle)."""

    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.array = dtype, numel, None


def _rebuild_tensor(storage, offset, size, stride, *_):
    return ("tensor", storage, int(offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, numel)
        return self.storages[key]


def _dtype(name):
    if name == "bfloat16":
        raise UserError("bfloat16 tensors are not supported by this reader")
    return np.dtype(name)


def _materialise(obj):
    """Replace every tensor placeholder in ``obj`` by a float/int numpy array (a copy)."""
    if isinstance(obj, tuple) and obj and obj[0] == "tensor":
        _, storage, offset, size, stride = obj
        base = storage.array
        if not size:
            return np.array(base[offset])
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(base[offset:], shape=size, strides=[s * item for s in stride])
        return np.array(view)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _read_zip(path):
    storages = {}
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise pickle.UnpicklingError("no data.pkl in the archive")
        root = pkl[0][: -len("data.pkl")]
        obj = _Unpickler(io.BytesIO(z.read(pkl[0])), storages).load()
        for key, s in storages.items():
            s.array = np.frombuffer(z.read(f"{root}data/{key}"), dtype=_dtype(s.dtype))[: s.numel]
    return obj


def _read_legacy(path):
    storages = {}
    with open(path, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC:
            raise pickle.UnpicklingError("not a torch.save file (bad magic number)")
        if pickle.load(f) != LEGACY_PROTOCOL:
            raise pickle.UnpicklingError("unsupported torch.save protocol")
        pickle.load(f)  # system info: byte order (little-endian, as written on every common machine), sizes
        obj = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            s = storages[str(key)]
            dtype = _dtype(s.dtype)
            (numel,) = struct.unpack("<q", f.read(8))
            data = f.read(numel * dtype.itemsize)
            if len(data) != numel * dtype.itemsize:
                raise pickle.UnpicklingError(f"storage {key} is cut short")
            s.array = np.frombuffer(data, dtype=dtype)
    return obj


def load_state_dict(path) -> dict[str, np.ndarray]:
    """{name: numpy array} of a ``torch.save``-d state dict (``module.`` prefixes and
    ``num_batches_tracked`` counters dropped; a ``{"state_dict": ...}`` wrapper unwrapped).
    Raises salt.cli.UserError naming the file when it is missing or not a state dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
        obj = _materialise(obj)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, struct.error, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: cannot read as a PyTorch checkpoint ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise UserError(f"{path}: not a PyTorch state dict (expected a dict of tensors)")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()
            if not k.endswith("num_batches_tracked")}
