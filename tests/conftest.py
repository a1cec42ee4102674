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


def _worker_cores() -> None:
    """Under pytest-xdist, each worker and every process it starts get the cores divided among the
    workers: the CPU affinity (inherited; training.devices.cores() and the thread pools of TensorFlow and
    XLA size themselves by it), where there is at least a core a worker, and OpenMP's threads (PyTorch's),
    unless OMP_NUM_THREADS is set already. Otherwise two workers' processes run four busy threads on two
    cores and spin-wait for each other: a smoke-preset fold on PyTorch took 42.9 s of CPU with two OpenMP
    threads and 16.3 s with one, on a busy 2-core machine; the suite in a clone on 2 cores took 474 s of
    pytest and 909 s of CPU pinned against 491 s and 950 s unpinned (docs/suite.md)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if workers < 2 or not worker.startswith("gw"):
        return
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = list(range(os.cpu_count() or 1))
    if len(cores) >= workers and hasattr(os, "sched_setaffinity"):  # worker k: every workers-th core from the k-th
        os.sched_setaffinity(0, set(cores[int(worker[2:]) % workers::workers]))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(cores) // workers)))


_worker_cores()

# XLA (JAX's compiler, and TensorFlow's where a test asks for jit_compile) without LLVM's optimisation
# passes: these tests compile networks to run a handful of steps, so compile time is what they spend.
# tests/test_backends.py's JAX subprocess took 36 s of CPU instead of 57, the full preset's classifier on
# JAX 64 s of wall time instead of 83 (2 CPU cores, docs/suite.md); what the tests check does not change. Unless set.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


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
# After the four longest, the files that start trainers or predictors or train small networks in process
# (docs/suite.md), so that what is left for the end is files of seconds.
LONGEST_FIRST = ["test_full_preset_jax.py", "test_full_preset_tensorflow.py", "test_train.py", "test_backends.py",
                 "test_stream.py", "test_stage.py", "test_bench.py", "test_convert_weights.py"]


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
