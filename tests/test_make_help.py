"""`make help` lists every target of the Makefile's .PHONY and every `?=` variable with its default, each
with its description; the reference here is what make itself reads from the Makefile (`make -pn`)."""
from __future__ import annotations

import os
import re
import subprocess

from conftest import REPO_ROOT


def _make(*args):
    # the Makefile's own defaults: none of its `?=` variables taken from this process's environment
    source = (REPO_ROOT / "Makefile").read_text()
    env = {k: v for k, v in os.environ.items() if not re.search(rf"^(export )?{re.escape(k)} *\?=", source, re.M)}
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO_ROOT), *args], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _declared():
    """The .PHONY targets and the `?=` variables with their defaults as written, from make's own database
    (make -pn prints `# makefile (from 'Makefile', line N)` above each variable of the Makefile)."""
    db = _make("-pn", "help").splitlines()
    phony = set()
    for line in db:
        if line.startswith(".PHONY:"):
            phony |= set(line.split(":", 1)[1].split())
    source = (REPO_ROOT / "Makefile").read_text().splitlines()
    variables = {}
    for k, line in enumerate(db[:-1]):
        m = re.match(r"# makefile \(from '.*Makefile', line (\d+)\)", line)
        if m and re.match(r"^(export )?[A-Z_]+ *\?=", source[int(m.group(1)) - 1]):
            name, _, value = db[k + 1].partition(" = ")  # make -p writes `NAME = value as written`
            variables[name.strip()] = value
    return phony, variables


def test_help_lists_every_target_and_variable_with_its_default():
    phony, variables = _declared()
    assert {"install", "demo", "submit", "test", "help"} <= phony
    assert {"DATA", "OUT", "PRESET", "FOLDS", "GPU", "BACKEND"} <= set(variables)
    lines = _make("help").splitlines()
    for target in phony:
        row = [ln for ln in lines if re.match(rf"\s+make {re.escape(target)}\s", ln)]
        assert len(row) == 1, f"make help lists {target!r} {len(row)} times"
        doc = row[0].split(None, 2)[2]
        assert doc.strip() not in ("", "?"), f"{target}: no `## ` line above it in the Makefile"
    for name, default in variables.items():
        row = [ln for ln in lines if ln.strip().startswith(f"{name}=")]
        assert len(row) == 1, f"make help lists {name} {len(row)} times"
        assert row[0].strip().startswith(f"{name}={default}"), (row[0], default)
        doc = row[0].strip()[len(f"{name}={default}"):].strip()
        assert doc and not doc.startswith("?"), f"{name}: no `## ` line above it in the Makefile"
    assert len(lines) == len(phony) + len(variables) + 2  # one line each, under two headings


def test_help_shows_a_value_given_on_the_command_line():
    lines = _make("help", "DATA=/somewhere/tgs").splitlines()
    test_row = [ln for ln in lines if ln.strip().startswith("TEST=")][0]
    assert "(now: /somewhere/tgs/test/images)" in test_row
