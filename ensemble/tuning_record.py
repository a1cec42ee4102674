"""What the tuning wrote (OUT/ensemble/tuning.json, ensemble.tune), read in one place: its steps, the final
rules' scores, the chosen parameters, the sweeps; a tuning.json from before nested tuning reads too.
"""
from __future__ import annotations


def tuning_steps(t) -> list[dict]:
    """The tuning steps: each {name, kept, params, note, overall, folds (in-sample), nested {overall, folds},
    gains, gain_mean, gain_se}; a tuning.json from before nested tuning has no nested scores or gains."""
    return list(t.get("steps") or [])


def tuning_final(t) -> dict:
    """The final rules' out-of-fold score: {overall, folds} in-sample, and nested {overall, folds}."""
    return t.get("final") or {}


def nested(s) -> dict:
    """A step's (or the final rules') nested scores {overall, folds}, {} if it has none."""
    return (s or {}).get("nested") or {}


def tuning_params(t) -> dict:
    """The chosen rules, as ensemble.tune.apply_rules takes them."""
    return t["params"]


def tuning_sweeps(t) -> dict:
    """The score curves of each tuned parameter."""
    return t.get("sweeps") or {}


def tuning_folds(t) -> list[int]:
    return [int(k) for k in (t.get("folds") or [])]


def alone_params(t) -> dict:
    """The rules of the segmenter alone: the first step's mask threshold and nothing else."""
    steps = tuning_steps(t)
    thr = (steps[0].get("params") or {}).get("threshold") if steps else None
    return {"threshold": tuning_params(t)["threshold"] if thr is None else thr, "empty_rule": None, "min_area": 0,
            "vertical": False, "constant_empty": False}
