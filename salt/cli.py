"""One-line error handling for the project's command-line tools."""
from __future__ import annotations

import sys
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
