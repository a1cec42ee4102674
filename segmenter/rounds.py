"""The rounds a preset trains every fold through, and the rounds whose checkpoints are averaged: read from
the preset (segmenter.presets), for the trainer, the prediction and bench alike."""
from __future__ import annotations

from salt.cli import UserError


def all_rounds(preset: dict) -> list[dict]:
    """The rounds every fold trains: the preset's, then the pseudo-label round where it has one."""
    rounds = list(preset["rounds"])
    if preset.get("pseudo"):
        p = preset["pseudo"]
        rounds.append({"loss": "lovasz", "epochs": p["epochs"], "lr": p["lr"], "pseudo": True})
    return rounds


def snapshot_rounds(preset: dict) -> list[int]:
    """The rounds (1-based) whose best checkpoints are averaged, per fold, out of fold and on test:
    ``snapshots`` "last" (the last round), "lovasz" (every Lovasz round) or "all"."""
    rounds = all_rounds(preset)
    how = preset.get("snapshots", "last")
    if how == "last":
        return [len(rounds)]
    if how == "lovasz":
        return [r for r, rnd in enumerate(rounds, 1) if rnd["loss"] == "lovasz"] or [len(rounds)]
    if how == "all":
        return list(range(1, len(rounds) + 1))
    raise UserError(f"snapshots {how!r}: choose last, lovasz or all")
