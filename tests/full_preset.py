"""Shared by tests/test_full_preset_*.py: the full preset, the one users run on a GPU, exercised on the
CPU: its real networks (the SE-ResNeXt50 U-Net at 128, DenseNet121 at 128 with its frozen-head stage) in
bfloat16, through the trainers' own ``fit`` with their callbacks; the fold's prediction. A handful of
synthetic images and a batch of 2 keep it to a few steps. One file per backend, so that the two run on
different workers of the suite."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT

BASE = ["--preset", "full", "--precision", "bfloat16", "--batch-size", "2", "--folds", "2", "--only-fold", "0",
        "--verbose", "2"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from salt.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("full") / "data", n_train=8, n_test=2, seed=1)


@pytest.fixture(scope="module")
def imagenet_home(tmp_path_factory):
    """A Keras cache folder holding a DenseNet121 'ImageNet' weights file (random values, Keras' file
    name), so that the classifier takes its ImageNet path: the frozen-head stage, then fine-tuning."""
    import keras

    home = tmp_path_factory.mktemp("keras_home")
    (home / "models").mkdir()
    net = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(128, 128, 3), pooling="avg")
    keras.saving.save_model(net, str(home / "models" / "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"))
    return home


def env(backend, **extra):
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3", SALT_OFFLINE="1",
                KERAS_BACKEND=backend, **extra)


def train(module, backend, *args, environ=None):
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO_ROOT,
                          env=environ or env(backend), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def check_run(run_dir, backend, encoder_init):
    run = json.loads((run_dir / "run.json").read_text())
    assert run["precision"] == "bfloat16" and run["dtype_policy"] == "mixed_bfloat16"
    assert run["environment"]["backend"] == backend and run["environment"]["devices"]
    assert run["encoder_init"] == encoder_init
    with np.load(run_dir / "oof" / "fold0.npz") as f:
        arrays = {k: f[k] for k in f.files}
    assert len(arrays["index"]) == 4
    for name, values in arrays.items():
        if name != "index":
            assert np.isfinite(values).all() and 0 <= values.min() and values.max() <= 1, name
    return arrays


def kill_and_resume(module, backend, args, state, after_epoch=1):
    """Starts a trainer, SIGKILLs it once its resume state has ``after_epoch`` epochs, runs it again."""
    proc = subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=REPO_ROOT,
                            env=env(backend), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= after_epoch:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stdout.read()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # an epoch of the tiny data can take a second, so on a busy machine the kill may come an epoch late:
    # the resume must start from whatever epoch the state file holds
    killed_at = json.loads(state.read_text())["epoch"]
    assert killed_at >= after_epoch
    resumed = train(module, backend, *args)
    assert f"after epoch {killed_at}" in resumed.stdout, resumed.stdout[-3000:]
    return resumed


def classifier_with_imagenet_weights(data, home, out, backend, **environ):
    """With weights in Keras' cache, the head trains with the encoder frozen, then the whole network.
    ``environ``: more variables for the trainer's environment."""
    proc = train("classifier.train", backend, "--data", data, "--out", out, *BASE, "--epochs-scale", "0.01",
                  environ=env(backend, KERAS_HOME=str(home), **environ))
    assert "encoder frozen" in proc.stdout and "whole network" in proc.stdout
    for st in ("head", "finetune"):
        assert (out / "classifier" / "fold0" / st / "done.json").exists()
    arrays = check_run(out / "classifier", backend, "imagenet")
    assert arrays["p_empty"].shape == (4,)
    return proc
