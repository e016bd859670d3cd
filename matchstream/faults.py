"""Fault points: named places the code can be told to fail at, so that tests prove recovery
deterministically instead of hoping a random kill lands in the right window.

``MATCHSTREAM_FAULT=POINT[#N][:ACTION]`` arms one point (``engine.before_commit``,
``store.after_rename`` ...; the list is :data:`POINTS`); with ``#N`` it fires at the point's
N-th hit in this process (the second chunk's LOAD of a batch: ``engine.after_load#2``).
``ACTION`` is ``kill`` (the default: SIGKILL this process, as a crash would), ``error`` (raise
:class:`InjectedFault` there), ``enospc`` (raise the OSError a full disk gives) or ``sleep``
(wait :data:`SLEEP_SECONDS` there, a window for a test to STOP or kill something in).
With ``MATCHSTREAM_FAULT_ONCE=FILE`` the point fires only for the process that manages to create
``FILE``, so a restarted process (or a retried batch) with the same environment runs through.
Unset, a fault point costs one dict lookup.

>>> hit("engine.after_load", environ={})  # not armed: nothing happens
>>> hit("engine.after_load", environ={"MATCHSTREAM_FAULT": "engine.after_load:error"})
Traceback (most recent call last):
...
matchstream.faults.InjectedFault: fault injected at engine.after_load
>>> second = {"MATCHSTREAM_FAULT": "engine.after_guard#2:enospc"}
>>> hit("engine.after_guard", environ=second)  # the first hit passes
>>> hit("engine.after_guard", environ=second)
Traceback (most recent call last):
...
OSError: [Errno 28] No space left on device (fault injected at engine.after_guard)
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Mapping

from matchstream.errors import MatchstreamError

__all__ = ["POINTS", "InjectedFault", "hit"]

ENV_FAULT = "MATCHSTREAM_FAULT"
ENV_ONCE = "MATCHSTREAM_FAULT_ONCE"
SLEEP_SECONDS = 3.0

POINTS = (
    "engine.after_transform",  # the transform exited 0, nothing loaded yet
    "engine.before_load",  # a work file is written, its LOAD DATA not run
    "engine.after_load",  # LOAD DATA ran inside the batch transaction (once per chunk)
    "engine.after_guard",  # the registry row and cursor are locked and checked
    "engine.before_commit",  # cursor and batch row written, COMMIT not sent
    "store.after_files",  # a version's files are written, the directory not renamed
    "store.after_rename",  # the version is in versions/, LATEST not moved yet
    "trainer.after_learn",  # the warm trainer learnt a batch, nothing published
    "trainer.after_publish",  # the warm trainer published, the reply not sent
    "alerts.after_publish",  # an alerts round was delivered, alerts_published not reloaded
)


class InjectedFault(MatchstreamError):
    """Raised at an armed fault point whose action is ``error``."""

    def __init__(self, point: str) -> None:
        super().__init__(f"fault injected at {point}")
        self.point = point


_hits: Counter[str] = Counter()
_hits_lock = threading.Lock()


def hit(point: str, *, environ: Mapping[str, str] | None = None) -> None:
    """Fail here if ``MATCHSTREAM_FAULT`` arms ``point``; otherwise return at once."""
    env = os.environ if environ is None else environ
    armed = env.get(ENV_FAULT)
    if not armed:
        return
    name, _, action = armed.partition(":")
    name, _, nth = name.partition("#")
    if name != point:
        return
    if nth:
        with _hits_lock:
            _hits[armed] += 1
            if _hits[armed] != int(nth):
                return
    once = env.get(ENV_ONCE)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return
    if action == "error":
        raise InjectedFault(point)
    if action == "enospc":
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (fault injected at {point})")
    if action == "sleep":
        time.sleep(SLEEP_SECONDS)
        return
    os.kill(os.getpid(), signal.SIGKILL)
