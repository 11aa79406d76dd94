"""The study journal on one machine: Optuna's journal file, its lock, and repairs of damage.

Optuna appends one JSON record per line, each write under a lock: a symbolic link
``study.journal.lock`` that the writer removes when done. Two things can go wrong.

* A writer killed while it holds the lock leaves the link behind. Optuna breaks a lock that has
  not changed for its grace period, but it judges that by ``os.stat``, which follows the link:
  a link to a relative path (what snnas wrote before it passed absolute paths) points nowhere
  from the lock's own folder, and the lock was then never broken. ``JournalLock`` judges the
  link itself (``os.lstat``), so a stale lock is broken after the grace period whatever it points
  to, and says so once.
* A write cut short (a kill, a full disk) leaves a partial last line; Optuna skips it while it is
  last, but the next record appended after it shares its line and the study can no longer be
  read. A byte damaged anywhere else (a disk, a hand edit) makes its line unreadable too.
  ``open_journal`` moves such records aside to a named backup (``study.journal.torn-<time>`` or
  ``.damaged-<time>``) and says in one line which bytes and which trials they touched. Optuna
  replays the records in order and numbers trials by their creation records, so a damaged
  creation record is rebuilt (from its own readable fields, else its neighbours') rather than
  dropped: dropping it would renumber every later trial. Where that cannot be done safely, and
  for valid JSON that is not an Optuna record at all, nothing is changed and a ``JournalError``
  names the journal and the bytes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from snnas.nas.files import atomic_write

log = logging.getLogger(__name__)
LOCK_GRACE_S = 30.0  # Optuna's default: a lock unchanged this long belongs to a writer that is gone
REPAIR_WORKER = "snnas-journal-repair"  # the worker_id of a creation record rebuilt by a repair
CREATE_STUDY, CREATE_TRIAL = 0, 4
STUDY_NAME = r'"([^"\\\x00-\x1f]+)"\s*(?=[,}])'  # a whole JSON string with no escapes, then the next field
TRIAL_OPS = {5: "a parameter", 6: "state and values", 7: "an intermediate value", 8: "a user attribute",
             9: "a system attribute"}
STUDY_OPS = {1: "the study's deletion", 2: "a study attribute", 3: "a study system attribute"}


class JournalError(ValueError):
    """A journal snnas will not change: not an Optuna journal, or damage it cannot repair safely."""


class JournalLock(JournalFileSymlinkLock):
    """Optuna's symlink lock, with a stale lock told by the link itself (``os.lstat``): it is broken
    once it has not changed for ``grace_s`` seconds, or at once (after a second's look) when its
    own timestamp is already that old, e.g. a lock left by a run killed minutes ago."""

    def __init__(self, path: str, grace_s: float = LOCK_GRACE_S) -> None:
        super().__init__(path, grace_period=None)
        self.grace_period = grace_s  # Optuna's own check would refuse, or warn about, a short test grace

    def acquire(self) -> bool:
        delay, seen, since = 0.001, None, time.monotonic()
        while True:
            try:
                os.symlink(self._lock_target_file, self._lock_file)
                return True
            except FileExistsError:
                pass
            try:
                stat = os.lstat(self._lock_file)
            except FileNotFoundError:
                continue  # released meanwhile
            now = time.monotonic()
            if (stat.st_ino, stat.st_mtime_ns) != seen:
                seen, since = (stat.st_ino, stat.st_mtime_ns), now
            elif now - since > self.grace_period or (now - since >= 1.0 and
                                                     time.time() - stat.st_mtime > self.grace_period):
                self._break(stat)
                delay = 0.001
                continue
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _break(self, stale: os.stat_result) -> None:
        """Remove the stale lock ``stale``; one taken meanwhile by a live writer is put back."""
        aside = f"{self._lock_file}.{os.getpid()}.{time.monotonic_ns()}.stale"
        try:
            os.rename(self._lock_file, aside)
        except FileNotFoundError:
            return  # another waiter broke it first
        if os.lstat(aside).st_ino != stale.st_ino:  # a live writer's fresh lock: give it back
            try:
                os.link(aside, self._lock_file, follow_symlinks=False)
            except FileExistsError:
                pass
            os.unlink(aside)
            return
        os.unlink(aside)
        age = time.time() - stale.st_mtime
        log.warning("broke a stale journal lock %s (left %.0f s ago by a writer that stopped while writing)",
                    self._lock_file, age)


@dataclass
class Repair:
    backup: Path | None  # where the bytes set aside went (None: nothing was set aside)
    dropped_bytes: int
    kept_records: int = 0  # complete records found after a partial one on the same line
    torn: list[str] = field(default_factory=list)  # records cut short by an interrupted write
    damaged: list[str] = field(default_factory=list)  # complete lines that could not be read
    joined: list[str] = field(default_factory=list)  # where a lost line break joined two whole records

    def __str__(self) -> str:
        parts = []
        if self.torn:
            kept = f", {self.kept_records} complete record(s) after it kept" if self.kept_records else ""
            parts.append(f"a record cut short by an interrupted write ({'; '.join(self.torn)}){kept}")
        if self.damaged:
            many = len(self.damaged) > 1
            parts.append(f"{len(self.damaged) if many else 'a'} damaged record{'s' if many else ''} "
                         f"({'; '.join(self.damaged)}); every other record kept")
        if self.joined:
            parts.append(f"two records on one line (a line break lost at {', '.join(self.joined)}), both kept")
        moved = f"; moved to {self.backup}" if self.backup else ""
        return f"the study journal held {' and '.join(parts)}{moved}"


@dataclass
class _Piece:
    """A stretch of the journal: a record (``record`` set), or bytes set aside (``kind``)."""

    start: int
    raw: bytes
    kind: str  # record | torn | damaged
    record: dict | None = None
    after_torn: bool = False  # a whole record on the line of a torn one
    joined: bool = False  # a whole record whose line break was lost: the next record shares its line

    @property
    def span(self) -> str:
        return f"bytes {self.start}-{self.start + len(self.raw)}"


def _lines(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, line without its newline, whether it had one), split on b'\\n' only, as Optuna reads."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end == -1:
            yield start, data[start:], False
            return
        yield start, data[start:end], True
        start = end + 1


def _optuna_like(value) -> bool:
    return isinstance(value, dict) and ("op_code" in value or "worker_id" in value)


def _parse(path: Path, start: int, line: bytes) -> dict | None:
    """The record on ``line``; None when it is not JSON; JournalError when it is JSON but foreign."""
    try:
        value = json.loads(line)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return None
    if not _optuna_like(value):
        snippet = line[:40].decode("utf-8", "replace")
        raise JournalError(f"{path}: bytes {start}-{start + len(line)} hold JSON that is not an Optuna journal "
                           f"record ({snippet!r}); not changed: move that line (or the file) aside and rerun")
    return value


def _split_torn(start: int, line: bytes) -> list[_Piece] | None:
    """A line holding a partial record and then a whole one (a write appended after a torn one), or
    two whole ones (a damaged line break): the pieces, or None when no whole record follows."""
    at = line.find(b'{"op_code"', 1)
    while at != -1:
        try:
            record = json.loads(line[at:])
        except ValueError:
            at = line.find(b'{"op_code"', at + 1)
            continue
        if not _optuna_like(record):
            return None
        first, end = _whole(line[:at])
        if first is None:
            return [_Piece(start, line[:at], "torn"), _Piece(start + at, line[at:], "record", record, True)]
        return [_Piece(start, line[:end], "record", first, joined=True),
                _Piece(start + at, line[at:], "record", record)]
    return None


def _whole(text: bytes) -> tuple[dict | None, int]:
    """The whole record ``text`` holds, perhaps followed by the one byte that was its line break,
    and where it ends; (None, 0) if it holds none."""
    try:
        decoded = text.decode("utf-8")
        value, end = json.JSONDecoder().raw_decode(decoded)
    except ValueError:
        return None, 0
    if not _optuna_like(value) or len(decoded) - end > 1:
        return None, 0
    return value, len(decoded[:end].encode("utf-8"))


def _pieces(path: Path, data: bytes) -> list[_Piece]:
    pieces: list[_Piece] = []
    for start, line, ended in _lines(data):
        if not ended:
            _parse(path, start, line)  # foreign JSON is refused even as a last line
            pieces.append(_Piece(start, line, "torn"))
            continue
        record = _parse(path, start, line)
        if record is not None:
            pieces.append(_Piece(start, line, "record", record))
        elif pieces and pieces[-1].kind == "damaged" and pieces[-1].start + len(pieces[-1].raw) + 1 == start:
            pieces[-1].raw += b"\n" + line  # one record split by a damaged byte that reads as a newline
        else:
            pieces.extend(_split_torn(start, line) or [_Piece(start, line, "damaged")])
    return pieces


def _field(text: str, name: str, pattern: str = r"(\d+)") -> str | None:
    found = re.search(rf'"{name}"\s*:\s*{pattern}', text)
    return found.group(1) if found else None


def _op(text: str) -> int | None:
    """The op code of a damaged record, from its first field (Optuna writes op_code first)."""
    found = re.match(r'\s*\{[^:,]{0,12}:\s*(\d{1,2})\s*,', text)
    return int(found.group(1)) if found else None


def _creates(text: str) -> str | None:
    """Whether a damaged record created a study or a trial (what numbering depends on), judged by
    the fields a single damaged byte leaves readable: 'study', 'trial' or None."""
    if '"trial_id"' in text:
        return None
    if '"study_name"' in text or _op(text) == CREATE_STUDY:
        return "study"
    if '"state"' in text and '"params"' not in text:  # a state change whose trial_id key is damaged
        return None
    if '"user_attr"' in text or '"system_attr"' in text:  # a study attribute
        return None
    if _op(text) == CREATE_TRIAL or '"datetime_start"' in text:
        return "trial"
    return None


def _iso(value: str | None) -> str | None:
    try:
        return datetime.fromisoformat(value).isoformat() if value else None
    except ValueError:
        return None


class _Replay:
    """Optuna's replay of the records kept so far: what trial ids exist and which number each has."""

    def __init__(self) -> None:
        from optuna.storages.journal._storage import JournalStorageReplayResult

        self.result = JournalStorageReplayResult("snnas-journal-check-")
        self.last_time: str | None = None

    def apply(self, record: dict) -> bool:
        """Apply ``record``; False (nothing applied) when Optuna cannot."""
        try:
            self.result.apply_logs([record])
        except Exception:  # noqa: BLE001 - whatever Optuna raises on a record it cannot apply
            return False
        self.last_time = _iso(record.get("datetime_complete") or record.get("datetime_start")) or self.last_time
        return True

    def dangling(self, record: dict) -> bool:
        """Whether ``record`` refers to a trial or study not created before it (never in a journal
        Optuna wrote: a creation record is missing, and later trials would be renumbered)."""
        op = record.get("op_code")
        if op in TRIAL_OPS:
            return not isinstance(record.get("trial_id"), int) or record["trial_id"] >= len(self.result._trials)
        if op in STUDY_OPS or op == CREATE_TRIAL:
            return not isinstance(record.get("study_id"), int) or record["study_id"] >= self.result._next_study_id
        return False

    def number(self, trial_id: int | None) -> int | None:
        trial = self.result._trials.get(trial_id) if trial_id is not None else None
        return None if trial is None else trial.number

    def study_count(self) -> int:
        return self.result._next_study_id


def _rebuilt(text: str, what: str, replay: _Replay) -> dict | None:
    """A creation record to stand for a damaged one, from its readable fields (None: cannot)."""
    if what == "study":
        name, directions = _field(text, "study_name", STUDY_NAME), _field(text, "directions", r"\[([\d,\s]+)\]")
        if not name or not re.findall(r"\d+", directions or ""):
            return None
        return {"op_code": CREATE_STUDY, "worker_id": REPAIR_WORKER, "study_name": name,
                "directions": [int(d) for d in re.findall(r"\d+", directions)]}
    study = _field(text, "study_id")
    if study is None or int(study) >= replay.study_count():
        if replay.study_count() != 1:
            return None  # several studies: which one it belonged to cannot be told
        study = "0"
    start = _iso(_field(text, "datetime_start", r'"([^"]*)"')) or replay.last_time
    return {"op_code": CREATE_TRIAL, "worker_id": REPAIR_WORKER, "study_id": int(study), "datetime_start": start}


def _what(text: str) -> str:
    """What a damaged record recorded, from its op code or else its readable keys."""
    op = _op(text)
    if '"study_id"' in text and '"trial_id"' not in text:
        return STUDY_OPS.get(op) or STUDY_OPS[3 if '"system_attr"' in text else 2]
    if op in TRIAL_OPS or op in STUDY_OPS:
        return TRIAL_OPS.get(op) or STUDY_OPS[op]
    for key, name in (("param_name", 5), ("user_attr", 8), ("system_attr", 9), ("intermediate_value", 7),
                      ("state", 6)):
        if f'"{key}"' in text:
            return TRIAL_OPS[name]
    return "a record of unknown kind"


@dataclass
class _Damage:
    piece: _Piece
    text: str
    trial_id: int | None = None  # read from the record, or judged from its neighbours
    guessed: bool = False
    rebuilt: str = ""  # 'study' or 'trial' when it was a creation record, rebuilt

    def describe(self, replay: _Replay) -> str:
        if self.rebuilt == "study":
            return f"{self.piece.span}: the record that created the study, rebuilt from its readable fields"
        if self.rebuilt == "repeat" or (self.rebuilt == "" and _creates(self.text) == "study"):
            return f"{self.piece.span}: a rerun's repeated creation of the study, which changes nothing"
        number = replay.number(self.trial_id)
        if self.rebuilt == "trial":
            return f"{self.piece.span}: the record that created trial {number}, rebuilt so later trials keep their numbers"
        what = _what(self.text)
        if what in STUDY_OPS.values():
            return f"{self.piece.span}: {what}"
        if number is None:
            return f"{self.piece.span}: {what}, of no trial that can be told"
        guess = ", judging by the records around it" if self.guessed else ""
        unfinished = replay.result._trials[self.trial_id].state.name == "RUNNING"
        return (f"{self.piece.span}: {what} of trial {number}{guess}"
                f"{', now unfinished (a rerun retries it)' if unfinished else ''}")


def _refuse(path: Path, pieces: list[_Piece], why: str) -> JournalError:
    spans = ", ".join(p.span for p in pieces)
    return JournalError(f"{path}: damaged record at {spans}; {why}, so the journal is left as it is (restore a "
                        "backup copy, or cut the file before that byte and lose the trials after it)")


class _Repairer:
    """Replays the pieces in order as Optuna would: keeps the records it can apply, sets the rest
    aside (rebuilding creation records), and refuses where setting aside would renumber trials."""

    def __init__(self, path: Path) -> None:
        self.path, self.replay = path, _Replay()
        self.kept: list[bytes] = []
        self.damage: list[_Damage] = []
        self.uncertain: list[_Piece] = []  # set aside, and perhaps the creation of a trial later records use
        self.previous: int | None = None  # the trial of the latest trial record kept
        self.waiting: list[_Damage] = []  # damaged trial records of no readable trial, until the next one

    def run(self, pieces: list[_Piece]) -> None:
        for piece in pieces:
            if piece.kind == "torn":
                if b'"trial_id"' not in piece.raw:
                    self.uncertain.append(piece)
            elif piece.kind != "record" or not self._keep(piece):
                self._set_aside(piece)
        for d in self.waiting:  # damage after the last trial record: judged by the one before
            d.trial_id, d.guessed = self.previous, True

    def _keep(self, piece: _Piece) -> bool:
        record = piece.record
        if self.replay.dangling(record):
            if self.uncertain:
                raise _refuse(self.path, self.uncertain, f"a later record (bytes {piece.start}-) refers to a trial "
                              "or study it may have created, and setting it aside would renumber later trials")
            return False
        trials = len(self.replay.result._trials)
        if not self.replay.apply(record):
            return False
        self.kept.append(piece.raw + b"\n")
        created = len(self.replay.result._trials) > trials
        trial_id = trials if created else record.get("trial_id")
        if isinstance(trial_id, int):
            self._neighbour(trial_id, created)
        return True

    def _neighbour(self, trial_id: int, created: bool) -> None:
        """A trial record kept: damaged ones waiting since the last are judged to be that trial's
        when it is the same trial, or when this one starts a new trial."""
        for d in self.waiting:
            if created or trial_id == self.previous:
                d.trial_id, d.guessed = self.previous, True
        self.waiting, self.previous = [], trial_id

    def _set_aside(self, piece: _Piece) -> None:
        d = _Damage(piece, piece.raw.decode("utf-8", "replace"))
        self.damage.append(d)
        what = _creates(d.text)
        if what == "study" and self.replay.study_count():
            what = self._repeated_study(d)
            if what is None:
                return
        if what is not None:
            self._rebuild(d, what)
            return
        own = _field(d.text, "trial_id")
        if own is not None:
            d.trial_id = int(own)
        else:
            self.uncertain.append(piece)
            if _what(d.text) not in STUDY_OPS.values():
                self.waiting.append(d)

    def _repeated_study(self, d: _Damage) -> str | None:
        """A damaged study creation after the first: every rerun writes one, which Optuna ignores
        for a name it knows ('study' to rebuild one of a new name; None to set it aside)."""
        name = _field(d.text, "study_name", STUDY_NAME)
        if name is not None and name not in {s.study_name for s in self.replay.result._studies.values()}:
            return "study"
        d.rebuilt = "repeat" if name is not None else ""
        if name is None:  # perhaps a new study's: a later record using it is refused, not renumbered
            self.uncertain.append(d.piece)
        return None

    def _rebuild(self, d: _Damage, what: str) -> None:
        before = (self.replay.study_count(), len(self.replay.result._trials))
        stand_in = _rebuilt(d.text, what, self.replay)
        if stand_in is None or not self.replay.apply(stand_in) or \
                (self.replay.study_count(), len(self.replay.result._trials)) == before:
            raise _refuse(self.path, [d.piece], f"it created the {what} and cannot be rebuilt from what is readable")
        d.rebuilt = what
        self.kept.append(json.dumps(stand_in, separators=(",", ":")).encode() + b"\n")
        if what == "trial":
            d.trial_id = before[1]
            self._neighbour(before[1], True)


def _repair(path: Path) -> Repair | None:
    data = path.read_bytes()
    pieces = _pieces(path, data)
    repairer = _Repairer(path)
    repairer.run(pieces)
    kept, damage, replay = repairer.kept, repairer.damage, repairer.replay
    torn = [p for p in pieces if p.kind == "torn"]
    joined = [f"byte {p.start + len(p.raw)}" for p in pieces if p.joined]
    if not damage and not torn and not joined:
        return None
    if damage and not any(p.kind == "record" for p in pieces):
        raise JournalError(f"{path}: no readable journal record in {len(data)} bytes; not changed: is it a study "
                           "journal?")
    aside = {id(p) for p in torn} | {id(d.piece) for d in damage}
    set_aside = [p.raw for p in pieces if id(p) in aside]  # in the order they stood in the journal
    kind = "damaged" if damage else "torn"
    backup = path.with_name(f"{path.name}.{kind}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    if set_aside:
        backup.write_bytes(b"\n".join(set_aside) + b"\n")
    atomic_write(path, b"".join(kept))
    return Repair(backup if set_aside else None, sum(len(raw) for raw in set_aside), sum(p.after_torn for p in pieces),
                  torn=[_describe_torn(p, replay) for p in torn], damaged=[d.describe(replay) for d in damage],
                  joined=joined)


def _describe_torn(piece: _Piece, replay: _Replay) -> str:
    trial_id = _field(piece.raw.decode("utf-8", "replace"), "trial_id")
    number = replay.number(int(trial_id)) if trial_id is not None else None
    return f"{piece.span}, {len(piece.raw)} bytes" + (f", of trial {number}" if number is not None else "")


def repair_journal(path: Path, *, lock_grace_s: float = LOCK_GRACE_S) -> Repair | None:
    """Under the journal's own lock, move unreadable records aside; None when the journal is whole.
    Raises JournalError, changing nothing, for a journal it cannot repair safely."""
    path = Path(os.path.abspath(path))
    if not path.is_file():
        return None
    lock = JournalLock(str(path), lock_grace_s)
    lock.acquire()
    try:
        return _repair(path)
    finally:
        _release(lock)


def _release(lock: JournalLock) -> None:
    try:
        lock.release()
    except RuntimeError:  # broken by another process that took us for stale: nothing left to remove
        log.warning("the journal lock %s was gone when released", lock._lock_file)


def open_journal(path: Path, *, lock_grace_s: float = LOCK_GRACE_S) -> tuple[JournalStorage, Repair | None]:
    """The journal storage at ``path`` (created if absent, under its absolute path), repaired first if
    a write was cut short or a record damaged."""
    path = Path(os.path.abspath(path))
    repaired = repair_journal(path, lock_grace_s=lock_grace_s)
    backend = JournalFileBackend(str(path), lock_obj=JournalLock(str(path), lock_grace_s))
    return JournalStorage(backend), repaired

