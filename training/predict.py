"""Prediction that both models share: sigmoid of every output, horizontal-flip test-time augmentation,
the mean over fold models, and the body and options of both ``predict`` commands.

Images are padded to whole batches, so that prediction compiles one batch shape (JAX) however many
images there are; the padding is dropped from the results.

A folder of test images is predicted in bounded memory (``predict_folder``): the images are read in
chunks, the running sums of the fold models' probabilities live in a scratch file read and written one
chunk at a time (never memory-mapped, so that the pages do not count as the process's own), and the mean
is streamed into an uncompressed npz member. The memory a prediction needs is set by the chunk, the
model and the batch, not by the number of images.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
from keras import ops

from salt.cli import UserError
from salt.data import IMG_SIZE, read_image
from salt.layout import Out
from salt.io import atomic_path
from training.batches import to_input

CHUNK = 2048  # images read and predicted at a time: 32 batches of 64


class ViewMean(keras.layers.Layer):
    """The probabilities of one model output for a batch that holds the images and then (``tta``) their
    mirror images: sigmoid in float32, the channel dropped, each mirrored image output mirrored back and
    averaged with its original; one value per image (N,1) becomes (N,)."""

    def __init__(self, tta: bool, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.tta = tta

    def call(self, z):
        p = ops.sigmoid(ops.cast(z, "float32"))[..., 0]
        if not self.tta:
            return p
        a, b = ops.split(p, 2, axis=0)
        return (a + (ops.flip(b, axis=2) if len(p.shape) == 3 else b)) / 2

    def compute_output_shape(self, shape):  # a symbolic batch may be odd (JAX traces with one): no split then
        batch = shape[0] // 2 if self.tta and shape[0] is not None else shape[0]
        return (batch,) + tuple(shape[1:-1])


class Mirror(keras.layers.Layer):
    """The batch followed by its images mirrored left to right: both test-time views in one batch."""

    def call(self, x):
        return ops.concatenate([x, ops.flip(x, axis=2)], axis=0)

    def compute_output_shape(self, shape):
        return (None if shape[0] is None else 2 * shape[0],) + tuple(shape[1:])


_LAST: dict = {"model": None, "built": {}}  # the predictors of the last model predicted with


def predictor(model: keras.Model, names=None, tta: bool = True) -> keras.Model:
    """A Keras model that returns the probabilities of ``model``'s outputs (or of ``names`` only), with
    the mirrored view predicted in the same batch and averaged in the same compiled step
    (docs/predict-bench.md: about 1.5x the images/s of two ``predict`` calls and numpy on 2 CPU cores). It
    shares ``model``'s layers, so weights loaded into ``model`` later are the ones it uses. The predictors
    of the last model are kept, one per (names, tta), so that a traced prediction step serves every chunk
    and every fold loaded into that model; predicting with another model drops them, so that the models
    of earlier folds can be freed (each predictor holds its model)."""
    if _LAST["model"] is not model:
        _LAST.update(model=model, built={})
    built = _LAST["built"]
    key = (None if names is None else tuple(sorted(names)), bool(tta))
    if key not in built:
        inp = keras.Input(model.inputs[0].shape[1:])
        out = model(Mirror()(inp) if tta else inp)
        if not isinstance(out, dict):
            out = {model.output_names[0]: out}
        built[key] = keras.Model(inp, {name: ViewMean(tta, name=f"{name}_prob")(z) for name, z in out.items()
                                       if names is None or name in names})
    return built[key]


def predict_outputs(model: keras.Model, images: np.ndarray, tta: bool = True, batch_size: int = 64,
                    names=None) -> dict:
    """Probabilities of every output of ``model`` (or of the outputs ``names`` only) for uint8 images
    (N,101,101): image outputs (N,H,W), one value per image (N,). With ``tta`` the mirrored image is
    predicted too, its image outputs are mirrored back, and the two are averaged (``predictor``: both views
    in one batch of 2 x ``batch_size``). The images are padded to whole batches, so that one batch shape
    is compiled; the padding is dropped."""
    x = to_input(images)
    n = len(x)
    pad = -n % batch_size
    if pad:
        x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    out = predictor(model, names, tta).predict(x, batch_size=batch_size, verbose=0)
    return {k: np.asarray(v, np.float32)[:n] for k, v in out.items()}


class Models:
    """Saved models one after another in one Keras model: each next ``.keras`` file of the same
    architecture only loads its weights into the model built first, whose traced prediction step then
    serves every file (on TensorFlow's CPU path a new model traces it again: seconds per fold)."""

    def __init__(self):
        self.model = None

    def load(self, path: Path) -> keras.Model:
        if self.model is not None:
            try:
                self.model.load_weights(path)
                return self.model
            except ValueError:  # another architecture: a model of its own
                pass
        keras.utils.clear_session()
        self.model = keras.saving.load_model(path, compile=False)
        return self.model


def fold_average(paths: list[Path], images: np.ndarray, tta: bool = True, batch_size: int = 64,
                 models: Models | None = None) -> dict:
    """``predict_outputs`` averaged over the saved models ``paths`` (one per fold), loaded by ``models``."""
    models = models or Models()
    total: dict[str, np.ndarray] = {}
    for path in paths:
        for name, p in predict_outputs(models.load(path), images, tta, batch_size).items():
            total[name] = total.get(name, 0.0) + p
    return {k: v / len(paths) for k, v in total.items()}


# ------------------------------------------------------------------------------------ a folder in chunks
def list_images(folder) -> tuple[list[str], list[Path]]:
    """The PNG images of a folder, sorted by id (file stem), without reading them: (ids, paths)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found")
    files = {e.name[:-4]: Path(e.path) for e in os.scandir(folder) if e.name.endswith(".png") and e.is_file()}
    if not files:
        raise UserError(f"{folder}: no PNG images")
    ids = sorted(files)
    return ids, [files[i] for i in ids]


def read_images(paths) -> np.ndarray:
    """uint8 (n,101,101) of PNG files, each checked as salt.data checks it (one-line error naming it)."""
    out = np.empty((len(paths), IMG_SIZE, IMG_SIZE), np.uint8)
    for k, p in enumerate(paths):
        out[k] = read_image(p)
    return out


class RowFile:
    """A scratch file of equal rows (arrays of ``shape`` and ``dtype``), read and written a slice at a time
    with plain reads and writes: unlike a memory map, what it holds never counts as resident memory."""

    def __init__(self, path: Path, n: int, shape, dtype):
        self.path, self.n, self.shape, self.dtype = Path(path), n, tuple(shape), np.dtype(dtype)
        self.row = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def write(self, lo: int, rows: np.ndarray) -> None:
        data = np.ascontiguousarray(rows, self.dtype).tobytes()
        if os.pwrite(self.fd, data, lo * self.row) != len(data):
            raise OSError(f"{self.path}: short write")

    def read(self, lo: int, hi: int) -> np.ndarray:
        data = os.pread(self.fd, (hi - lo) * self.row, lo * self.row)
        if len(data) != (hi - lo) * self.row:
            raise OSError(f"{self.path}: short read")
        return np.frombuffer(data, self.dtype).reshape((hi - lo,) + self.shape)

    def close(self) -> None:
        os.close(self.fd)


class NpzWriter:
    """An npz file written member by member, uncompressed, to a temporary name renamed into place when
    the block ends without error (``salt.io.atomic_path``); ``stream`` writes one array's rows in order,
    a chunk at a time, so that no array is ever whole in memory. numpy's ``np.load`` reads the result,
    and an uncompressed member can be read back a chunk at a time too (ensemble.inputs)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self):
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self.zip = zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True)
        return self

    def __exit__(self, *exc):
        try:
            self.zip.close()
        finally:
            return self._atomic.__exit__(*exc)

    def array(self, name: str, value) -> None:
        with self.zip.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)

    @contextmanager
    def stream(self, name: str, shape, dtype):
        """Yields ``write(rows)``; the rows written must add up to ``shape``."""
        dtype = np.dtype(dtype)
        done = [0]
        with self.zip.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(
                f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)})

            def write(rows):
                rows = np.ascontiguousarray(rows, dtype)
                if rows.shape[1:] != tuple(shape[1:]):
                    raise ValueError(f"{name}: rows of shape {rows.shape[1:]}, expected {tuple(shape[1:])}")
                f.write(rows.tobytes())
                done[0] += len(rows)

            yield write
        if done[0] != shape[0]:
            raise ValueError(f"{name}: {done[0]} rows written, expected {shape[0]}")


def predict_folder(paths: list[Path], folder, outputs: dict, dest: Path, tta: bool = True, batch_size: int = 64,
                   chunk: int = CHUNK, extra=None, log=None) -> dict:
    """The mean over the saved models ``paths`` of their probabilities for every PNG of ``folder``, written
    to the npz ``dest`` without ever holding a whole-folder array in memory.

    ``outputs`` maps each array of the file to (the model output it is the mean of, its dtype), e.g.
    {"prob": ("mask", np.float16)}. The file also gets ``ids`` and, last, the arrays of ``extra`` (a dict,
    or a function of the ids that returns one when they are written). Returns {"ids", "n_models",
    "seconds" (per step: read, predict, write)}.

    Loop order: the model loop is outside, the chunk loop inside. Each saved model is loaded once
    (``Models``: the weights go into the one model already built, whose traced prediction step serves
    every model of its architecture) and predicts every chunk before the next is loaded, so nothing is
    reloaded and no set of weights is kept aside, whatever the number of models (5 folds x every snapshot
    round). What that costs is the running sums on disk: the images are read and checked once, before
    any model runs (a bad image stops the command before the first model is loaded), into a uint8 scratch
    file, and each pixel output's float32 sum is a scratch file that every model reads and writes back
    one chunk at a time; one value per image stays in memory. The chunk loop outside would have had to
    reload every model for every chunk, or keep every model's weights in memory at once."""
    t0 = time.time()
    ids, files = list_images(folder)
    n = len(ids)
    if chunk < 1:
        raise UserError(f"--chunk {chunk}: must be at least 1")
    names = {name for name, _ in outputs.values()}
    spans = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    seconds = {"read": 0.0, "predict": 0.0, "write": 0.0}
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".tmp-{dest.stem}-", dir=dest.parent) as tmp:
        images = RowFile(Path(tmp) / "images.u8", n, (IMG_SIZE, IMG_SIZE), np.uint8)
        sums: dict[str, RowFile | np.ndarray] = {}
        try:
            for lo, hi in spans:
                images.write(lo, read_images(files[lo:hi]))
            seconds["read"] = time.time() - t0
            models = Models()
            for m, path in enumerate(paths):
                model = models.load(path)
                for lo, hi in spans:
                    probs = predict_outputs(model, images.read(lo, hi), tta, batch_size, names=names)
                    missing = names - set(probs)
                    if missing:
                        raise UserError(f"{path}: the model has no output {sorted(missing)[0]!r} "
                                        f"(has {', '.join(sorted(model.output_names))})")
                    for name, p in probs.items():
                        p = np.asarray(p, np.float32)
                        if p.ndim == 1:
                            if name not in sums:
                                sums[name] = np.zeros(n, np.float32)
                            sums[name][lo:hi] += p
                        else:
                            if name not in sums:
                                sums[name] = RowFile(Path(tmp) / f"{name}.f32", n, p.shape[1:], np.float32)
                            sums[name].write(lo, p if m == 0 else sums[name].read(lo, hi) + p)
                if log:
                    log(f"model {m + 1} of {len(paths)}: {path} ({time.time() - t0:.0f} s)")
            seconds["predict"] = time.time() - t0 - seconds["read"]
            k = np.float32(len(paths))
            with NpzWriter(dest) as w:
                w.array("ids", np.array(ids))
                for key, (name, dtype) in outputs.items():
                    s = sums[name]
                    if isinstance(s, np.ndarray):
                        w.array(key, (s / k).astype(dtype))
                        continue
                    with w.stream(key, (n,) + s.shape, dtype) as write:
                        for lo, hi in spans:
                            write((s.read(lo, hi) / k).astype(dtype))
                for key, value in ((extra(ids) if callable(extra) else extra) or {}).items():
                    w.array(key, value)
            seconds["write"] = time.time() - t0 - seconds["read"] - seconds["predict"]
        finally:
            for s in [images, *sums.values()]:
                if isinstance(s, RowFile):
                    s.close()
    return {"ids": ids, "n_models": len(paths), "seconds": seconds}


# ---------------------------------------------------------------------------------------------- commands
def parse_predict_args(model: str, description: str, argv):
    """The options that both models' ``predict`` commands share."""
    p = argparse.ArgumentParser(prog=f"python -m {model}.predict", description=description)
    p.add_argument("--out", type=Path, default=Path("out"), help="the folder the model was trained into")
    p.add_argument("--images", type=Path, required=True, help="folder of 101x101 PNG images")
    p.add_argument("--name", default="test", help=f"predictions go to OUT/{model}/pred-NAME.npz")
    p.add_argument("--no-tta", action="store_true", help="no horizontal-flip test-time augmentation")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk", type=int, default=CHUNK,
                   help=f"images read and predicted at a time (default {CHUNK}); memory grows with it, "
                        "not with the number of images")
    return p.parse_args(argv)


def predict_command(model: str, description: str, argv, checkpoints, outputs: dict) -> int:
    """The body of ``python -m MODEL.predict``: every saved model that ``checkpoints(run_dir)`` names
    ({fold: [saved models]}) predicts the folder of images (``predict_folder``), and OUT/MODEL/pred-NAME.npz
    gets the mean over all of them of each array of ``outputs`` ({array: (model output, dtype)}), beside
    the ids, the fingerprint of the data the models were trained on, ``folds`` (the folds whose models
    were averaged), ``n_models`` and ``wall_s``, the seconds this prediction took (the report's time
    table). Every fold weighs the same where each has as many models (the snapshot rounds)."""
    args = parse_predict_args(model, description, argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    start = time.time()
    files = Out(args.out).model(model)
    run_dir = files.dir
    by_fold = checkpoints(run_dir)
    paths = [p for k in sorted(by_fold) for p in by_fold[k]]
    fingerprint = json.loads(files.metrics_json.read_text())["fingerprint"]
    path = files.prediction(args.name)
    extra = {"fingerprint": np.array(fingerprint), "folds": np.array(sorted(by_fold)),
             "n_models": np.array(len(paths))}
    wall = {}

    def last(ids):  # the npz's last members, written once the rest is: the seconds up to then
        wall["s"] = time.time() - start
        return {**extra, "wall_s": np.array(wall["s"])}

    res = predict_folder(paths, args.images, outputs, path, not args.no_tta, args.batch_size, args.chunk, last,
                         log=lambda line: print(f"{model}: {line}", flush=True))
    n = len(res["ids"])
    print(f"{model}: {n} images from {args.images}, {len(by_fold)} folds ({len(paths)} models) -> {path} "
          f"({wall.get('s', time.time() - start):.0f} s: read {res['seconds']['read']:.0f}, "
          f"predict {res['seconds']['predict']:.0f}, write {res['seconds']['write']:.0f}; "
          f"{n * len(paths) / max(res['seconds']['predict'], 1e-9):.1f} images x models/s)")
    return 0
