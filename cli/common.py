"""Shared CLI pieces: output formats, the console, and the one-line error convention."""

from __future__ import annotations

import enum
import errno
import io
import os
import sys
import time
from pathlib import Path

from rich.console import Console

DEBUG_ENV = "SNNAS_DEBUG"


class _ClosedStdout(io.TextIOBase):
    """Stands in for a standard output the shell closed (``snnas zoo >&-``, where Python sets
    ``sys.stdout`` to None): a command that writes there fails in one line, and one that writes
    only files (a search) runs on."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError("standard output is closed (run the command with its output sent to a file or a pipe)")

    def isatty(self) -> bool:
        return False


if sys.stdout is None:
    sys.stdout = _ClosedStdout()
if sys.stderr is None:  # nothing can be said; errors still end the command with its exit code
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process

# Written to a file or a pipe, tables get room for long layer names instead of rich's 80 columns;
# messages on stderr are never wrapped (one error, one line).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"


class CliError(Exception):
    """A user-facing error: printed as one line on stderr, exit code 2."""


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def report_error(exc: BaseException) -> int:
    """Print ``exc`` as one line on stderr and return the exit code."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:  # "[Errno 28] ..." says less than the file and the reason
        where = exc.filename or ("the output folder" if exc.errno == errno.ENOSPC else None)
        message = f"{where}: {exc.strerror.lower()}" if where else exc.strerror
        if exc.errno == errno.ENOSPC:
            message += "; free some space and rerun the same command (finished work is kept)"
    if isinstance(exc, KeyError) and message.startswith(("'", '"')):
        message = message[1:-1]  # KeyError quotes its message
    known = (CliError, ValueError, KeyError, OSError)
    prefix = "error" if isinstance(exc, known) else f"internal error ({type(exc).__name__})"
    hint = "" if isinstance(exc, known) else f" (set {DEBUG_ENV}=1 or pass --debug for the traceback)"
    print(f"snnas: {prefix}: {message}{hint}", file=sys.stderr)
    return 2


def resolve_device(name: str):
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available (use --device auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise CliError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (see ``nas.files.atomic_write``)."""
    from snnas.nas.files import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
    except OSError as exc:
        raise CliError(f"{path}: cannot write ({exc.strerror or exc})") from None


def tenths(message, *, after_s: float = 0.0):
    """A ``progress(done, total)`` callback that prints ``message(done, total)`` on stderr at every
    tenth of the work, one line each (readable in a log file as on a terminal); nothing until
    ``after_s`` seconds have passed, so quick work stays quiet."""
    start, shown = time.monotonic(), [0]

    def progress(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth > shown[0] and time.monotonic() - start >= after_s:
            shown[0] = tenth
            err_console.print(message(done, total), markup=False, highlight=False)

    return progress


def load_data(spec: str):
    """``nas.data.load_dataset`` with the first reading of an event dataset (thousands of recordings,
    before the frame cache exists) reported on stderr at every tenth, one line each."""
    from snnas.nas.data import load_dataset

    return load_dataset(spec, progress=tenths(
        lambda done, total: f"reading {spec}: {done:,} of {total:,} recordings (frames are cached for later runs)"))
