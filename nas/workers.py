"""Many workers on one study, and surviving their deaths.

Optuna's storages do the sharing: a journal file for one machine, an RDB (PostgreSQL) for
many. snnas adds what the ask/tell loop needs on top:

* liveness: every trial records its worker's host and pid. On one host a RUNNING trial whose
  pid is gone was left by a killed worker; on a database, heartbeats (Optuna's
  ``heartbeat_interval`` / ``grace_period``) mark silent workers' trials failed.
* retries: a trial whose worker died (not one whose candidate failed) is failed and its
  parameters are enqueued again (``retry_of``), so nothing is lost and it is not counted twice.
* budget: a trial counts when it completed or its candidate failed; a worker claims a slot
  only if fewer than ``budget`` trials before it are counted or running, so several workers
  never overshoot.
"""

from __future__ import annotations

import os
import socket
import threading
import zlib
from dataclasses import dataclass

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

HOST = socket.gethostname()
NOT_COUNTED = {"interrupted", "worker died"}  # failures of the worker, not of the candidate
MAX_RETRIES = 3


@dataclass(frozen=True)
class WorkerInfo:
    index: int | None  # local worker number, or None for a worker joining a database on its own
    host: str
    pid: int
    sampler_seed: int


def worker_info(seed: int, index: int | None) -> WorkerInfo:
    """Each worker seeds its sampler differently: workers sharing one seed propose duplicates."""
    pid = os.getpid()
    if index is None or index == 0:
        sampler_seed = seed if index == 0 else seed + zlib.crc32(f"{HOST}:{pid}".encode()) % 1_000_003
    else:
        sampler_seed = seed + 7919 * index
    return WorkerInfo(index, HOST, pid, sampler_seed)


def stamp(trial: optuna.trial.Trial, info: WorkerInfo) -> None:
    trial.set_user_attr("worker", {"host": info.host, "pid": info.pid, "index": info.index,
                                   "sampler_seed": info.sampler_seed})


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
    except PermissionError:
        return True
    return True


def reap_dead_workers(study: optuna.Study) -> list[int]:
    """Fail and re-enqueue RUNNING trials of workers on this host that no longer exist; on a
    database with heartbeats, let Optuna fail stale trials (its callback re-enqueues them)."""
    storage = study._storage
    reaped = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") == HOST and worker.get("pid") not in (None, os.getpid()) and not _alive(worker["pid"]):
            storage.set_trial_user_attr(t._trial_id, "fail_reason", "worker died")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            retry(study, t)
            reaped.append(t.number)
    if _heartbeat_interval(storage) is not None:
        optuna.storages.fail_stale_trials(study)
    return reaped


def _heartbeat_interval(storage) -> int | None:
    """Seconds between heartbeats when the storage has them enabled (databases), else None.
    Optuna wraps an RDBStorage in a cache layer that also implements heartbeats."""
    getter = getattr(storage, "get_heartbeat_interval", None)
    return getter() if callable(getter) else None


class Heartbeat:
    """Records a heartbeat for a trial every ``interval`` seconds while it runs (RDB storages)."""

    def __init__(self, study: optuna.Study, trial: optuna.trial.Trial) -> None:
        self.storage = study._storage
        self.trial_id = trial._trial_id
        self.stop = threading.Event()
        self.interval = _heartbeat_interval(self.storage)
        self.thread = threading.Thread(target=self._beat, daemon=True) if self.interval is not None else None

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a transient database error must not kill the trial
                pass

    def __enter__(self):
        if self.thread is not None:
            self.storage.record_heartbeat(self.trial_id)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.thread is not None:
            self.stop.set()
            self.thread.join()


def rdb_storage(url: str, *, heartbeat_s: int) -> optuna.storages.RDBStorage:
    """A database storage with heartbeats; a stale trial is failed and retried."""
    import warnings

    with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat_s, grace_period=2 * heartbeat_s,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES))


def _worker_main(settings, space, split, index: int, threads: int) -> None:
    import logging

    import torch

    from nas.study import run_search

    logging.getLogger("optuna").setLevel(logging.WARNING)
    torch.set_num_threads(threads)
    try:
        run_search(settings, space, split, device=torch.device("cpu"), worker=worker_info(settings.seed, index))
    except KeyboardInterrupt:
        pass


def start_local_workers(settings, space, split, n: int) -> list:
    """Start ``n`` worker processes (spawned, CPU) on the study; returns the processes."""
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // n)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(settings, space, split, i, threads), name=f"snnas-worker-{i}")
             for i in range(n)]
    for p in procs:
        p.start()
    return procs
