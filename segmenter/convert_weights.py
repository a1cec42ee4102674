"""Convert an encoder's PyTorch ImageNet checkpoint into the Keras weights file its models load.

    python -m segmenter.convert_weights --torch se_resnext50_32x4d-a260b3a4.pth --out FILE.weights.h5
    python -m segmenter.convert_weights --encoder efficientnet_lite0 --torch FILE.pth --out FILE.weights.h5

Training does this by itself on first use (segmenter.encoders.pretrained.find_imagenet); this command is
for a checkpoint kept elsewhere. The output is an HDF5 file with one group per Keras layer holding the
Keras variables by name; the mapping is the encoder's own (its registry entry's ``to_keras``). The
checkpoint is read without torch (training.torchfile).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from salt.cli import run_cli
from segmenter import encoders
from segmenter.encoders import pretrained


def convert(torch_path, out_path, encoder: str = "seresnext50"):
    """Convert the checkpoint ``torch_path`` of ``encoder`` into the Keras weights file ``out_path``
    (atomic: nothing is left behind when the checkpoint is refused)."""
    return pretrained.convert(encoders.get(encoder).pretrained, Path(torch_path), Path(out_path))


def main(argv=None):
    names = [n for n, e in encoders.ENCODERS.items() if e.pretrained]
    p = argparse.ArgumentParser(prog="python -m segmenter.convert_weights", description=__doc__.split("\n")[0])
    p.add_argument("--encoder", default="seresnext50", choices=names, help="the checkpoint's encoder")
    p.add_argument("--torch", required=True, help="the PyTorch state dict (.pth)")
    p.add_argument("--out", required=True, help="output Keras weights file (.weights.h5)")
    args = p.parse_args(argv)
    print(f"wrote {convert(args.torch, args.out, args.encoder)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
