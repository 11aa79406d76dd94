"""Reading the small text files users hand to snnas (spaces, profiles, architecture files).

Such a file is a few hundred bytes, yet a path can name a FIFO (opening it waits for a writer
forever), a device (``/dev/zero`` never ends), a huge file, or YAML nested thousands deep (the
parser recurses until Python gives up). ``read_small_text`` opens regular files only and reads
at most a bound; ``load_structured`` parses YAML (safe loader: no Python tags) or JSON and turns
every failure, nesting included, into one ``TextFileError`` line naming the file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml


class TextFileError(ValueError):
    """A text file cannot be read or parsed; the message names it and says why, in one line."""


def read_small_text(path: str | Path, *, limit_bytes: int, what: str = "file") -> str:
    """The text of a regular file of at most ``limit_bytes`` bytes (UTF-8)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise TextFileError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise TextFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise TextFileError(f"{path}: a folder, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise TextFileError(f"{path}: not a regular file (a device, pipe or socket); a {what} must be a file")
    if info.st_size > limit_bytes:
        raise TextFileError(f"{path}: {info.st_size:,} bytes; a {what} holds at most {limit_bytes:,}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never wait on a file swapped for a FIFO
        with os.fdopen(fd, "rb") as stream:
            data = stream.read(limit_bytes + 1)
    except OSError as exc:
        raise TextFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit_bytes:
        raise TextFileError(f"{path}: more than {limit_bytes:,} bytes; a {what} holds at most {limit_bytes:,}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load_structured(path: str | Path, *, limit_bytes: int, what: str = "file", json_format: bool = False) -> Any:
    """The YAML (or, with ``json_format``, JSON) document in a small regular file."""
    text = read_small_text(path, limit_bytes=limit_bytes, what=what)
    kind = "JSON" if json_format else "YAML"
    try:
        return json.loads(text) if json_format else yaml.safe_load(text)
    except RecursionError:
        raise TextFileError(f"{path}: {kind} nested too deeply to be a {what}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0][:120]
        raise TextFileError(f"{path}: malformed {kind}{where}: {problem}") from None
    except ValueError as exc:
        raise TextFileError(f"{path}: malformed {kind} ({str(exc)[:120]})") from None
