"""The full preset on the TensorFlow backend (see tests/full_preset.py): the segmenter, and the
classifier with its frozen-head stage."""
from __future__ import annotations

from full_preset import BASE, check_run, classifier_with_imagenet_weights, imagenet_home, tiny_data, train  # noqa: F401


def test_segmenter(tiny_data, tmp_path):
    out = tmp_path / "out"
    train("segmenter.train", "tensorflow", "--data", tiny_data, "--out", out, *BASE, "--rounds", "1",
          "--epochs-scale", "0.025", "--encoder-weights", "none")
    arrays = check_run(out / "segmenter", "tensorflow", "random")
    assert arrays["prob"].shape == (4, 101, 101)


def test_classifier(tiny_data, imagenet_home, tmp_path):
    classifier_with_imagenet_weights(tiny_data, imagenet_home, tmp_path / "out", "tensorflow")
