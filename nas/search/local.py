"""Worker processes on one machine: ``snnas search --workers N`` starts N processes that share one
study (each runs ``run_search``), die with their parent, and report what they are doing in shared
memory for the parent's display. Storage, claims and heartbeats are ``snnas.nas.search.workers``'."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from snnas.nas.search import study
from snnas.nas.search.workers import StorageUnavailable, usable_cores, worker_info


def stop_on_sigterm() -> None:
    """SIGTERM stops like Ctrl-C: the running trial is queued again and the results so far written.
    After the first stop, further SIGINT / SIGTERM are ignored (a Ctrl-C reaches a worker from the
    terminal and then from its parent): a second interrupt must not cut short the writes that
    record the first."""
    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def die_with_parent(parent: int) -> None:
    """End this worker when the process that started it ends, however it ends (even SIGKILL)."""
    try:  # Linux: the kernel signals us when the parent dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # everywhere: the parent's pid changes when it dies
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, daemon=True, name="snnas-parent-watch").start()
    if os.getppid() != parent:  # the parent died before the handlers were in place
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(settings, space, split, index: int, threads: int, parent: int, progress=None) -> None:
    import logging

    import torch

    stop_on_sigterm()
    die_with_parent(parent)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    torch.set_num_threads(threads)

    def on_event(event) -> None:  # what this worker is doing, for the parent's display
        if progress is not None:
            running = event.state in ("started", "step")
            progress[3 * index:3 * index + 3] = [event.number if running else -1, event.step, event.steps]

    try:
        study.run_search(settings, space, split, device=torch.device("cpu"), worker=worker_info(settings.seed, index),
                   on_event=on_event)
    except KeyboardInterrupt:
        pass
    except (study.SearchError, StorageUnavailable) as exc:  # a problem the parent's checks could not see: one line
        print(f"snnas: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


@dataclass
class LocalWorkers:
    """The worker processes of one machine and what each is doing: ``progress[3 i : 3 i + 3]`` is
    worker i's (trial number or -1 when idle, training steps done, steps), in shared memory."""

    procs: list
    progress: object

    def training(self) -> list[tuple[int, int, int]]:
        """(trial, step, steps) of every worker evaluating a trial now."""
        values = list(self.progress)
        return [tuple(values[i:i + 3]) for i in range(0, len(values), 3) if values[i] >= 0]


def start_local_workers(settings, space, split, n: int) -> LocalWorkers:
    """Start ``n`` worker processes (spawned, CPU) on the study, ``settings.threads`` torch threads
    each."""
    import multiprocessing

    threads = settings.threads or max(1, usable_cores() // n)
    ctx = multiprocessing.get_context("spawn")
    progress = ctx.Array("q", [-1, 0, 0] * n, lock=False)  # each worker writes only its own three slots
    procs = [ctx.Process(target=_worker_main, args=(settings, space, split, i, threads, os.getpid(), progress),
                         name=f"snnas-worker-{i}") for i in range(n)]
    for p in procs:
        p.start()
    return LocalWorkers(procs, progress)
