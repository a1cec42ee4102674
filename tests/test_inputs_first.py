"""Every input checked before anything long starts (`make submit`, `make train-*`: salt.check first), and a
quiet console (no TensorFlow, XLA or CUDA log lines, however a module is started)."""
from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT
from salt.cli import is_chatter, settings_table

# Not TF_CPP_MIN_LOG_LEVEL: the entry points must quiet TensorFlow themselves.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "ABSL"))}
ENV.update(PYTHONPATH=str(REPO_ROOT), SALT_OFFLINE="1")
TF_WORDS = ("oneDNN", "cuInit", "cuda_executor", "cudart_stub", "absl::InitializeLog", "cpu_feature_guard",
            "TF_ENABLE_ONEDNN_OPTS", "This TensorFlow binary")


def make(target, data, out, *extra, timeout=120):
    args = ["make", "--no-print-directory", "-C", str(REPO_ROOT), target, f"DATA={data}", f"OUT={out}",
            "PRESET=smoke", "FOLDS=2", "BACKEND=torch", *extra]
    return subprocess.run(args, env={**ENV, "KERAS_BACKEND": "torch"}, capture_output=True, text=True,
                          timeout=timeout)


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def bad_test_image(data):
    """Replace one test image by a 128x128 PNG; returns its path."""
    path = sorted((data / "test" / "images").glob("*.png"))[3]
    cv2.imwrite(str(path), np.full((128, 128), 90, np.uint8))
    return path


def nothing_trained(out):
    return not (out / "segmenter").exists() and not (out / "classifier").exists() and \
        not list(out.glob("**/best.keras")) and not (out / "folds.csv").exists()


@pytest.mark.parametrize("target", ["submit", "train-segmenter", "train-classifier"])
def test_a_bad_test_image_stops_make_before_any_training(data_copy, tmp_path, target):
    bad = bad_test_image(data_copy)
    out = tmp_path / "out"
    proc = make(target, data_copy, out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and str(bad) in lines[0] and "101x101" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert nothing_trained(out)
    assert "salt.check" in proc.stdout and "segmenter.train" not in proc.stdout


def test_make_checks_a_test_folder_of_its_own(data_copy, tmp_path):
    test = tmp_path / "test-images"
    test.mkdir()
    src = sorted((data_copy / "test" / "images").glob("*.png"))
    for p in src[:3]:
        (test / p.name).write_bytes(p.read_bytes())
    (test / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n0000")  # a truncated PNG
    out = tmp_path / "out"
    proc = make("submit", data_copy, out, f"TEST={test}")
    assert proc.returncode == 2 and len(error_lines(proc)) == 1 and str(test / "broken.png") in error_lines(proc)[0]
    assert nothing_trained(out)


def test_check_cli_with_test_folder_and_cache(synthetic_data, tmp_path, run_module):
    test = tmp_path / "test-images"
    test.mkdir()
    for p in sorted((synthetic_data / "test" / "images").glob("*.png"))[:4]:
        (test / p.name).write_bytes(p.read_bytes())
    cache = tmp_path / "cache"
    r = run_module("salt.check", synthetic_data, "--test", test, "--cache", cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(f"ok: {synthetic_data}: 60 train images") and "4 test images" in r.stdout
    assert "not compared" in r.stdout and len(r.stdout.strip().splitlines()) == 1
    assert list(cache.glob("train-*.npz")) and list(cache.glob("images-*.npz"))  # what the trainers load
    r = run_module("salt.check", synthetic_data)
    assert r.returncode == 0 and "10 test images, sample_submission.csv matches" in r.stdout
    # a test id that is also a train id
    train_png = sorted((synthetic_data / "train" / "images").glob("*.png"))[0]
    (test / train_png.name).write_bytes(train_png.read_bytes())
    r = run_module("salt.check", synthetic_data, "--test", test)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "is also a train id" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ quiet console
@pytest.mark.parametrize("module", ["segmenter.train", "classifier.predict"])
def test_no_tensorflow_log_lines_however_started(module):
    """`python -m MODULE --help` with the TensorFlow backend and no log level set outside."""
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT,
                          env={**ENV, "KERAS_BACKEND": "tensorflow"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m {module}")
    noisy = [line for line in proc.stderr.splitlines() if is_chatter(line) or any(w in line for w in TF_WORDS)]
    assert not noisy, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_chatter_lines_are_recognised_and_others_kept():
    assert is_chatter("I0000 00:00:1796571394.740882    5186 port.cc:153] oneDNN custom operations are on.")
    assert is_chatter("E0000 00:00:1764000000.123456   12 cuda_executor.cc:1228] failed call to cuInit: CUDA error")
    assert is_chatter("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_chatter("!! WARNING: no ImageNet weights for densenet121: offline.")
    assert not is_chatter("error: data/tgs/test/images/x.png: image is 128x128, expected 101x101")


def test_a_preset_prints_as_a_short_table():
    preset = {"network": {"encoder": "resnet", "encoder_args": {"channels": [16, 32]}, "edge": True},
              "batch_size": 32, "tta": True, "rounds": [{"loss": "bce_dice", "epochs": 11, "lr": 0.003},
                                                        {"loss": "lovasz", "epochs": 6, "lr": 0.001}],
              "stages": [{"name": "head", "epochs": 1, "frozen": True}]}
    text = settings_table(preset, "segmenter: preset cpu")
    assert text.splitlines() == [
        "segmenter: preset cpu",
        "  network       encoder resnet, encoder_args (channels 16-32), edge yes",
        "  batch_size    32",
        "  tta           yes",
        "  round 1       loss bce_dice, epochs 11, lr 0.003",
        "  round 2       loss lovasz, epochs 6, lr 0.001",
        "  stage 1 head  epochs 1, frozen yes"]
    assert "{" not in text
