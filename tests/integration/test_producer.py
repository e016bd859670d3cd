"""`matchstream produce` and `matchstream watch` against the session's real broker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from matchstream.config import Config
from matchstream.ml.spec import FeatureSpec
from matchstream.stack.ports import free_port
from matchstream.watcher import Watcher, WatcherBusy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO / "data" / "features.json"
TRAIN_LINES = (REPO / "data" / "train.csv").read_text().splitlines()
SCORE_LINES = (REPO / "data" / "score.csv").read_text().splitlines()


def produce(cli_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matchstream.cli", "produce", "-q", *args],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def end_offset(stack: Config, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            return 0
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_end()
        return sum(consumer.position(tp) for tp in tps)
    finally:
        consumer.close()


def consume(stack: Config, topic: str, expected: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    """Every message of ``topic`` (one partition) from ``start``; waits for ``expected`` of them
    and then briefly for any extra one, so duplicates are caught."""
    consumer = KafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, start)
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = list(consumer)
        out.extend((m.key, m.value) for m in batch)
        if len(out) >= expected and not batch:
            break
    consumer.close()
    return out


def new_topic(stack: Config) -> str:
    """A fresh one-partition topic, so the order of messages is the order of sending."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    name = f"produce-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    return name


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_good_file_sends_every_row_keyed_by_id_and_no_header(
    stack: Config, cli_env: dict[str, str], tmp_path: Path
) -> None:
    topic = new_topic(stack)
    rows = TRAIN_LINES[1:41]
    result = produce(
        cli_env,
        topic,
        str(write(tmp_path / "t.csv", [TRAIN_LINES[0], *rows])),
        "--role",
        "training",
    )
    assert result.returncode == 0, result.stderr
    assert "sent 40 rows, rejected 0" in result.stdout
    got = consume(stack, topic, 40)
    assert [v.decode() for _, v in got] == rows
    assert [k.decode() for k, _ in got] == [r.split(",")[0] for r in rows]


def test_bad_rows_are_reported_by_line_and_the_rest_is_sent(
    stack: Config, cli_env: dict[str, str], tmp_path: Path
) -> None:
    topic = new_topic(stack)
    good = TRAIN_LINES[1:4]
    fields = TRAIN_LINES[4].split(",")
    fields[2] = "not-a-number"
    lines = [TRAIN_LINES[0], good[0], "1,2,3", good[1], "", ",".join(fields), good[2]]
    path = write(tmp_path / "bad.csv", lines)
    result = produce(cli_env, topic, str(path), "--role", "training")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path}:3: expected 98 fields" in result.stderr
    assert f"{path}:5: empty line" in result.stderr
    assert f"{path}:6:" in result.stderr and "'not-a-number' is not a number" in result.stderr
    assert "sent 3 rows, rejected 3" in result.stdout
    assert [v.decode() for _, v in consume(stack, topic, 3)] == good


@pytest.mark.parametrize(
    ("name", "lines", "topic", "message"),
    [
        ("empty", [], "scoring", ":1: empty file"),
        (
            "label",
            SCORE_LINES[:1] and [TRAIN_LINES[0], TRAIN_LINES[1]],
            "scoring",
            ":1: wrong header for scoring rows: column 'match' is the label",
        ),
        (
            "missing",
            [",".join(SCORE_LINES[0].split(",")[:-1]), SCORE_LINES[1]],
            "scoring",
            ":1: wrong header for scoring rows: missing column(s) career_c_o",
        ),
        (
            "renamed",
            [SCORE_LINES[0].replace(",age,", ",years,"), SCORE_LINES[1]],
            "scoring",
            "missing column(s) age; unexpected column(s) years",
        ),
    ],
)
def test_a_file_that_cannot_be_produced_sends_nothing(
    stack: Config,
    cli_env: dict[str, str],
    tmp_path: Path,
    name: str,
    lines: list[str],
    topic: str,
    message: str,
) -> None:
    target = new_topic(stack)
    path = write(tmp_path / f"{name}.csv", lines)
    result = produce(cli_env, target, str(path), "--role", topic)
    assert result.returncode == 2
    assert str(path) + message in result.stderr or message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert end_offset(stack, target) == 0


def test_watch_produces_each_complete_file_exactly_once(stack: Config, tmp_path: Path) -> None:
    spec = FeatureSpec.load(SPEC_PATH)
    logs: list[str] = []
    watcher = Watcher(
        tmp_path, bootstrap=stack.kafka_bootstrap, spec=spec, settle_s=0.3, log=logs.append
    )
    start = end_offset(stack, "scoring")
    rows = SCORE_LINES[1:11]
    dropped = write(tmp_path / "scoring" / "batch1.csv", [SCORE_LINES[0], *rows])
    assert watcher.scan_once() == 0, "a file just written is not produced before it settles"
    time.sleep(0.4)
    assert watcher.scan_once() == 1
    assert not dropped.exists()
    assert len(list((tmp_path / "done").glob("*-batch1.csv"))) == 1
    time.sleep(0.4)
    assert watcher.scan_once() == 0, "a file is never produced twice"
    got = consume(stack, "scoring", 10, start=start)
    assert [v.decode() for _, v in got] == rows


def test_watch_moves_a_file_with_rejected_rows_to_failed_with_the_reason(
    stack: Config, tmp_path: Path
) -> None:
    spec = FeatureSpec.load(SPEC_PATH)
    watcher = Watcher(
        tmp_path, bootstrap=stack.kafka_bootstrap, spec=spec, settle_s=0.0, log=lambda _t: None
    )
    write(tmp_path / "training" / "with-label.csv", [TRAIN_LINES[0], TRAIN_LINES[1], "x"])
    write(tmp_path / "scoring" / "wrong.csv", [TRAIN_LINES[0], TRAIN_LINES[1]])
    watcher.scan_once()
    watcher.scan_once()
    reasons = {
        p.name.split("-", 1)[1]: p.read_text() for p in (tmp_path / "failed").glob("*.reason.txt")
    }
    assert set(reasons) == {"with-label.csv.reason.txt", "wrong.csv.reason.txt"}
    assert ":3: expected 98 fields" in reasons["with-label.csv.reason.txt"]
    assert "1 sent" in reasons["with-label.csv.reason.txt"]
    assert "column 'match' is the label" in reasons["wrong.csv.reason.txt"]


def test_watch_never_resends_a_file_interrupted_while_producing(
    stack: Config, tmp_path: Path
) -> None:
    (tmp_path / "processing" / "scoring").mkdir(parents=True)
    write(tmp_path / "processing" / "scoring" / "half.csv", [SCORE_LINES[0], SCORE_LINES[1]])
    start = end_offset(stack, "scoring")
    watcher = Watcher(
        tmp_path,
        bootstrap=stack.kafka_bootstrap,
        spec=FeatureSpec.load(SPEC_PATH),
        log=lambda _t: None,
    )
    watcher.close()
    failed = list((tmp_path / "failed").glob("*-half.csv.reason.txt"))
    assert len(failed) == 1 and "interrupted" in failed[0].read_text()
    assert end_offset(stack, "scoring") == start
    assert not any((tmp_path / "processing" / "scoring").iterdir())


def test_only_one_watcher_serves_a_directory(stack: Config, tmp_path: Path) -> None:
    spec = FeatureSpec.load(SPEC_PATH)
    first = Watcher(tmp_path, bootstrap=stack.kafka_bootstrap, spec=spec, log=lambda _t: None)
    try:
        with pytest.raises(WatcherBusy):
            Watcher(tmp_path, bootstrap=stack.kafka_bootstrap, spec=spec, log=lambda _t: None)
    finally:
        first.close()
    Watcher(tmp_path, bootstrap=stack.kafka_bootstrap, spec=spec, log=lambda _t: None).close()


def test_watch_keeps_a_file_for_later_when_the_broker_is_down(tmp_path: Path) -> None:
    logs: list[str] = []
    watcher = Watcher(
        tmp_path,
        bootstrap=f"127.0.0.1:{free_port()}",
        spec=FeatureSpec.load(SPEC_PATH),
        settle_s=0.0,
        log=logs.append,
    )
    try:
        dropped = write(tmp_path / "scoring" / "later.csv", [SCORE_LINES[0], SCORE_LINES[1]])
        watcher.scan_once()
        watcher.scan_once()
    finally:
        watcher.close()
    assert dropped.exists(), "nothing was sent, so the file waits for the broker"
    assert not any((tmp_path / "failed").iterdir())
    assert any("retry later" in line for line in logs)


def test_commands_report_an_unreachable_stack_without_a_traceback(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    closed = str(free_port())
    sql = subprocess.run(
        [sys.executable, "-m", "matchstream.cli", "sql", "--db-port", closed, "-e", "SELECT 1"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sql.returncode == 2, sql.stderr
    assert f"cannot connect to MariaDB at 127.0.0.1:{closed}" in sql.stderr
    assert "Traceback" not in sql.stderr
    path = write(tmp_path / "s.csv", [SCORE_LINES[0], SCORE_LINES[1]])
    produced = produce(cli_env, "scoring", str(path), "--bootstrap", f"127.0.0.1:{closed}")
    assert produced.returncode == 2, produced.stderr
    assert (
        f"Kafka at 127.0.0.1:{closed}" in produced.stderr and "0 rows were sent" in produced.stderr
    )
    assert "Traceback" not in produced.stderr
