"""segmentation_models' Unet('seresnext50') training step, timed in a TensorFlow subprocess: an outside
reference for the speed of our SE-ResNeXt50 U-Net."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from bench.hardware import log
from bench.timing import time_steps

REPO = Path(__file__).resolve().parents[1]
TAG = "BASELINE_RESULT "


def child(plan: dict) -> dict:
    """Runs in the subprocess (KERAS_BACKEND=tensorflow, SM_FRAMEWORK=tf.keras): times sm.Unet's train step.

    On a GPU in mixed_bfloat16 like ours; if segmentation_models fails under it, again in float32.
    """
    import tensorflow as tf

    from training import devices

    devices.configure()
    gpu = bool(tf.config.list_physical_devices("GPU"))
    policies = ["mixed_bfloat16", "float32"] if gpu else ["float32"]
    for i, policy in enumerate(policies):
        try:
            return _time_sm_unet(plan, policy, gpu)
        except Exception as e:  # noqa: BLE001
            if i == len(policies) - 1:
                raise
            log(f"segmentation_models: failed in {policy} ({type(e).__name__}: {str(e)[:200]}); again in float32")
            keras.utils.clear_session()


def _time_sm_unet(plan: dict, policy: str, gpu: bool) -> dict:
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy(policy)
    import segmentation_models as sm

    batch, warmup, steps = plan["batch"], plan["warmup"], plan["steps"]
    log(f"segmentation_models: building Unet('seresnext50') ({policy}, TensorFlow on {'GPU' if gpu else 'CPU'})")
    model = sm.Unet("seresnext50", encoder_weights=None, input_shape=(128, 128, 3), classes=1)
    model.compile("adam", "binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((batch, 128, 128, 3), dtype=np.float32)
    y = (rng.random((batch, 128, 128, 1)) < 0.3).astype(np.float32)
    res = time_steps(lambda: model.train_on_batch(x, y), warmup, steps, "segmentation_models train")
    return {**res, "params": int(model.count_params()), "policy": policy, "device": "GPU" if gpu else "CPU",
            "batch": batch}


def run(plan: dict) -> dict:
    """The baseline's timing from a subprocess; {"skipped": reason} where it cannot run."""
    if importlib.util.find_spec("tensorflow") is None:
        return {"skipped": "no TensorFlow here"}
    if importlib.util.find_spec("segmentation_models") is None:
        return {"skipped": "segmentation_models is not installed"}
    cmd = [sys.executable, "-m", "bench.baseline", json.dumps(plan)]
    env = dict(os.environ, KERAS_BACKEND="tensorflow", SM_FRAMEWORK="tf.keras", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    log("segmentation_models: timing the baseline in a TensorFlow subprocess (its first step builds the graph)")
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        return {"skipped": "the baseline subprocess took over an hour"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(TAG):
            return json.loads(line[len(TAG):])
    return {"skipped": f"the baseline subprocess failed (exit {proc.returncode}; its messages are above)"}


if __name__ == "__main__":
    print(TAG + json.dumps(child(json.loads(sys.argv[1]))), flush=True)
