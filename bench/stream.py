"""Prediction and submission at the real test set's scale: `python -m bench.stream --out OUT/bench-predict`
(what `make bench-predict` runs).

Makes N synthetic 101x101 test images with salt.synthetic (``--images``, 18,000 by default: the size of
the competition's test set; `test_images`) or takes a folder of PNGs (``--test``), a minimal OUT with k
fold models of a preset's segmenter and classifier architectures (random weights: speed and memory do
not depend on them), saved where and as the trainers save them, and a fixed tuning.json; then runs the
three steps of `make submit` that touch the test set, each as its own process, as `make submit` runs them:
``segmenter.predict``, ``classifier.predict`` and ``ensemble.submit``. For each step it prints the
seconds, the images per second and the peak resident memory of the process (its VmHWM: ru_maxrss of
``os.wait4`` on it, forked from a small launcher so that it does not inherit this process's peak), and
writes them to OUT/bench-predict/stream.json. ``--stand-in`` puts networks with the models' outputs and
next to no computation in place of the preset's: the memory and time of the steps apart from the networks.
docs/predict-bench.md has the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from salt.cli import UserError, run_cli
from salt.layout import Data, Out, StageFiles

REPO = Path(__file__).resolve().parents[1]
TUNED = {"threshold": 0.5, "empty_rule": {"w": 0.5, "threshold": 0.6}, "min_area": 10, "vertical": False,
         "constant_empty": False}  # rules of the kind the tuning keeps; their values do not change the cost


def spread_logits(model, images, target: float = 2.0):
    """Rescale each output's last linear layer (``NAME_logits`` or ``NAME``: a kernel and a bias) so that
    its logits on `images` have mean 0 and standard deviation `target`: a random network's probabilities
    all sit near 0.5, and rules applied to them would decide on noise; these vary as a trained model's do
    (blobs of salt, images called empty), so that the submission step does the work it does for real."""
    from training.batches import to_input

    out = model.predict(to_input(images), batch_size=len(images), verbose=0)
    out = out if isinstance(out, dict) else {model.output_names[0]: out}
    for name, z in out.items():
        layer = next((model.get_layer(n) for n in (f"{name}_logits", name)
                      if n in {la.name for la in model.layers}), None)
        z = np.asarray(z, np.float64)
        if layer is None or len(layer.get_weights()) != 2 or z.std() == 0:
            continue
        kernel, bias = layer.get_weights()
        scale = target / z.std()
        layer.set_weights([kernel * scale, (bias - z.mean()) * scale])
    return model


def stand_in_segmenter():
    """A network with the segmenter's outputs (mask and edge logits at 101x101, one salt logit) and next to
    no computation: what the predict and submit steps cost apart from the network (``--stand-in``)."""
    import keras

    inp = keras.Input((101, 101, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    salt = keras.layers.Dense(1, name="salt")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, {"mask": keras.layers.Conv2D(1, 1, name="mask")(x), "salt": salt,
                             "edge": keras.layers.Conv2D(1, 1, name="edge")(x)})


def stand_in_classifier():
    """A network with the classifier's output ("empty") and next to no computation (``--stand-in``)."""
    import keras

    inp = keras.Input((101, 101, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inp))
    return keras.Model(inp, {"empty": keras.layers.Dense(1, name="empty")(x)})


def make_models(out, segmenter_preset: dict | None, classifier_preset: dict | None, folds: int = 5,
                fingerprint: str = "bench", seed: int = 0, classifier_builder=None,
                segmenter_builder=None) -> dict:
    """A minimal trained OUT for the predict commands: for each fold, models of the presets' architectures
    with random weights (a new seed each), saved as the trainers save their best checkpoint (an uncompiled
    model, ``.keras``, written atomically) at OUT/segmenter/round{r}/fold{k}/best.keras (every snapshot
    round) and OUT/classifier/fold{k}/{last stage}/best.keras (the preset's backbone), beside run.json and
    metrics.json with ``fingerprint``. Each output's logits are spread as a trained model's are
    (`spread_logits`, on synthetic images). ``classifier_builder()`` (a Keras model with an "empty"
    output) stands in for the preset's backbone where given, ``segmenter_builder()`` (outputs "mask",
    "salt", "edge") for the U-Net.
    Returns {"segmenter": [paths], "classifier": [paths]}."""
    import keras

    from salt.io import atomic_path, write_json

    from salt.synthetic import make_pair

    out = Path(out)
    saved = {"segmenter": [], "classifier": []}
    rng = np.random.default_rng(seed)
    sample = np.stack([make_pair(rng, kind)[0] for kind in ["empty", "blob", "bottom"] * 6])

    def save(model, path):
        with atomic_path(path) as tmp:
            model.save(tmp)
        saved[path.parts[len(out.parts)]].append(path)

    lay = Out(out)

    if segmenter_preset is not None:
        from segmenter.rounds import snapshot_rounds
        from segmenter.unet import build_unet

        run_dir = lay.segmenter
        for k in range(folds):
            for r in snapshot_rounds(segmenter_preset):
                keras.utils.set_random_seed(seed + 100 * r + k)
                model = segmenter_builder() if segmenter_builder else build_unet(**segmenter_preset["network"],
                                                                                  encoder_weights=None)
                save(spread_logits(model, sample), StageFiles(run_dir.round_dir(r, k)).best)
        write_json(run_dir.run_json, {"preset": "bench", "config": segmenter_preset, "folds": folds,
                                          "fingerprint": fingerprint})
        write_json(run_dir.metrics_json, {"fingerprint": fingerprint, "preset": "bench"})
    if classifier_preset is not None:
        run_dir = lay.classifier
        backbone = classifier_preset.get("backbone", "densenet121")
        stage = classifier_preset["stages"][-1]["name"]
        for k in range(folds):
            keras.utils.set_random_seed(seed + 1000 + k)
            if classifier_builder is not None:
                model = classifier_builder()
            else:
                from classifier.model import build_classifier

                model, _ = build_classifier(backbone, classifier_preset["input_size"], "none",
                                            classifier_preset["dropout"])
            save(spread_logits(model, sample), StageFiles(run_dir.stage_dir(k, stage)).best)
        write_json(run_dir.run_json, {"preset": "bench", "config": classifier_preset, "folds": folds,
                                          "fingerprint": fingerprint, "backbone": backbone})
        write_json(run_dir.metrics_json, {"fingerprint": fingerprint, "preset": "bench"})
    tuning = {"fingerprint": fingerprint, "classifier": classifier_preset is not None, "params": TUNED,
              "params_segmenter_only": {**TUNED, "empty_rule": {"w": 0.0, "threshold": 0.6}}}
    write_json(lay.tuning_json, tuning)
    return saved


# Runs argv[1:] as a child of a fresh, small Python process and writes the child's rusage (JSON) to the file
# argv[0]. A process forked from this one would report this one's peak memory as its own where that is the
# larger: Linux keeps a process's peak resident memory across fork and exec.
LAUNCH = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, u = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"maxrss_kb": u.ru_maxrss, "cpu_s": u.ru_utime + u.ru_stime}, f)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_step(argv, log: Path, env=None) -> dict:
    """Run one step as a child process (its output to `log`): {seconds, peak_rss_mb, cpu_s, rc}. The peak
    resident memory is the step's own high-water mark (ru_maxrss of os.wait4, its VmHWM)."""
    usage = Path(log).with_suffix(".rusage.json")
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.call([sys.executable, "-c", LAUNCH, usage, *map(str, argv)], cwd=REPO, stdout=f,
                             stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    seconds = time.time() - t0
    u = json.loads(usage.read_text()) if usage.is_file() else {"maxrss_kb": 0, "cpu_s": 0}
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(u["maxrss_kb"] / 1024, 1), "rc": rc,
            "cpu_s": round(u["cpu_s"], 1)}


def machine() -> str:
    name = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} cores"


POOL = 2000  # images drawn by salt.synthetic; the rest are mirrored and shifted copies of them


def test_images(out: Path, n: int, seed: int) -> tuple[Path, Path]:
    """(data folder, its test/images) with n synthetic test images, made once per (n, seed) under out.
    salt.synthetic draws up to POOL of them (a few milliseconds each); every further image is one of those
    mirrored and shifted (a new image to the models, at the cost of writing a PNG), under an id of its own.
    sample_submission.csv lists them all in an order of its own, as Kaggle's does."""
    import shutil

    import cv2
    import pandas as pd

    from salt.data import load_images
    from salt.synthetic import make_dataset

    data = out / f"data-{n}-{seed}"
    if Data(data).sample_submission.is_file():
        return data, Data(data).test_images
    tmp = out / f".tmp-data-{n}-{seed}"
    shutil.rmtree(tmp, ignore_errors=True)
    make_dataset(tmp, n_train=10, n_test=min(n, POOL), seed=seed)
    folder = Data(tmp).test_images
    ids, pool = load_images(folder)
    rng = np.random.default_rng(seed + 1)
    taken = set(ids) | set(pd.read_csv(Data(tmp).train_csv, dtype=str)["id"])
    for j in range(len(ids), n):
        img = pool[j % len(pool)]
        v = j // len(pool)
        img = np.roll(img[:, ::-1] if v % 2 else img, v // 2, axis=1)
        if v % 4 >= 2:
            img = img[::-1]
        new = f"{rng.integers(16 ** 10):010x}"
        while new in taken:
            new = f"{rng.integers(16 ** 10):010x}"
        taken.add(new)
        ids.append(new)
        cv2.imwrite(str(folder / f"{new}.png"), np.ascontiguousarray(img))
    order = rng.permutation(len(ids))
    pd.DataFrame({"id": [ids[k] for k in order], "rle_mask": "1 1"}).to_csv(Data(tmp).sample_submission, index=False)
    shutil.rmtree(data, ignore_errors=True)
    tmp.rename(data)
    return data, Data(data).test_images


def main(argv=None) -> int:
    from classifier.presets import PRESETS as CLF
    from segmenter.presets import PRESETS as SEG

    ap = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/bench-predict"))
    ap.add_argument("--images", type=int, default=18000, help="synthetic test images to make (default 18000)")
    ap.add_argument("--test", type=Path, help="a folder of 101x101 PNGs to predict instead of synthetic ones")
    ap.add_argument("--preset", default="cpu", choices=sorted(SEG), help="the architectures (default cpu)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=None, help="the predict and submit commands' --chunk")
    ap.add_argument("--steps", default="segmenter,classifier,submit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stand-in", action="store_true",
                    help="networks with the models' outputs and next to no computation in place of the preset's: "
                         "the memory and time of the steps apart from the networks")
    args = ap.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    if not set(steps) <= {"segmenter", "classifier", "submit"} or not steps:
        raise UserError(f"--steps {args.steps}: choose from segmenter, classifier, submit")
    if args.test is None and args.images < 1:
        raise UserError(f"--images {args.images}: must be at least 1")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.test is not None:
        from training.predict import list_images

        data, images = out / "data-none", args.test
        data.mkdir(exist_ok=True)
        n = len(list_images(images)[0])
    else:
        t0 = time.time()
        data, images = test_images(out, args.images, args.seed)
        n = args.images
        print(f"{n} synthetic test images in {images} ({time.time() - t0:.0f} s)", flush=True)
    run = out / f"run-{'stand-in' if args.stand_in else args.preset}-{args.folds}"
    if not Out(run).tuning_json.is_file():
        builders = {"segmenter_builder": stand_in_segmenter, "classifier_builder": stand_in_classifier} \
            if args.stand_in else {}
        make_models(run, SEG[args.preset], CLF[args.preset], args.folds, **builders)
    py = sys.executable
    chunk = ["--chunk", args.chunk] if args.chunk else []
    commands = {
        "segmenter": [py, "-m", "segmenter.predict", "--out", run, "--images", images, "--name", "bench",
                      "--batch-size", args.batch_size, *chunk],
        "classifier": [py, "-m", "classifier.predict", "--out", run, "--images", images, "--name", "bench",
                       "--batch-size", args.batch_size, *chunk],
        "submit": [py, "-m", "ensemble.submit", "--data", data, "--out", run, "--pred", "bench", "--images", images,
                   *chunk],
    }
    results = {"machine": machine(), "images": n, "preset": "stand-in" if args.stand_in else args.preset,
               "folds": args.folds,
               "batch_size": args.batch_size, "chunk": args.chunk, "steps": {}}
    print(f"{'step':<12} {'images':>7} {'seconds':>8} {'images/s':>9} {'peak RSS':>10}  ({results['machine']})")
    for step in steps:
        res = run_step(commands[step], out / f"{step}.log")
        if res["rc"] != 0:
            tail = (out / f"{step}.log").read_text().strip().splitlines()[-1:]
            raise UserError(f"{out / f'{step}.log'}: {step} failed (exit {res['rc']}): {tail[0] if tail else ''}")
        res["images_per_s"] = round(n / res["seconds"], 1)
        results["steps"][step] = res
        print(f"{step:<12} {n:>7} {res['seconds']:>8.1f} {res['images_per_s']:>9.1f} "
              f"{res['peak_rss_mb'] / 1024:>7.2f} GB", flush=True)
    from salt.io import write_json

    write_json(out / "stream.json", results)
    return 0


if __name__ == "__main__":
    run_cli(main)
