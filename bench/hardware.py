"""The machine a benchmark runs on: its name, the device's peak memory, a synchronisation point and the
matrix-multiply rate that achieved FLOP/s are compared with."""
from __future__ import annotations

import platform
import resource
import sys
import time
from pathlib import Path

import keras
from keras import ops

from training import devices


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def describe() -> dict:
    """Backend, GPU name (None on the CPU), CPU model and cores, and a name for the table."""
    gpus = devices.accelerators()
    d = {"backend": devices.backend(), "gpu": gpus[0].split(":", 1)[1] if gpus else None, "gpus": len(gpus),
         "cpu": cpu_model(), "cores": devices.cores(), "devices": devices.devices()}
    d["name"] = d["gpu"] or f"{d['cpu']} ({d['cores']} cores)"
    return d


def reset_peak_memory(gpu: bool) -> None:
    """Resets the GPU peak-memory counter where the backend can (torch, TensorFlow; not JAX, not the CPU)."""
    if not gpu:
        return
    if devices.backend() == "torch":
        import torch

        torch.cuda.reset_peak_memory_stats()
    elif devices.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")


def peak_memory(gpu: bool) -> int | None:
    """Peak bytes: the GPU's peak in use, or the process's peak resident set size on the CPU."""
    if not gpu:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    backend = devices.backend()
    try:
        if backend == "jax":
            import jax

            return int(jax.devices()[0].memory_stats()["peak_bytes_in_use"])
        if backend == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated())
        if backend == "tensorflow":
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    except Exception as e:  # noqa: BLE001  (a missing statistic must not lose the benchmark)
        log(f"note: no GPU memory statistics ({type(e).__name__}: {e})")
    return None


def sync(x) -> None:
    """Waits until x (and all the work queued before it) is computed."""
    if devices.backend() == "jax":
        x.block_until_ready()
    elif devices.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        ops.convert_to_numpy(x[:1, :1])


def matmul_rate(dtype: str, n: int, iters: int) -> float:
    """Measured FLOP/s of keras.ops.matmul of two n x n matrices of `dtype` (after one warm-up)."""
    a = ops.cast(keras.random.normal((n, n), seed=1), dtype)
    b = ops.cast(keras.random.normal((n, n), seed=2), dtype)
    sync(ops.matmul(a, b))
    start = time.perf_counter()
    for _ in range(iters):
        c = ops.matmul(a, b)
    sync(c)
    return 2.0 * n ** 3 * iters / (time.perf_counter() - start)
