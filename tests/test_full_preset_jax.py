"""The full preset on the JAX backend (see tests/full_preset.py): the segmenter killed after its first
epoch (or a later one) and resumed on one device (the second process finds its compiled step in JAX's
persistent cache), and the classifier with its frozen-head stage on two host devices, data-parallel."""
from __future__ import annotations

import os

import pandas as pd

from full_preset import BASE, check_run, classifier_with_imagenet_weights, imagenet_home, kill_and_resume, tiny_data  # noqa: F401


def test_segmenter_kill_and_resume(tiny_data, tmp_path):
    out = tmp_path / "out"
    # round 1's 40 epochs x 0.075: 3, so that a kill an epoch late still leaves an epoch to resume
    args = ["--data", tiny_data, "--out", out, *BASE, "--rounds", "1", "--epochs-scale", "0.075",
            "--encoder-weights", "none", "--checkpoint-every", "0"]
    kill_and_resume("segmenter.train", "jax", args, out / "segmenter" / "round1" / "fold0" / "state.json")
    log = pd.read_csv(out / "segmenter" / "round1" / "fold0" / "log.csv")
    assert log["epoch"].tolist() == [0, 1, 2] and log["loss"].notna().all()
    arrays = check_run(out / "segmenter", "jax", "random")
    assert arrays["prob"].shape == (4, 101, 101) and arrays["p_salt"].shape == (4,)
    assert list((out / "cache" / "jax").glob("jit_train_step-*")), "the compiled step is cached on disk"


def test_classifier_data_parallel_on_two_devices(tiny_data, imagenet_home, tmp_path):
    """JAX given two host devices trains data-parallel (keras.distribution.DataParallel: the batch of 2
    split in two) and records both."""
    import json

    out = tmp_path / "out"
    classifier_with_imagenet_weights(tiny_data, imagenet_home, out, "jax",
                                     XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2")
    run = json.loads((out / "classifier" / "run.json").read_text())
    assert run["environment"]["devices"] == ["cpu:0", "cpu:1"]
