"""The study journal on one machine: Optuna's journal file, repaired after a write cut short.

Optuna appends one JSON record per line, each write under a lock. A process killed during a
write (or a full disk) leaves a partial last line; Optuna skips it while it is last, but the
next record appended after it shares its line, and from then on the study cannot be read
("Extra data: line 1 column ..."). ``open_journal`` takes the same lock, moves any partial
record aside to a named backup (``study.journal.torn-<time>``), keeps the records that follow
one on the same line, and says what it did, so a study survives every interruption.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from nas.files import atomic_write


@dataclass
class Repair:
    backup: Path
    dropped_bytes: int
    kept_records: int  # complete records found after a partial one on the same line

    def __str__(self) -> str:
        kept = f", {self.kept_records} complete record(s) after it kept" if self.kept_records else ""
        return (f"the study journal held a record cut short by an interrupted write ({self.dropped_bytes} bytes); "
                f"moved to {self.backup}{kept}")


def _split_record(line: bytes) -> tuple[bytes, list[bytes]]:
    """A damaged line: (the partial prefix, the complete records that follow it on the line)."""
    text = line.rstrip(b"\n")
    start = text.find(b'{"op_code"', 1)
    while start != -1:
        try:
            json.loads(text[start:])
            return text[:start], [text[start:]]
        except json.JSONDecodeError:
            start = text.find(b'{"op_code"', start + 1)
    return text, []


def _repair(path: Path) -> Repair | None:
    data = path.read_bytes()
    if not data:
        return None
    lines = data.splitlines(keepends=True)
    good: list[bytes] = []
    dropped: list[bytes] = []
    kept = 0
    for line in lines:
        try:
            if not line.endswith(b"\n"):
                raise ValueError
            json.loads(line)
            good.append(line)
        except ValueError:  # JSONDecodeError is a ValueError
            prefix, records = _split_record(line if line.endswith(b"\n") else line + b"\n")
            dropped.append(prefix)
            if line.endswith(b"\n"):
                good.extend(record + b"\n" for record in records)
                kept += len(records)
    if not dropped:
        return None
    backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    backup.write_bytes(b"\n".join(dropped) + b"\n")
    atomic_write(path, b"".join(good))
    return Repair(backup, sum(len(d) for d in dropped), kept)


def repair_journal(path: Path) -> Repair | None:
    """Under the journal's own lock, move partial records aside; None when the journal is whole."""
    if not path.is_file():
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()  # a lock left by a killed writer is broken after Optuna's grace period
    try:
        return _repair(path)
    finally:
        lock.release()


def open_journal(path: Path) -> tuple[JournalStorage, Repair | None]:
    """The journal storage at ``path`` (created if absent), repaired first if a write was cut short."""
    repaired = repair_journal(path)
    return JournalStorage(JournalFileBackend(str(path))), repaired
