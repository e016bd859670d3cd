"""`matchstream up / down / status`: the local stack as one unit."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from matchstream.config import Config
from matchstream.stack.broker import PROJECT_TOPICS, Broker
from matchstream.stack.engine_process import EngineProcess
from matchstream.stack.mariadb import MariaDB
from matchstream.stack.ports import ensure_port_free

__all__ = ["ComponentStatus", "Stack"]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    pid: int | None
    answers: bool
    note: str = ""


class Stack:
    """Broker, MariaDB and (when installed) the pipeline engine, under one state directory."""

    def __init__(self, config: Config, *, with_engine: bool = True) -> None:
        self.config = config
        self.broker = Broker(config)
        self.mariadb = MariaDB(config)
        self.engine = EngineProcess(config) if with_engine and EngineProcess.available() else None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # Two `up`s at once would both see "not running" and start twice.
        self.config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.config.state_dir / "stack.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def up(self) -> list[str]:
        """Start what is not running, wait until each part answers; return what was done.

        1. Check binaries and ports of the parts that must start, before starting anything.
        2. Broker: start, wait for a metadata answer, (re)create the project's topics (memory only).
        3. MariaDB: initialise the data directory once (root gets its password there, offline),
           start, wait. The server never listens while root has no password (mariadb.py).
        4. Engine: start last, since it needs the other two.
        """
        done: list[str] = []
        with self._lock():
            c = self.config
            broker_running = self.broker.process.running_pid() is not None
            db_running = self.mariadb.process.running_pid() is not None
            if db_running and not self.mariadb.secured():
                # Started by an older matchstream, which set root's password only after the
                # server was listening: stop it, so that start() sets the password offline.
                self.mariadb.process.stop()
                db_running = False
                done.append("stopped MariaDB to set the root password with the server offline")
            if not broker_running:
                self.broker.binary()
                ensure_port_free(
                    component="broker",
                    host=c.host,
                    port=c.kafka_port,
                    setting=Config.setting_name("kafka_port"),
                )
            if not db_running:
                self.mariadb.server_binary()
                self.mariadb.install_binary()
                ensure_port_free(
                    component="mariadb",
                    host=c.host,
                    port=c.db_port,
                    setting=Config.setting_name("db_port"),
                )

            if not broker_running:
                self.broker.start()
                done.append(f"started broker on {self.broker.address}")
            self.broker.wait_ready()
            created = self.broker.ensure_topics(PROJECT_TOPICS, c.topic_partitions)
            if created:
                done.append(f"created topics {', '.join(created)}")

            if not db_running:
                if self.mariadb.initialise():
                    done.append(f"initialised MariaDB data directory {c.db_dir}")
                self.mariadb.start()  # sets root's password offline first if not yet done
                done.append(f"started MariaDB on {self.mariadb.address}")
            self.mariadb.wait_ready()
            self.mariadb.write_client_file()

            c.record()
            if self.engine is not None and self.engine.process.running_pid() is None:
                self.engine.start()
                self.engine.wait_ready()
                done.append("started the pipeline engine")
        return done

    def down(self) -> list[str]:
        """Stop the recorded processes, engine first so no batch loses its database."""
        stopped: list[str] = []
        with self._lock():
            parts = [p for p in (self.engine, self.mariadb, self.broker) if p is not None]
            for part in parts:
                if part.process.stop():
                    stopped.append(part.name)
        return stopped

    def status(self) -> list[ComponentStatus]:
        result = [
            ComponentStatus(
                "broker",
                self.broker.address,
                self.broker.process.running_pid(),
                self.broker.answers(),
                Broker.storage_note,
            ),
            ComponentStatus(
                "mariadb",
                self.mariadb.address,
                self.mariadb.process.running_pid(),
                self.mariadb.answers(),
                f"data in {self.config.db_dir}",
            ),
        ]
        if self.engine is not None:
            result.append(
                ComponentStatus(
                    "engine", "-", self.engine.process.running_pid(), self.engine.answers()
                )
            )
        return result
