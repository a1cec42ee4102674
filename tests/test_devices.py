"""Devices and numerics: a GPU that the driver lists but the backend cannot see stops the run with the
fix; the precision a run gets; what a run records about its devices."""
from __future__ import annotations

import os

import pytest

from salt.cli import UserError
from training import devices


@pytest.fixture
def fake_nvidia_smi(tmp_path, monkeypatch):
    """An nvidia-smi on PATH that lists one GPU, as the NVIDIA driver does."""
    exe = tmp_path / "nvidia-smi"
    exe.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_gpu_listed_but_invisible_to_the_backend_is_an_error(fake_nvidia_smi):
    assert devices.nvidia_gpus() == ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"]
    assert not devices.has_gpu()  # this machine's CPU-only build
    with pytest.raises(UserError, match=r"nvidia-smi lists GPU 0: NVIDIA H100.*make install GPU=1"):
        devices.check_devices()


def test_hiding_the_gpu_on_purpose_trains_on_the_cpu(fake_nvidia_smi, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.nvidia_gpus() == []
    devices.check_devices()


def test_no_driver_no_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert devices.nvidia_gpus() == []
    devices.check_devices()


def test_precision():
    preset = {"precision": {"gpu": "bfloat16", "cpu": "float32"}}
    assert devices.resolve_precision("auto", preset) == "float32"  # no GPU here
    assert devices.resolve_precision("bfloat16", preset) == "bfloat16"
    assert devices.resolve_precision("float32", {"precision": {"cpu": "bfloat16"}}) == "float32"
    assert devices.resolve_precision("auto", {"precision": {"cpu": "bfloat16"}}) == "bfloat16"
    with pytest.raises(UserError, match="--precision half"):
        devices.resolve_precision("half", preset)
    assert devices.policy_name("bfloat16") == "mixed_bfloat16" and devices.policy_name("float32") == "float32"


def test_one_device_needs_no_distribution():
    assert devices.devices() and devices.distribution(7) is None


def test_cores_follow_the_cpu_set_the_process_may_use():
    """Pinned to one core (taskset, a container's CPU set), TensorFlow's threads and the batch workers
    follow it rather than the machine's count."""
    keep = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(keep)})
        assert devices.cores() == 1
    finally:
        os.sched_setaffinity(0, keep)
    assert devices.cores() == len(keep)
