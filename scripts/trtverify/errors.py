"""One user-facing error type, and the wrapper every script's ``main`` runs under.

A ``UserError`` is something the user can fix (a missing file, a bad shape, a backend that is not installed): it is
printed as one line, ``error: ...``, and the script exits 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence


class UserError(Exception):
    """A problem with the user's input or environment; the message says what is wrong and what to do."""


class MissingBackendError(UserError):
    """A framework a step needs (TensorFlow, ONNX Runtime, TensorRT, pycuda) is not importable here."""


def require(module: str, *, purpose: str, hint: str) -> Any:
    """Import ``module`` or raise MissingBackendError naming what needs it and how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingBackendError(
            f"{purpose} needs the Python module '{module}', which is not importable here ({exc}). {hint}"
        ) from None


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None, *,
             quick_exit: bool = False) -> None:
    """Run ``main``; turn a UserError into a one-line message on stderr and exit status 1.

    Set TRTVERIFY_VERBOSE=1 to see the traceback of a user error too. ``quick_exit``: once ``main`` has returned or
    failed with a UserError, flush stdout and stderr and end the process without the interpreter's teardown (which
    frees every object of every module: 20 ms of compare.py's 0.2 s, 2026-12-05), for a program that has closed
    all its outputs and joined its threads by then and registers no atexit work. A bug's traceback ends the
    process as usual, and so does a process under a profiler or a tracer (``python -m cProfile -o``, coverage),
    whose statistics are written on the way out.
    """
    try:
        code = main(argv) or 0
    except UserError as exc:
        if os.environ.get("TRTVERIFY_VERBOSE"):
            raise
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "trtverify"
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = 1
    if quick_exit and sys.getprofile() is None and sys.gettrace() is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
