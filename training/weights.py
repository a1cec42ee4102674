"""Encoder initialisation for both models: ImageNet weights from Keras' cache folder, or a file, or
random, and the record of which one a run got.

Both models look where Keras itself keeps downloaded weights, ``$KERAS_HOME/models`` (default
``~/.keras/models``). When the ImageNet weights are not there (offline, no file), training goes on from
random initialisation after one loud warning, and the run records ``encoder init: random``: no result
is ever presented as pretrained when it was not.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from salt.cli import UserError

_warned: set[str] = set()  # models whose "random initialisation" warning was printed in this process


def models_dir() -> Path:
    """Keras' cache folder for model files, read at call time: $KERAS_HOME/models, else ~/.keras/models."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def warn_random(name: str, reason: str, fix: str) -> None:
    """One boxed warning on stderr per model per process: the encoder starts from random weights."""
    if name in _warned:
        return
    _warned.add(name)
    bar = "!" * 78
    print(f"\n{bar}\n!! WARNING: no ImageNet weights for {name}: {reason}.\n"
          f"!! Training the encoder from RANDOM initialisation.\n!! {fix}\n{bar}\n", file=sys.stderr, flush=True)


def resolve(choice: str, find_imagenet: Callable[[], str | Path | None],
            label: str = "imagenet") -> tuple[str | None, str]:
    """(weights file or None, encoder init) for ``choice``: ``imagenet`` (``find_imagenet()`` returns the
    file, or None after its warning; the init is then ``label``, e.g. "imagenet (efficientnet-lite0)"),
    ``none``, or the path of a weights file."""
    if choice in (None, "none"):
        return None, "random"
    if choice == "imagenet":
        path = find_imagenet()
        return (str(path), label) if path else (None, "random")
    if not Path(choice).is_file():
        raise UserError(f"{choice}: encoder weights file not found (use imagenet, none or a weights file)")
    return str(choice), f"file:{choice}"
