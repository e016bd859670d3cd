"""``SELECT ... INTO KAFKA``: run the query on the session, produce each row as one message.

SingleStore writes each result row as a separate Kafka message in ``SELECT ... INTO OUTFILE``'s
text format: the FIELDS/LINES options of the statement (MySQL's defaults: fields terminated by a
tab, no enclosure, escaped by ``\\``; lines terminated by ``\\n``), so a message is one line,
terminator included, and ``NULL`` is ``\\N``. ``KAFKA KEY col`` makes that column's value the
message key; SingleStore's documented example selects the key column twice
(``SELECT column_b, column_a, column_b ... KAFKA KEY "column_b"``), so the key column is taken
out of the value and the first column of that name is the key (docs/pipeline-grammar.md).

Delivery is librdkafka's idempotent producer with ``acks=all``: a retried send cannot duplicate a
message. The statement is not atomic: if the broker fails half way, the rows delivered before
stay on the topic and the error says how many there are (``matchstream/alerts.py`` builds exactly
once on top of that).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pymysql
from confluent_kafka import KafkaError, KafkaException, Producer
from pymysql.constants import FIELD_TYPE

from matchstream.ddl.ast import FieldsOptions, LinesOptions, SelectIntoKafka
from matchstream.engine.errors import EngineError
from matchstream.engine.extractor import CONFIG_KEYS, CREDENTIAL_KEYS, REQUEST_TIMEOUT_S

__all__ = ["IntoKafkaError", "format_row", "producer_options", "select_into_kafka"]

# Librdkafka properties SELECT ... INTO KAFKA's CONFIG may set on top of the pipelines' list:
# compression is the producer's own business. What decides delivery (acks, idempotence,
# retries, timeouts) stays the engine's, so "exactly what is on the topic" keeps its meaning.
PRODUCER_CONFIG_KEYS = CONFIG_KEYS | {"compression.type", "compression.codec"}
# How long the producer may take to deliver everything the query returned.
DELIVERY_TIMEOUT_S = 30.0
# Rows fetched from the database per round trip (the query is streamed, never held whole).
FETCH_ROWS = 1000

# Column types SingleStore/MySQL enclose under OPTIONALLY ENCLOSED BY: the string types.
_STRING_TYPES = frozenset({
    FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.ENUM,
    FIELD_TYPE.SET, FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB,
    FIELD_TYPE.BLOB, FIELD_TYPE.JSON,
})


class IntoKafkaError(EngineError):
    """SELECT ... INTO KAFKA failed: the query, an option, the topic or the delivery; the
    message names the topic as ``brokers/topic``."""


def producer_options(config: Mapping[str, object],
                     credentials: Mapping[str, object]) -> dict[str, str | int | bool]:
    """The librdkafka properties of CONFIG and CREDENTIALS; an unknown key is refused.

    >>> producer_options({"client.id": "alerts"}, {"sasl.password": "s"})
    {'client.id': 'alerts', 'sasl.password': 's'}
    >>> producer_options({"acks": "1"}, {})
    Traceback (most recent call last):
    ...
    matchstream.engine.into_kafka.IntoKafkaError: SELECT ... INTO KAFKA: CONFIG key 'acks' is \
not supported by the local engine (it always produces idempotently with acks=all; allowed keys: \
client.id, compression.codec, compression.type, sasl.mechanism, sasl.mechanisms, \
security.protocol, ssl.ca.location, ssl.certificate.location, ssl.cipher.suites, \
ssl.endpoint.identification.algorithm, ssl.key.location)
    """
    options: dict[str, str | int | bool] = {}
    for clause, given, allowed in (("CONFIG", config, PRODUCER_CONFIG_KEYS),
                                   ("CREDENTIALS", credentials, CREDENTIAL_KEYS)):
        for key, value in given.items():
            if key not in allowed:
                hint = "allowed keys: " + ", ".join(sorted(allowed))
                if clause == "CONFIG" and key in CREDENTIAL_KEYS:
                    hint = "put secrets in CREDENTIALS"
                elif clause == "CONFIG":
                    hint = "it always produces idempotently with acks=all; " + hint
                raise IntoKafkaError(f"SELECT ... INTO KAFKA: {clause} key {key!r} is not "
                                     f"supported by the local engine ({hint})")
            if not isinstance(value, str | int | bool):
                raise IntoKafkaError(f"SELECT ... INTO KAFKA: {clause} key {key!r} needs a "
                                     f"string, number or boolean, not {type(value).__name__}")
            options[key] = value
    return options


def _escaper(fields: FieldsOptions, lines: LinesOptions) -> Callable[[bytes], bytes]:
    """MySQL's INTO OUTFILE escaping: the escape character goes before itself, the enclosing
    character, NUL (written ``\\0``) and, without enclosure, the first character of the field
    and line terminators."""
    escape = (fields.escaped_by or "").encode()
    if not escape:
        return lambda raw: raw
    specials = {escape, b"\0"}
    if fields.enclosed_by:
        specials.add(fields.enclosed_by.encode())
    else:
        specials.update(t[:1].encode() for t in (fields.terminated_by, lines.terminated_by) if t)
    pattern = re.compile(b"|".join(re.escape(s) for s in sorted(specials)))

    def escape_special(match: re.Match[bytes]) -> bytes:
        return escape + (b"0" if match.group() == b"\0" else match.group())

    return lambda raw: pattern.sub(escape_special, raw)


def format_row(
    values: Sequence[str | bytes | None],
    *,
    fields: FieldsOptions,
    lines: LinesOptions,
    quotable: Sequence[bool] | None = None,
) -> bytes:
    """One row as INTO OUTFILE writes it, terminator included. ``fields``/``lines`` must have
    their defaults filled in; ``quotable[i]`` says column i is a string (OPTIONALLY ENCLOSED).

    >>> plain = (FieldsOptions().with_defaults(), LinesOptions().with_defaults())
    >>> format_row(["7", None, "a\\tb", "0.93"], fields=plain[0], lines=plain[1])
    b'7\\t\\\\N\\ta\\\\\\tb\\t0.93\\n'
    >>> csv = FieldsOptions(",", '"', True, "\\\\").with_defaults()
    >>> format_row(["7", 'say "hi"'], fields=csv, lines=plain[1], quotable=[False, True])
    b'7,"say \\\\"hi\\\\""\\n'
    """
    escape = _escaper(fields, lines)
    enclose = (fields.enclosed_by or "").encode()
    null = (fields.escaped_by or "").encode() + b"N" if fields.escaped_by else b"NULL"
    out: list[bytes] = []
    for index, value in enumerate(values):
        if value is None:
            out.append(null)
            continue
        raw = escape(value if isinstance(value, bytes) else str(value).encode())
        if enclose and (not fields.optionally_enclosed or (quotable and quotable[index])):
            raw = enclose + raw + enclose
        out.append(raw)
    return ((lines.starting_by or "").encode() + (fields.terminated_by or "").encode().join(out)
            + (lines.terminated_by or "").encode())


def _key_index(stmt: SelectIntoKafka, columns: Sequence[str]) -> int | None:
    if stmt.key_column is None:
        return None
    wanted = stmt.key_column.lower()  # MySQL compares column names without case
    for index, name in enumerate(columns):
        if name.lower() == wanted:
            return index
    where = f"{stmt.key_location}: " if stmt.key_location else ""
    raise IntoKafkaError(f"{where}KAFKA KEY column {stmt.key_column!r} is not a column of the "
                         f"query (its columns: {', '.join(columns) or 'none'})")


class _Delivery:
    """Counts acknowledged messages and keeps the first failure."""

    def __init__(self) -> None:
        self.delivered = 0
        self.error: KafkaError | None = None

    def __call__(self, error: KafkaError | None, _message: Any) -> None:
        if error is None:
            self.delivered += 1
        elif self.error is None:
            self.error = error


def _producer(stmt: SelectIntoKafka, database: str) -> Producer:
    options = producer_options(stmt.config_dict(), stmt.credentials_dict())
    return Producer({
        "bootstrap.servers": ",".join(stmt.destination.bootstrap_servers()),
        "client.id": f"matchstream-into-kafka-{database}",
        **options,
        "enable.idempotence": True,  # implies acks=all and in-order retries without duplicates
        "acks": "all",
        "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
        # A missing topic is an error, not a topic created with the broker's defaults by accident.
        "allow.auto.create.topics": False,
        "logger": _quiet_logger,
    })


# librdkafka's own log lines (every refused connection) would drown the statement's error.
_quiet_logger = logging.getLogger(__name__ + ".librdkafka")
_quiet_logger.addHandler(logging.NullHandler())
_quiet_logger.propagate = False


def _check_topic(producer: Producer, stmt: SelectIntoKafka) -> None:
    endpoint = stmt.destination.endpoint
    try:
        metadata = producer.list_topics(stmt.destination.topic, timeout=REQUEST_TIMEOUT_S)
    except KafkaException as exc:
        raise IntoKafkaError(f"SELECT ... INTO KAFKA '{endpoint}': cannot reach Kafka at "
                             f"{', '.join(stmt.destination.bootstrap_servers())}: "
                             f"{exc.args[0].str() if exc.args else exc}") from None
    found = metadata.topics.get(stmt.destination.topic)
    if found is None or (found.error is not None
                         and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise IntoKafkaError(f"SELECT ... INTO KAFKA '{endpoint}': topic "
                             f"{stmt.destination.topic!r} does not exist (create it first)")
    if found.error is not None:
        raise IntoKafkaError(f"SELECT ... INTO KAFKA '{endpoint}': {found.error.str()}")


def select_into_kafka(conn: Any, stmt: SelectIntoKafka, *, database: str) -> int:
    """Run ``stmt.select`` on ``conn`` and produce every row; returns the rows delivered.

    The topic and options are checked before the query runs, so a bad address or option fails
    without reading anything.
    """
    endpoint = stmt.destination.endpoint
    producer = _producer(stmt, database)
    _check_topic(producer, stmt)
    fields, lines = stmt.effective_fields, stmt.effective_lines
    delivery = _Delivery()
    produced = 0
    # The server's own text for every value, as INTO OUTFILE writes it: no conversion to
    # Python types and back (a DATETIME(6) keeps its six digits, a DOUBLE its digits).
    saved = conn.decoders
    conn.decoders = {}
    try:
        with conn.cursor(pymysql.cursors.SSCursor) as cursor:
            try:
                cursor.execute(stmt.select)
            except pymysql.MySQLError as exc:
                args: tuple[Any, ...] = tuple(exc.args)
                reason = f"ERROR {args[0]}: {args[1]}" if len(args) > 1 else str(exc)
                raise IntoKafkaError(f"SELECT ... INTO KAFKA '{endpoint}': the query failed: "
                                     f"{reason}") from None
            description = cursor.description or ()
            columns = [str(d[0]) for d in description]
            key_index = _key_index(stmt, columns)
            quotable = [d[1] in _STRING_TYPES for d in description]
            if key_index is not None:
                del quotable[key_index]
            while True:
                rows = cursor.fetchmany(FETCH_ROWS)
                if not rows:
                    break
                for row in rows:
                    values = list(row)
                    key = None
                    if key_index is not None:
                        raw_key = values.pop(key_index)
                        key = raw_key if raw_key is None or isinstance(raw_key, bytes) \
                            else str(raw_key).encode()
                    value = format_row(values, fields=fields, lines=lines, quotable=quotable)
                    _produce(producer, stmt.destination.topic, key, value, delivery)
                    produced += 1
    finally:
        conn.decoders = saved
    left = producer.flush(DELIVERY_TIMEOUT_S)
    if delivery.error is not None or left:
        reason = delivery.error.str() if delivery.error is not None else \
            f"{left} messages not acknowledged within {DELIVERY_TIMEOUT_S:.0f} s"
        raise IntoKafkaError(f"SELECT ... INTO KAFKA '{endpoint}': {reason}; "
                             f"{delivery.delivered} of {produced} rows were delivered")
    return delivery.delivered


def _produce(producer: Producer, topic: str, key: bytes | None, value: bytes,
             delivery: _Delivery) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=delivery)
            producer.poll(0)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)
