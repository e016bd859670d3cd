"""train.py's side of the warm trainer: hand a batch over, or train it here.

:func:`train` in order:

0. The directory's newest version was written by another estimator than ``--model``: refuse
   at once, before TensorFlow or a trainer is started, so the directory stays as it was (the
   trainer checks again under the store lock; this is the cheap early answer).
1. ``cold`` mode: train in this process (imports TensorFlow, about 4 s) and return.
2. Connect to the directory's trainer; if none answers, start one (a detached process in its own
   session, stdio on ``DIR/.trainer.log``, so it outlives this transform and holds none of the
   engine's pipes) and wait for it to answer. A dry run never starts one (it must leave the
   directory as it found it).
3. Send the batch, read the reply. A refusal (bad row, bad spec) is raised as train.py's own
   error, with the message the in-process path gives.
4. No trainer could be had, or it died or failed mid-batch: say so on stderr and train in this
   process. That is safe at any point: if the trainer had published the batch, its fingerprint
   makes the in-process run replay the same row instead of learning it twice.

Standard library only until step 4.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from matchstream.errors import MatchstreamError
from matchstream.ml.errors import EstimatorMismatch
from matchstream.ml.estimators import refuse_other
from matchstream.ml.store import ModelStore
from matchstream.ml.train_protocol import (
    ProtocolError,
    TrainerError,
    TrainReply,
    TrainRequest,
    read_message,
    write_message,
)
from matchstream.ml.trainer import LOCK_NAME, socket_address

__all__ = ["LOG_NAME", "stop_trainer", "train", "trainer_pid", "trainer_running"]

LOG_NAME = ".trainer.log"
# A cold start of the trainer imports TensorFlow: 4 s on an idle machine, several times that on
# a loaded CI box. Past this, the batch is trained in-process rather than waiting longer.
START_TIMEOUT_S = 60.0
_POLL_S = 0.02


def train(request: TrainRequest, *, mode: str = "warm",
          idle_seconds: float = 300.0) -> TrainReply:
    """Steps 0-4 of the module docstring."""
    if not request.raw:  # an empty batch: nothing to learn, no TensorFlow
        return _in_process(request, ())
    _refuse_other_estimator(request)
    if mode == "cold":
        return _in_process(request, ())
    try:
        sock = _connect_or_start(Path(request.model_dir), idle_seconds,
                                 may_start=not request.dry_run)
    except _Unavailable as exc:
        return _in_process(request, (f"warm trainer unavailable ({exc}): training in-process",))
    try:
        with sock:
            write_message(sock.sendall, request.header())
            write_message(sock.sendall, request.raw)
            reply = json.loads(read_message(sock.recv))
    except (ProtocolError, OSError, ValueError) as exc:
        return _in_process(request, (f"warm trainer lost mid-batch ({exc}): training "
                                     "in-process",))
    if reply.get("ok"):
        return TrainReply.from_json(reply)
    if reply.get("refused"):
        raise TrainerError(str(reply.get("error")))
    return _in_process(request, (f"warm trainer failed ({reply.get('error')}): training "
                                 "in-process",))


def _refuse_other_estimator(request: TrainRequest) -> None:
    """Step 0. Anything else wrong with the directory (missing, corrupt) is left to the
    trainer, which words it as it always has."""
    store = ModelStore(request.model_dir)
    try:
        head = store.latest_version()
        if head is not None:
            refuse_other(store, head, request.estimator)
    except EstimatorMismatch:
        raise
    except (MatchstreamError, OSError, ValueError, KeyError, TypeError):
        return


def _in_process(request: TrainRequest, notes: tuple[str, ...]) -> TrainReply:
    from matchstream.ml.training import Trainer

    reply = Trainer().train(request)
    return TrainReply(reply.text, (*notes, *reply.log), reply.version, reply.replayed)


class _Unavailable(Exception):  # noqa: N818 - internal: why no trainer could be had
    pass


def _connect(model_dir: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_address(model_dir))
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        return None
    except OSError:
        sock.close()
        raise
    return sock


def _connect_or_start(model_dir: Path, idle_seconds: float, *, may_start: bool) -> socket.socket:
    """Step 2."""
    try:
        sock = _connect(model_dir)
    except OSError as exc:
        raise _Unavailable(f"cannot connect: {exc}") from exc
    if sock is not None:
        return sock
    if not may_start:
        raise _Unavailable("none is running and a dry run does not start one")
    if not model_dir.parent.is_dir():
        raise _Unavailable(f"{model_dir.parent} does not exist")
    model_dir.mkdir(exist_ok=True)
    with open(model_dir / LOG_NAME, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "matchstream.ml.trainer", "--model-dir", str(model_dir),
             "--idle-seconds", f"{idle_seconds:g}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
            start_new_session=True, cwd=model_dir, env=_trainer_env())
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            sock = _connect(model_dir)
            if sock is not None:
                return sock
        code = proc.poll()
        if code is not None and code != 0:
            raise _Unavailable(f"it exited with status {code} (see {model_dir / LOG_NAME})")
        if code == 0:  # another trainer won the fence: it answers soon, or never
            deadline = min(deadline, time.monotonic() + 5.0)
        time.sleep(_POLL_S)
    raise _Unavailable(f"it did not answer within {START_TIMEOUT_S:g} s")


def _trainer_env() -> dict[str, str]:
    """This environment, plus the directory this ``matchstream`` package was imported from
    when no installed package would be found there: a ``.tar.gz`` transform's unpacked archive
    is on the transform's own ``sys.path`` (its script directory) and nowhere else, so the
    trainer started with ``-m`` in the model directory would not find the package."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    if root not in {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _answering(model_dir: Path) -> socket.socket | None:
    """A connection to the directory's trainer, None if none answers (for any reason)."""
    try:
        return _connect(model_dir)
    except OSError:
        return None


def trainer_running(model_dir: Path) -> bool:
    """Whether a warm trainer answers for ``model_dir``."""
    sock = _answering(model_dir)
    if sock is None:
        return False
    sock.close()
    return True


def trainer_pid(model_dir: Path) -> int | None:
    """The pid of the trainer serving ``model_dir``, None if none answers."""
    if not trainer_running(model_dir):
        return None
    try:
        return int((model_dir / LOCK_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def stop_trainer(model_dir: Path, *, timeout: float = 10.0) -> bool:
    """Ask the directory's warm trainer to exit; True if one was running."""
    sock = _answering(model_dir)
    if sock is None:
        return False
    with sock:
        sock.settimeout(timeout)
        try:
            write_message(sock.sendall, b'{"op": "stop"}')
            read_message(sock.recv)
        except (OSError, ProtocolError):
            pass
    deadline = time.monotonic() + timeout
    while trainer_running(model_dir) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    return True
