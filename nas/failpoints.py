"""Failpoints: named places where a test makes snnas die as a crash, a kill or a full disk would.

Inert unless ``SNNAS_FAILPOINT`` is set, as ``<name>:<n>`` (the n-th time the place is reached)
with an optional ``=<action>``: ``kill`` (SIGKILL this process, the default), ``enospc``
(raise "no space left on device"), ``sigterm`` (a batch scheduler's stop, handled as the CLI
handles it) or ``error`` (raise a RuntimeError, as a candidate's own failure would). The
fault-injection tests (tests/faults) use them to stop a search at every moment that matters and
check that nothing is lost or counted twice.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

ENV = "SNNAS_FAILPOINT"
_hits: Counter = Counter()


def failpoint(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, action = spec.partition("=")
    point, _, nth = target.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] != int(nth or 1):
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if action == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if action == "error":
        raise RuntimeError(f"failpoint {name}: an error injected by a test")
    os.kill(os.getpid(), signal.SIGKILL)
