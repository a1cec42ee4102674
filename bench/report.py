"""The benchmark's table, in markdown."""
from __future__ import annotations

from bench.flops import NOTE


def _rate(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _gib(n) -> str:
    return "n/a" if n is None else f"{n / 2 ** 30:.2f} GiB"


def format_report(r: dict) -> str:
    """The throughput table of the networks, the fit/step table and the lines under them."""
    nets, dev, peak = r["networks"], r["device"], r["matmul"]
    mem = ("GPU peak bytes in use" if dev["gpu"] else "process peak RSS") + (
        "" if dev["gpu"] and dev["backend"] in ("torch", "tensorflow") else "; cumulative, in column order")

    def row(name, f):
        return "| " + name + " | " + " | ".join(f(m) for m in nets) + " |"

    def share(tflops):
        return f"{100 * tflops / peak['tflops']:.1f}%"

    lines = [
        f"## Benchmark on {dev['name']}: {dev['backend']} backend, {r['policy']}, "
        f"{'XLA (jit_compile)' if r['jit'] else 'no XLA'}",
        "",
        "| | " + " | ".join(m["label"] for m in nets) + " |",
        "|---|" + "---|" * len(nets),
        row("input", lambda m: m["input"]),
        row("parameters", lambda m: f"{m['params'] / 1e6:.2f} M"),
        row("forward GFLOPs / image", lambda m: f"{m['forward_flops'] / 1e9:.2f}"),
        row("training: batch, steps", lambda m: f"{m['batch']}, {m['warmup_steps']} warm-up + {m['timed_steps']} timed"),
        row("first step (compiles) s", lambda m: f"{m['first_step_s']:.2f}"),
        row("training step s (mean of timed)", lambda m: f"{m['step_s']:.3f}"),
        row("**training images/s**", lambda m: f"**{_rate(m['train_images_per_s'])}**"),
        row("training TFLOP/s (3x forward)", lambda m: f"{m['train_tflops']:.3f}"),
        row(f"share of measured {peak['dtype']} matmul", lambda m: share(m["train_tflops"])),
        row("**inference images/s** (flip TTA)", lambda m: f"**{_rate(m['infer_images_per_s'])}**"),
        row("inference: images, batch", lambda m: f"{m['infer_images']}, {m['infer_batch']} (2 passes/image)"),
        row("inference TFLOP/s", lambda m: f"{m['infer_tflops']:.3f}"),
        row(f"peak memory: {mem}", lambda m: _gib(m["peak_memory_bytes"])),
        "",
        f"Measured {peak['dtype']} matmul ({peak['n']}x{peak['n']}, {peak['iters']} iterations, keras.ops.matmul): "
        f"{peak['tflops']:.3f} TFLOP/s.",
        NOTE,
    ]
    if r.get("fit"):
        lines += ["", "The trainers' own `fit` epoch (batches, augmentation, learning-rate schedule, validation "
                      "score, checkpoint, CSV log) against the bare training steps it holds:", "",
                  "| network | batch | steps | validation images | fit epoch s | bare steps s | fit/step |",
                  "|---|---|---|---|---|---|---|"]
        for f in r["fit"]:
            lines.append(f"| {f['label']} | {f['batch']} | {f['steps']} | {f['val_images']} | {f['epoch_s']:.2f} | "
                         f"{f['steps'] * f['step_s']:.2f} | fit/step {f['fit_over_step']:.2f} |")
    base, seg = r.get("baseline") or {"skipped": "not run"}, nets[0]
    if "skipped" in base:
        lines.append(f"\nsegmentation_models: skipped ({base['skipped']})")
    else:
        lines.append(f"\nsegmentation_models Unet('seresnext50'): step {base['step_s']:.3f} s, ours "
                     f"{seg['step_s']:.3f} s: {base['step_s'] / seg['step_s']:.2f}x "
                     f"(theirs: {base['params'] / 1e6:.1f} M parameters, TensorFlow on {base['device']}, "
                     f"{base['policy']}, (N,128,128,3) input, 1 output, adam + binary_crossentropy, batch "
                     f"{base['batch']}, {base['warmup_steps']} warm-up + {base['timed_steps']} timed; ours: "
                     f"mask + salt + edge heads, the full preset's compiled loss)")
    return "\n".join(lines)
