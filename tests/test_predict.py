"""training.predict.Models: saved fold models loaded one after another into one Keras model predict
exactly what each file loaded on its own predicts; a file of another architecture gets its own model."""
import keras
import numpy as np

from training.predict import Models, predict_outputs


def _save(folder, name: str, units: int, seed: int):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((101, 101, 1))
    x = keras.layers.Conv2D(units, 3, padding="same", activation="relu")(inp)
    mask = keras.layers.Conv2D(1, 1, name="mask")(x)
    salt = keras.layers.Dense(1, name="salt")(keras.layers.GlobalAveragePooling2D()(x))
    path = folder / f"{name}.keras"
    keras.Model(inp, {"mask": mask, "salt": salt}).save(path)
    return path


def test_models_predict_what_each_file_predicts_alone(tmp_path):
    a, b = _save(tmp_path, "a", 4, 0), _save(tmp_path, "b", 4, 1)
    c = _save(tmp_path, "c", 6, 2)  # another architecture
    images = np.random.default_rng(0).integers(0, 256, (5, 101, 101), dtype=np.uint8)
    models, built = Models(), []
    for path in (a, b, c, a):
        model = models.load(path)
        built.append(model)
        got = predict_outputs(model, images, tta=True, batch_size=4)
        alone = predict_outputs(keras.saving.load_model(path, compile=False), images, tta=True, batch_size=4)
        assert sorted(got) == sorted(alone) == ["mask", "salt"]
        for name in alone:
            np.testing.assert_allclose(got[name], alone[name], rtol=1e-5, atol=1e-6)
    assert built[1] is built[0] and built[2] is not built[0] and built[3] is not built[2]
    a_again, b_alone = predict_outputs(built[3], images, batch_size=4), predict_outputs(
        keras.saving.load_model(b, compile=False), images, batch_size=4)
    assert not np.allclose(a_again["mask"], b_alone["mask"])  # the files differ: the check above can fail


def test_npz_written_in_chunks_reads_back_in_chunks(tmp_path):
    """training.predict.NpzWriter streams an array into an npz that numpy reads whole and ensemble.inputs
    reads a chunk at a time; a compressed npz of before (np.savez_compressed) reads the same way."""
    import pytest

    from ensemble.inputs import npy_header, npz_chunks
    from salt.cli import UserError
    from salt.io import save_npz
    from training.predict import NpzWriter

    rng = np.random.default_rng(0)
    prob = rng.uniform(0, 1, (23, 101, 101)).astype(np.float16)
    path = tmp_path / "pred.npz"
    with NpzWriter(path) as w:
        w.array("ids", np.array([f"id{k}" for k in range(23)]))
        with w.stream("prob", prob.shape, np.float16) as write:
            for lo in range(0, 23, 5):
                write(prob[lo:lo + 5].astype(np.float32))  # cast on the way
    old = tmp_path / "old.npz"
    save_npz(old, prob=prob)
    for p in (path, old):
        with np.load(p) as z:
            np.testing.assert_array_equal(z["prob"], prob)
        assert npy_header(p, "prob") == ((23, 101, 101), np.dtype(np.float16))
        parts = list(npz_chunks(p, "prob", 7))
        assert [(lo, hi) for lo, hi, _ in parts] == [(0, 7), (7, 14), (14, 21), (21, 23)]
        np.testing.assert_array_equal(np.concatenate([c for _, _, c in parts]), prob)
    with pytest.raises(ValueError, match="3 rows written, expected 4"):
        with NpzWriter(tmp_path / "short.npz") as w:
            with w.stream("prob", (4, 2), np.float32) as write:
                write(np.zeros((3, 2)))
    assert not (tmp_path / "short.npz").exists() and not list(tmp_path.glob(".tmp-*"))
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="cut.npz"):
        list(npz_chunks(tmp_path / "cut.npz", "prob", 7))


def test_an_earlier_model_is_freed_once_another_predicts():
    """The compiled predictors are kept for the last model alone: the fold models a trainer predicted
    with before are not held in memory (each predictor holds its model)."""
    import gc
    import weakref

    def build(seed):
        keras.utils.set_random_seed(seed)
        inp = keras.Input((101, 101, 1))
        x = keras.layers.Conv2D(2, 3, padding="same")(inp)
        return keras.Model(inp, {"mask": keras.layers.Conv2D(1, 1, name="mask")(x)})

    images = np.zeros((4, 101, 101), np.uint8)
    first = build(0)
    predict_outputs(first, images, tta=True, batch_size=4)
    freed = weakref.ref(first)
    del first
    predict_outputs(build(1), images, tta=True, batch_size=4)
    gc.collect()
    assert freed() is None
