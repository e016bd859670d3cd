"""Fault points: named places the code can be told to fail at, so that tests prove recovery
deterministically instead of hoping a random kill lands in the right window.

``MATCHSTREAM_FAULT=POINT[:ACTION]`` arms one point (``engine.before_commit``,
``store.after_rename`` ...; the list is :data:`POINTS`). ``ACTION`` is ``kill`` (the default:
SIGKILL this process, as a crash would), ``error`` (raise :class:`InjectedFault` there) or
``sleep`` (wait :data:`SLEEP_SECONDS` there, a window for a test to STOP or kill something in).
With ``MATCHSTREAM_FAULT_ONCE=FILE`` the point fires only for the process that manages to create
``FILE``, so a restarted process (or a retried batch) with the same environment runs through.
Unset, a fault point costs one dict lookup.

>>> hit("engine.after_load", environ={})  # not armed: nothing happens
>>> hit("engine.after_load", environ={"MATCHSTREAM_FAULT": "engine.after_load:error"})
Traceback (most recent call last):
...
matchstream.faults.InjectedFault: fault injected at engine.after_load
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping

from matchstream.errors import MatchstreamError

__all__ = ["POINTS", "InjectedFault", "hit"]

ENV_FAULT = "MATCHSTREAM_FAULT"
ENV_ONCE = "MATCHSTREAM_FAULT_ONCE"
SLEEP_SECONDS = 3.0

POINTS = (
    "engine.after_transform",  # the transform exited 0, nothing loaded yet
    "engine.after_load",  # LOAD DATA ran inside the batch transaction
    "engine.before_commit",  # cursor and batch row written, COMMIT not sent
    "store.after_files",  # a version's files are written, the directory not renamed
    "store.after_rename",  # the version is in versions/, LATEST not moved yet
    "trainer.after_learn",  # the warm trainer learnt a batch, nothing published
    "trainer.after_publish",  # the warm trainer published, the reply not sent
)


class InjectedFault(MatchstreamError):
    """Raised at an armed fault point whose action is ``error``."""

    def __init__(self, point: str) -> None:
        super().__init__(f"fault injected at {point}")
        self.point = point


def hit(point: str, *, environ: Mapping[str, str] | None = None) -> None:
    """Fail here if ``MATCHSTREAM_FAULT`` arms ``point``; otherwise return at once."""
    env = os.environ if environ is None else environ
    armed = env.get(ENV_FAULT)
    if not armed:
        return
    name, _, action = armed.partition(":")
    if name != point:
        return
    once = env.get(ENV_ONCE)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return
    if action == "error":
        raise InjectedFault(point)
    if action == "sleep":
        time.sleep(SLEEP_SECONDS)
        return
    os.kill(os.getpid(), signal.SIGKILL)
