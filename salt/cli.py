"""The project's command-line tools: one-line error handling, a quiet console, settings printed as a table."""
from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Callable, NoReturn


class UserError(Exception):
    """Bad input or usage; the message is one line naming the file and the problem."""


def run_cli(main: Callable[[list[str] | None], int | None]) -> NoReturn:
    """Run main(sys.argv[1:]) and exit with its return value (None -> 0).

    UserError -> "error: <msg>" on stderr, exit 2 (no traceback); KeyboardInterrupt -> exit 130.
    """
    try:
        code = main(sys.argv[1:])
    except UserError as e:
        msg = " ".join(str(e).split("\n")).strip() or type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(int(code or 0))


# ------------------------------------------------------------------------------------------ quiet console
# What TensorFlow, XLA and CUDA's C++ libraries print while they load, before any log level is read:
# absl's "I0000 00:00:...  file.cc:12] ..." lines (oneDNN, cuInit, CPU instructions, cuDNN/cuBLAS factories),
# their preamble and the continuation of the CPU-instructions line.
_CHATTER = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
                      r"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\]"
                      r"|To enable the following instructions:"
                      r"|WARNING: Logging before flag parsing goes to stderr)")
_quieted = False


def is_chatter(line: str) -> bool:
    """Whether a line of stderr is the C++ libraries' load-time chatter (`quiet_console`)."""
    return bool(_CHATTER.match(line))


def quiet_console() -> None:
    """Silence TensorFlow's, XLA's and absl's log lines before TensorFlow is imported; call it first thing.

    Sets TF_CPP_MIN_LOG_LEVEL=3 and absl's Python verbosity (unless already set), then imports Keras (and so
    its backend) with the process's stderr caught, and writes back every line that is not load-time
    chatter. The project's own warnings (a random encoder initialisation, a GPU the backend cannot see) are
    printed later, by the project, and stay. Does nothing the second time."""
    global _quieted
    if _quieted:
        return
    _quieted = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        from absl import logging as absl_logging  # absl-py comes with TensorFlow and JAX

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    if "keras" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (an embedding host): import as it is
        import keras  # noqa: F401
        return
    with tempfile.TemporaryFile(mode="w+b") as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import keras  # noqa: F401  (imports the backend: TensorFlow, JAX or PyTorch)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not is_chatter(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ settings
def _short(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float, str)) and not isinstance(x, bool) for x in v):
        return "-".join(_short(x) for x in v) if all(not isinstance(x, str) for x in v) else ", ".join(map(str, v))
    if isinstance(v, dict):
        return ", ".join(f"{k} {_short(x)}" if not isinstance(x, dict) else f"{k} ({_short(x)})" for k, x in v.items())
    return str(v)


def _wrap_items(text: str, width: int) -> list[str]:
    """Lines of at most about `width` characters, broken after the commas of "a 1, b 2, c 3"."""
    lines = [""]
    for item in text.split(", "):
        if lines[-1] and len(lines[-1]) + 2 + len(item) > width:
            lines[-1] += ","
            lines.append(item)
        else:
            lines[-1] += (", " if lines[-1] else "") + item
    return lines


def settings_table(settings: dict, title: str = "", width: int = 100) -> str:
    """A preset (a dict of settings) as a short table of text for the console: one setting or group of
    settings a line ("augment  hflip yes, shift 0.08, ..."), a list of stages or rounds one line each, long
    lines wrapped under their value."""
    rows = []
    for k, v in settings.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            singular = k[:-1] if k.endswith("s") else k
            for i, item in enumerate(v, 1):
                label = f"{singular} {i}" + (f" {item['name']}" if "name" in item else "")
                rows.append((label, _short({a: b for a, b in item.items() if a != "name"})))
        else:
            rows.append((k, _short(v)))
    key_w = max((len(k) for k, _ in rows), default=0)
    lines = [title] if title else []
    for k, v in rows:
        wrapped = _wrap_items(v, max(width - key_w - 4, 30))
        lines.append(f"  {k:<{key_w}}  {wrapped[0]}")
        lines += [f"  {'':<{key_w}}  {w}" for w in wrapped[1:]]
    return "\n".join(lines)
