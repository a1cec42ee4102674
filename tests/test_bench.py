"""The benchmark commands run end to end (on the eager PyTorch backend, which needs no graph tracing):
their tables hold what they promise; without a GPU the GPU check refuses in one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND="torch", SALT_OFFLINE="1")


def run(*args):
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO_ROOT, env=ENV, capture_output=True,
                          text=True, timeout=600)


def test_gpu_check_refuses_without_gpu(tmp_path, synthetic_data, call_cli):
    """Run in this process (the refusal comes before anything is built; the test below starts the command)."""
    import bench.gpu_check

    code, _, err = call_cli(bench.gpu_check.main, ["--data", synthetic_data, "--out", tmp_path / "out"])
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "no GPU" in errors[0] and "make install GPU=1" in errors[0]
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_gpu_check_table_on_the_cpu(tmp_path, synthetic_data):
    out = tmp_path / "out"
    proc = run("bench.gpu_check", "--data", synthetic_data, "--out", out, "--preset", "smoke", "--allow-cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = json.loads((out / "gpu_check.json").read_text())
    for key in ("epoch time (median after each round's first)", "training images/s (whole epoch, validation included)",
                "fit/step (trainer's epoch / its bare steps)", "peak device memory",
                "fold 0 out-of-fold score (best threshold)"):
        assert key in table and key in proc.stdout
    assert table["fit/step (trainer's epoch / its bare steps)"].startswith("fit/step ")
    assert 0.0 <= float(table["fold 0 out-of-fold score (best threshold)"]) <= 1.0
    assert (out / "segmenter" / "oof" / "fold0.npz").exists(), "fold 0 was trained by the trainer itself"


def test_bench_quick(tmp_path):
    proc = run("bench.run", "--quick", "--skip-fit", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "bench.json").read_text())
    seg, clf = res["networks"]
    assert seg["label"].startswith("segmenter") and clf["label"].startswith("classifier")
    for m in (seg, clf):
        assert m["train_images_per_s"] > 0 and m["infer_images_per_s"] > 0 and m["forward_flops"] > 0
    assert "training images/s" in (tmp_path / "bench.md").read_text()


def test_resolution_round_trip_by_hand():
    """bench.resolution's round trip against hand-worked masks: unchanged at 101; the left half kept to
    within its boundary column at 48; a single pixel (a quarter of a 2x2 cell's area at 50) lost."""
    import numpy as np

    from bench.resolution import round_trip

    rng = np.random.default_rng(0)
    masks = rng.random((3, 101, 101)) > 0.5
    assert (round_trip(masks, 101) == masks).all()
    half = np.zeros((1, 101, 101), bool)
    half[:, :, :50] = True
    back = round_trip(half, 48)[0]
    assert back[:, :49].all() and not back[:, 51:].any()
    dot = np.zeros((1, 101, 101), bool)
    dot[0, 40, 40] = True
    assert not round_trip(dot, 50).any()
