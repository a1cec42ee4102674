"""Checks that need a Keras backend of their own run in a subprocess: the test file runs itself as a script
(``child_main``) with KERAS_BACKEND set, each named check prints one tagged JSON line, and the tests read
them (``run_children``, once per file and backend; ``child_result``). Used by tests/test_backends.py and
tests/test_learning.py."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAG = "CHILD_RESULT "


@functools.lru_cache(maxsize=None)
def run_children(script: str, backend: str, names: tuple[str, ...], args: tuple[str, ...] = ()) -> dict:
    """Runs the checks ``names`` of ``script`` (each given ``args``) in one subprocess with
    KERAS_BACKEND=backend: {name: its JSON result, or {"error": ...} where it printed none}."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", SALT_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, script, *args, "--", *names], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith(TAG):
            r = json.loads(line[len(TAG):])
            results[r.pop("name")] = r
    return {name: results.get(name, {"error": f"the subprocess failed (exit {proc.returncode}):\n"
                                              f"{proc.stderr[-4000:]}"}) for name in names}


def child_result(results: dict, name: str, what: str) -> dict:
    """One check's result; fails the test with the subprocess's error where it has one."""
    r = results[name]
    if "error" in r:
        raise AssertionError(f"{what} failed in the subprocess:\n{r['error'][-4000:]}")
    return r


def child_main(children: dict, argv: list[str]) -> None:
    """The script's side: ``ARG ... -- NAME ...``; each check ``children[NAME](*ARGs)`` in turn (one check's
    failure is its test's, and the next still runs), each printing its tagged result."""
    cut = argv.index("--")
    for name in argv[cut + 1:]:
        try:
            result = children[name](*argv[:cut])
        except Exception:
            result = {"error": traceback.format_exc()}
        print(TAG + json.dumps({"name": name, **result}), flush=True)
