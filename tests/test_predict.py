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
