"""Where a run computes and in what numerics: devices, precision, sessions, compilation, threads.

Every trainer starts a model with ``new_session(seed, precision)``; ``check_devices()`` stops a run that
would silently train on the CPU of a machine whose GPU the installed backend cannot see; ``devices()``
is what runs print and record in run.json; ``distribution()`` spreads a batch over several devices.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import keras
import numpy as np

from salt.cli import UserError

PRECISIONS = ("auto", "bfloat16", "float32")


def backend() -> str:
    return keras.backend.backend()


def accelerators() -> list[str]:
    """The GPUs the active Keras backend sees, as 'gpu:NAME' strings (empty on a CPU-only backend)."""
    name = backend()
    try:
        if name == "jax":
            import jax

            return [f"gpu:{d.device_kind}" for d in jax.devices() if d.platform == "gpu"]
        if name == "torch":
            import torch

            return [f"gpu:{torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
        if name == "tensorflow":
            import tensorflow as tf

            return [f"gpu:{tf.config.experimental.get_device_details(d).get('device_name', d.name)}"
                    for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # a broken accelerator stack means: no GPU
        return []
    return []


def has_gpu() -> bool:
    """Whether the active Keras backend sees a GPU."""
    return bool(accelerators())


def compute_devices() -> list:
    """The backend's devices that a batch is spread over: its GPUs, else its CPU devices (JAX can be
    given several host devices with XLA_FLAGS=--xla_force_host_platform_device_count=N)."""
    if backend() == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return gpus or jax.devices("cpu")
    return []


def devices() -> list[str]:
    """What this process computes on, for the logs and run.json: one entry per device used."""
    gpus = accelerators()
    if backend() == "jax":
        return [f"{d.platform}:{d.id}" + (f" ({d.device_kind})" if d.platform == "gpu" else "")
                for d in compute_devices()]
    return gpus or [f"cpu:{cores()} cores"]


def nvidia_gpus() -> list[str]:
    """GPUs that the NVIDIA driver lists (``nvidia-smi -L``), whatever the Python packages can see."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1") or not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.startswith("GPU ")]


def check_devices() -> None:
    """Stops with the fix when the driver shows a GPU but the Keras backend sees none (CPU-only builds
    installed): training there would take a day on the CPU instead of minutes on the GPU."""
    listed = nvidia_gpus()
    if listed and not has_gpu():
        raise UserError(f"nvidia-smi lists {listed[0]} but the {backend()} backend sees no GPU (a CPU-only "
                        f"build is installed): run `make install GPU=1`, or set CUDA_VISIBLE_DEVICES= to train "
                        f"on the CPU on purpose")


def resolve_precision(choice: str, preset: dict) -> str:
    """``float32`` or ``bfloat16``. ``auto`` takes the preset's choice for this device: its ``precision``
    entry is {"gpu": ..., "cpu": ...}."""
    if choice not in PRECISIONS:
        raise UserError(f"--precision {choice}: choose one of {', '.join(PRECISIONS)}")
    if choice != "auto":
        return choice
    return preset.get("precision", {}).get("gpu" if has_gpu() else "cpu", "float32")


def policy_name(precision: str) -> str:
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


def new_session(seed: int, precision: str = "float32", batch_size: int | None = None, clear: bool = True) -> None:
    """A clean Keras session for the next model: fixed seed, the run's dtype policy (``clear_session``
    resets it to float32, so it is set again every time) and, given the batch size, data parallelism
    over every device the backend sees.

    ``clear=False`` is for a model whose weights go into one compiled before (``training.reuse``): it
    keeps Keras' session and TensorFlow's global seed, because on TensorFlow both ``clear_session`` and
    ``tf.random.set_seed`` empty the kernel cache, and the kept model's traced step would then be
    instantiated anew at its first step (about 16 s for DenseNet121 on a CPU). The new model is the same
    either way: Keras' layers draw their initial seeds from Python's ``random``, seeded here, and
    nothing in this project draws from TensorFlow's global generator (tests/test_reuse.py)."""
    if clear:
        keras.utils.clear_session()
    keras.mixed_precision.set_global_policy(policy_name(precision))
    if clear or backend() != "tensorflow":
        keras.utils.set_random_seed(seed)
    else:
        random.seed(seed)
        np.random.seed(seed)
    if batch_size is not None:
        keras.distribution.set_distribution(distribution(batch_size))


def jit_compile():
    """Keras' ``jit_compile`` for this machine: XLA everywhere but TensorFlow on a CPU, where compiling
    these networks takes minutes and the steps run slower than TensorFlow's own graphs."""
    if backend() == "tensorflow" and not has_gpu():
        return False
    return "auto"


def layer_choices() -> dict:
    """The layers' device choices, for whoever builds a network on this machine (segmenter.encoders'
    ``device_args``): ``split_groups``, a grouped convolution as one convolution per group, on a CPU with
    TensorFlow, whose own has a gradient 60-400x slower (segmenter.encoders.seresnext), or with JAX, where
    XLA's own made a training step of the full preset's SE-ResNeXt50 U-Net 5x slower (6.0 against 1.2 s a
    batch of 2 at 128, bfloat16, 2 cores; docs/suite.md), for a compile 1.4x longer: there in training
    only (``"train"``), since XLA's forward pass is as fast and compiles in a third of the time. PyTorch's
    CPU one is left as it is."""
    if has_gpu() or backend() not in ("tensorflow", "jax"):
        return {"split_groups": False}
    return {"split_groups": True if backend() == "tensorflow" else "train"}


def step_loop() -> bool:
    """Whether the trainers feed their steps one ``train_on_batch`` at a time (``training.stage.train_epochs``)
    instead of through ``fit``'s data iterator: on TensorFlow on a CPU, where that iterator made an epoch
    of the cpu preset 1.87x slower (``bench/fit_loop.py``, README). Elsewhere ``fit`` keeps the device's
    queue full: a GPU step waits for no Python."""
    return backend() == "tensorflow" and not has_gpu()


def cores() -> int:
    """The CPU cores this process may run on (taskset and cgroup CPU sets count; os.cpu_count() does not)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure(cache_dir: Path | None = None) -> None:
    """Per-process setup: every core for TensorFlow's ops, and JAX's persistent compilation cache, so that
    a step compiled once serves every later fold, round and run with the same shapes. Every compile is
    kept, however short: building a network runs one small compiled initializer per weight shape, and the
    full preset's U-Net took 14.8 s to build in a fresh process with them compiled and 2.1 s with them
    read from the cache (68 files, 1.2 MB; 2 CPU cores, docs/suite.md)."""
    n = cores()
    if backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, n))
        except RuntimeError:  # already initialised
            pass
    elif backend() == "jax" and cache_dir is not None:
        import jax

        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def distribution(batch_size: int):
    """Keras' data-parallel distribution over every device JAX sees, or None for one device.

    The batch is split evenly, so it must be a multiple of the number of devices."""
    devs = compute_devices()
    if len(devs) < 2:
        return None
    if batch_size % len(devs):
        raise UserError(f"batch size {batch_size} does not split over {len(devs)} devices; "
                        f"use a multiple of {len(devs)}")
    return keras.distribution.DataParallel(devices=keras.distribution.list_devices(devs[0].platform))
