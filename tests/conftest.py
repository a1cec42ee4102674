"""Shared fixtures: a small synthetic data set, the real data (skipped if absent), CLI runners."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# No test downloads anything: weights come from installed packages or files a test makes (a test of the
# download path serves its file on 127.0.0.1 and unsets this itself).
os.environ.setdefault("SALT_OFFLINE", "1")
REAL_DATA = REPO_ROOT.parent / "shared" / "tgs"


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A small synthetic Kaggle-layout data set (60 train, 10 test), made once per session. Do not modify."""
    from salt.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synthetic") / "data", n_train=60, n_test=10, seed=0)


@pytest.fixture
def data_copy(synthetic_data, tmp_path) -> Path:
    """A private copy of the synthetic data set, free to break."""
    dst = tmp_path / "data"
    shutil.copytree(synthetic_data, dst)
    return dst


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real competition data at ../shared/tgs (skips the test if absent)."""
    if not (REAL_DATA / "train.csv").is_file():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def real_train(real_data, tmp_path_factory):
    """The real training set, loaded (and checked) once per session; also returns the cache dir and load time.

    Returns (TrainSet, cache_dir, uncached_seconds).
    """
    from salt.data import load_train

    cache_dir = tmp_path_factory.mktemp("real_cache")
    t0 = time.perf_counter()
    ts = load_train(real_data, cache_dir=cache_dir)
    return ts, cache_dir, time.perf_counter() - t0


@pytest.fixture(scope="session")
def run_module():
    """run_module("salt.check", arg, ...) -> CompletedProcess of `python -m MODULE ARGS` in the repo root."""

    def run(module, *args, timeout=120):
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def call_cli(capsys):
    """call_cli(main, argv) -> (exit_code, stdout, stderr): runs salt.cli.run_cli(main) in-process."""
    from salt.cli import run_cli

    def call(main, argv):
        old = sys.argv
        sys.argv = ["prog", *map(str, argv)]
        try:
            with pytest.raises(SystemExit) as e:
                run_cli(main)
        finally:
            sys.argv = old
        out = capsys.readouterr()
        return e.value.code, out.out, out.err

    return call


# The longest files first, so that pytest-xdist (`make test`: --dist loadfile --no-loadscope-reorder)
# starts them on different workers instead of leaving two of them for the end.
LONGEST_FIRST = ["test_full_preset_jax.py", "test_full_preset_tensorflow.py", "test_train.py", "test_backends.py"]


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file and among the rest is kept


@pytest.fixture(autouse=True)
def _forget_kept_models():
    """No compiled model kept by ``training.reuse`` passes from one test to the next."""
    yield
    if "training.reuse" in sys.modules:
        sys.modules["training.reuse"].forget()
