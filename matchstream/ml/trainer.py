"""The warm trainer: one long-lived process per model directory that holds TensorFlow.

``transforms/train.py`` starts it on demand (:mod:`matchstream.ml.trainer_link`) and hands it each
batch over a Unix socket; it exits after ``--idle-seconds`` without a batch. Run by hand::

    python -m matchstream.ml.trainer --model-dir DIR [--idle-seconds 300]

Its life, in order:

1. Create the model directory if needed and take ``DIR/.trainer.lock`` (flock, non-blocking):
   held by another trainer, this one exits at once with status 0, so at most one trainer works
   on a directory (the fence), and a killed trainer's lock is released by the kernel.
2. Bind the socket: an abstract Unix socket named from the directory's real path (no file to
   leave behind, gone when the process is; a second bind of the same name fails, the second
   fence). Only processes of the same user may use it (SO_PEERCRED).
3. Serve one request at a time: train it with :class:`~matchstream.ml.training.Trainer` (which
   takes the store lock, so in-process trainers are serialised with it) and reply.
4. After ``idle_seconds`` without a request, or on a ``stop`` request, exit.

Nothing it holds is the truth: the version on disk is. A trainer killed at any point loses no
batch: train.py falls back to training in its own process, which finds a version the trainer
published already by the batch's fingerprint and replays its metrics row.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from matchstream import faults
from matchstream.errors import MatchstreamError
from matchstream.ml.errors import ModelStoreError
from matchstream.ml.store import ModelStore
from matchstream.ml.train_protocol import (
    DEFAULT_IDLE_SECONDS,
    ProtocolError,
    TrainRequest,
    error_json,
    read_message,
    write_message,
)

if TYPE_CHECKING:
    from matchstream.ml.training import Trainer

__all__ = ["DEFAULT_IDLE_SECONDS", "LOCK_NAME", "serve", "socket_address"]

LOCK_NAME = ".trainer.lock"
_PEERCRED = struct.Struct("3i")


def socket_address(model_dir: Path | str) -> bytes:
    """The abstract socket name of a model directory (Linux: a leading NUL byte).

    >>> name = socket_address("/srv/models")
    >>> name[:21], len(name)
    (b'\\x00matchstream-trainer-', 61)
    """
    real = os.path.realpath(model_dir).encode("utf-8", "surrogateescape")
    return b"\0matchstream-trainer-" + hashlib.sha256(real).hexdigest()[:40].encode()


@contextlib.contextmanager
def _fence(store: ModelStore) -> Iterator[bool]:
    """Step 1: True while this process holds the directory's trainer lock."""
    path = store.path / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)


def serve(model_dir: Path, *, idle_seconds: float = DEFAULT_IDLE_SECONDS) -> int:
    store = ModelStore(model_dir)
    store.ensure()
    with _fence(store) as held:
        if not held:
            _log(model_dir, "another trainer holds the directory; exiting")
            return 0
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(socket_address(model_dir))  # step 2
        except OSError as exc:
            _log(model_dir, f"cannot bind the trainer socket ({exc}); exiting")
            listener.close()
            return 0
        listener.listen(64)
        listener.settimeout(idle_seconds)
        _log(model_dir, f"warm trainer pid {os.getpid()} serving (idle exit {idle_seconds:g} s)")
        from matchstream.ml.training import Trainer  # TensorFlow comes with the first batch

        trainer = Trainer()
        try:
            while True:  # step 3
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    _log(model_dir, "idle; exiting")
                    return 0
                with conn:
                    if _serve_one(conn, trainer, model_dir) == "stop":
                        _log(model_dir, "stop requested; exiting")
                        return 0
        finally:
            listener.close()


def _serve_one(conn: socket.socket, trainer: Trainer, model_dir: Path) -> str:
    conn.settimeout(60.0)  # a client that stops sending mid-request must not wedge the trainer
    _, uid, _ = _PEERCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    if uid != os.getuid():
        return "refused"
    try:
        header = json.loads(read_message(conn.recv))
        if header.get("op") == "stop":
            write_message(conn.sendall, b'{"ok": true}')
            return "stop"
        request = TrainRequest.from_header(header, read_message(conn.recv))
    except (ProtocolError, OSError, ValueError, KeyError) as exc:
        _log(model_dir, f"bad request: {exc}")
        return "bad"
    conn.settimeout(None)
    if os.path.realpath(request.model_dir) != os.path.realpath(model_dir):
        reply = error_json(f"this trainer serves {model_dir}, not {request.model_dir}",
                           refused=False)
    else:
        try:
            # Replays are rare (a retried batch) and worth a line; learnt batches are not.
            reply = trainer.train(request, on_replay=lambda m: _log(model_dir, m)).to_json()
            faults.hit("trainer.after_publish")
        except MatchstreamError as exc:
            reply = error_json(str(exc), refused=True)
        except Exception as exc:  # noqa: BLE001 - a bug: train.py retries in-process and shows it
            _log(model_dir, f"internal error: {exc!r}")
            reply = error_json(f"internal error in the warm trainer: {exc!r}", refused=False)
    with contextlib.suppress(OSError):
        write_message(conn.sendall, reply)
    return "served"


def _log(model_dir: Path, message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} trainer[{os.getpid()}] {model_dir}: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matchstream.ml.trainer",
                                     description="Warm trainer for one model directory.",
                                     allow_abbrev=False)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS)
    args = parser.parse_args(argv)
    try:
        return serve(args.model_dir, idle_seconds=args.idle_seconds)
    except ModelStoreError as exc:
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
