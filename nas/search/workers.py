"""Many workers on one study, and surviving their deaths.

Optuna's storages do the sharing: a journal file for one machine, an RDB (PostgreSQL) for
many. snnas adds what the ask/tell loop needs on top:

* liveness: every trial records its worker (a random id, the host, the pid and the process's
  start time) and, on every storage, a heartbeat every ``heartbeat_s`` seconds while it runs.
  A RUNNING trial is orphaned when its process is gone or its pid now belongs to another
  process (on this host), or when no heartbeat came for twice the interval (any host, and a
  trial never stamped because its worker died between ask and stamp). A rerun therefore never
  waits longer than that grace for a trial no live worker owns.
* retries: a trial whose worker died (not one whose candidate failed) is failed and its
  parameters are enqueued again (``retry_of``), so nothing is lost and it is not counted twice.
* budget: a trial counts when it completed or its candidate failed; a worker claims a slot
  only if fewer than ``budget`` trials before it are counted or running, so several workers
  never overshoot.
* local worker processes die with the process that started them (parent-death signal on
  Linux, and a watchdog on the parent's pid everywhere).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

_log = logging.getLogger(__name__)
HOST = socket.gethostname()
NOT_COUNTED = {"interrupted", "worker died"}  # failures of the worker, not of the candidate
MAX_RETRIES = 3


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under a batch scheduler)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux /proc), or None where unknown.
    A pid and its start time name one process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])  # field 22 of stat(5); fields[0] is field 3
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class WorkerInfo:
    index: int | None  # local worker number, or None for a worker joining a database on its own
    host: str
    pid: int
    sampler_seed: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # unique, whatever pids and hosts do
    started: int | None = None  # process_start(pid)


def worker_info(seed: int, index: int | None) -> WorkerInfo:
    """Each worker seeds its sampler differently: workers sharing one seed propose duplicates."""
    pid = os.getpid()
    if index is None or index == 0:
        sampler_seed = seed if index == 0 else seed + zlib.crc32(f"{HOST}:{pid}".encode()) % 1_000_003
    else:
        sampler_seed = seed + 7919 * index
    return WorkerInfo(index, HOST, pid, sampler_seed, started=process_start(pid))


def stamp(trial: optuna.trial.Trial, info: WorkerInfo) -> None:
    trial.set_user_attr("worker", {"host": info.host, "pid": info.pid, "index": info.index,
                                   "sampler_seed": info.sampler_seed, "id": info.id, "started": info.started})
    trial.set_user_attr("heartbeat", time.time())


def counts_toward_budget(t: optuna.trial.FrozenTrial) -> bool:
    """Completed trials (not re-proposals of an evaluated architecture) and failed candidates
    count; a FAIL without a reason is a stale trial
    that Optuna's heartbeat check failed (its worker died) and that was retried."""
    if t.state == TrialState.COMPLETE:
        return "duplicate_of" not in t.user_attrs  # a re-proposed architecture reuses a result
    return t.state == TrialState.FAIL and bool(t.user_attrs.get("fail_reason")) and \
        t.user_attrs.get("fail_reason") not in NOT_COUNTED


def evaluated_count(study: optuna.Study) -> int:
    return sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False,
                                                                 states=(TrialState.COMPLETE, TrialState.FAIL)))


def running_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def claim_slot(study: optuna.Study, number: int, budget: int) -> bool:
    """True if fewer than ``budget`` earlier trials are counted or still running."""
    earlier = [t for t in study.get_trials(deepcopy=False) if t.number < number and
               (counts_toward_budget(t) or t.state == TrialState.RUNNING)]
    return len(earlier) < budget


def retry(study: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
    """Enqueue the parameters of ``t`` again (at most MAX_RETRIES times for one candidate)."""
    chain = int(t.user_attrs.get("retries", 0))
    if chain >= MAX_RETRIES:
        return
    study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, "retries": chain + 1}, skip_if_exists=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def _orphaned(t: optuna.trial.FrozenTrial, *, grace_s: float, now: float, heartbeats: bool = True) -> bool:
    """Whether no live worker owns the RUNNING trial ``t`` (see the module docstring); with
    ``heartbeats`` False, only a dead or replaced process on this host counts."""
    worker = t.user_attrs.get("worker") or {}
    pid = worker.get("pid")
    if worker.get("host") == HOST and isinstance(pid, int) and pid != os.getpid():
        if not _alive(pid):
            return True
        started, now_started = worker.get("started"), process_start(pid)
        if started is not None and now_started is not None:
            return now_started != started  # the same process, or its pid now belongs to another
    elif worker.get("host") == HOST and pid == os.getpid():
        return False  # this process's own trial
    if not heartbeats:
        return False
    start = t.datetime_start.timestamp() if t.datetime_start else now
    last = max(float(t.user_attrs.get("heartbeat") or 0.0), start)
    return now - last > grace_s


def reap_dead_workers(study: optuna.Study, *, grace_s: float = 60.0) -> list[int]:
    """Fail and re-enqueue RUNNING trials that no live worker owns; on a database with Optuna's
    heartbeats, also let Optuna fail stale trials (its callback re-enqueues them). Within a grace
    after the database came back from an outage, no trial is taken for dead by its silence: no
    worker could record a heartbeat while it was away."""
    import warnings

    storage = study._storage
    reaped = []
    now = time.time()
    heartbeats = time.monotonic() - RetryingRDBStorage.back_at > grace_s
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _orphaned(t, grace_s=grace_s, now=now, heartbeats=heartbeats):
            storage.set_trial_user_attr(t._trial_id, "fail_reason", "worker died")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            retry(study, t)
            reaped.append(t.number)
    if heartbeats and _heartbeat_interval(storage) is not None:
        with warnings.catch_warnings():  # marked experimental in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    return reaped


def _heartbeat_interval(storage) -> int | None:
    """Seconds between heartbeats when the storage has them enabled (databases), else None.
    Optuna wraps an RDBStorage in a cache layer that also implements heartbeats."""
    getter = getattr(storage, "get_heartbeat_interval", None)
    return getter() if callable(getter) else None


class Heartbeat:
    """Records a heartbeat for a trial every ``interval_s`` seconds while it runs, on every storage
    (a ``heartbeat`` user attribute), and Optuna's own heartbeat on databases."""

    def __init__(self, study: optuna.Study, trial: optuna.trial.Trial, *, interval_s: float) -> None:
        self.storage = study._storage
        self.trial_id = trial._trial_id
        self.stop = threading.Event()
        self.interval = interval_s
        self.optuna_beat = _heartbeat_interval(self.storage) is not None
        self.thread = threading.Thread(target=self._beat, daemon=True, name="snnas-heartbeat")

    def _record(self) -> None:
        self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
        if self.optuna_beat:
            self.storage.record_heartbeat(self.trial_id)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self._record()
            except Exception:  # a transient storage error must not kill the trial
                pass

    def __enter__(self):
        self._record()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


class StorageUnavailable(ValueError):
    """The database stayed unreachable for longer than a search waits for it."""


# What Optuna and its cache layer call on a database storage: each call is retried while the
# database is unreachable (a restart, a network cut), for up to ``RetryingRDBStorage.retry_s``.
RETRIED = ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
           "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
           "get_study_system_attrs", "get_trial_user_attrs", "get_trial_system_attrs", "get_all_studies",
           "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param", "get_trial_param",
           "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
           "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "_get_trials", "get_n_trials",
           "get_best_trial", "_get_best_trial_id", "record_heartbeat", "_get_stale_trial_ids")
_nested = threading.local()  # a retried call made inside another is retried by the outer one only


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (rather than that a request was wrong).
    Optuna reports a failed commit as StorageInternalError, with the driver's error as its cause."""
    from sqlalchemy import exc as sa

    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    return isinstance(cause, (sa.OperationalError, sa.InterfaceError)) or \
        (isinstance(cause, sa.DBAPIError) and cause.connection_invalidated)


class RetryingRDBStorage(optuna.storages.RDBStorage):
    """Optuna's database storage, with pooled connections checked before use (a restarted server's
    dead connections are replaced) and every call retried while the database is unreachable: one
    warning line when it goes away, then StorageUnavailable (one line) if it stays away."""

    retry_s: float = 60.0
    label: str = "the database"  # its URL with the password masked
    _down = False  # shared by this process's threads: the outage is reported once
    _gave_up = False  # waited retry_s in vain: later calls fail at once until one gets through
    back_at = -math.inf  # time.monotonic() when this process last saw the database come back

    def _retried(self, name: str, args, kwargs):
        method = getattr(optuna.storages.RDBStorage, name)
        if getattr(_nested, "active", False):
            return method(self, *args, **kwargs)
        _nested.active = True
        try:
            return self._until_reachable(method, args, kwargs)
        finally:
            _nested.active = False

    def _until_reachable(self, method, args, kwargs):
        deadline, delay = None, 0.5
        while True:
            try:
                result = method(self, *args, **kwargs)
            except Exception as exc:  # only an unreachable database is retried
                if not unreachable(exc):
                    raise
                deadline = deadline or time.monotonic() + self.retry_s
                self._went_away(exc)
                if time.monotonic() >= deadline or RetryingRDBStorage._gave_up:
                    RetryingRDBStorage._gave_up = True
                    raise StorageUnavailable(f"{self.label}: unreachable for {self.retry_s:.0f} s "
                                             f"({_first_line(exc)}); rerun the same command once it is back "
                                             "(finished trials are kept)") from None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(2 * delay, 5.0)
                continue
            if deadline is not None or RetryingRDBStorage._down:
                RetryingRDBStorage._down, RetryingRDBStorage._gave_up = False, False
                RetryingRDBStorage.back_at = time.monotonic()
                _log.info("%s is reachable again", self.label)
            return result

    def _went_away(self, exc: BaseException) -> None:
        if not RetryingRDBStorage._down:
            RetryingRDBStorage._down = True
            _log.warning("%s went away (%s); retrying for up to %.0f s", self.label, _first_line(exc), self.retry_s)


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ else exc
    text = str(getattr(cause, "orig", None) or cause).strip()
    return f"{type(getattr(cause, 'orig', None) or cause).__name__}: {text.splitlines()[0][:160] if text else ''}"


def _retrying(name: str):
    def call(self, *args, **kwargs):
        return self._retried(name, args, kwargs)

    call.__name__ = name
    return call


for _name in RETRIED:
    setattr(RetryingRDBStorage, _name, _retrying(_name))


def rdb_storage(url: str, *, heartbeat_s: int, label: str | None = None,
                retry_s: float | None = None) -> RetryingRDBStorage:
    """A database storage with heartbeats (a stale trial is failed and retried) that rides out a
    database restart: calls are retried for ``retry_s`` (default: the heartbeat grace, at least
    a minute). ``label`` names it in messages (the URL with its password masked)."""
    import warnings

    with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RetryingRDBStorage(
            url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=heartbeat_s,
            grace_period=2 * heartbeat_s,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES))
    storage.label = label or "the database"
    storage.retry_s = retry_s if retry_s is not None else max(60.0, 2.0 * heartbeat_s)
    return storage
