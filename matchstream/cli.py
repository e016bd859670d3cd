"""The ``matchstream`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from matchstream.config import Config
from matchstream.errors import MatchstreamError

__all__ = ["main"]


def _add_stack_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", help="where the stack keeps its data (MATCHSTREAM_STATE_DIR)"
    )
    parser.add_argument("--host", help="address the stack binds to (MATCHSTREAM_HOST)")
    parser.add_argument("--kafka-port", type=int, help="broker port (MATCHSTREAM_KAFKA_PORT, 9092)")
    parser.add_argument("--db-port", type=int, help="MariaDB port (MATCHSTREAM_DB_PORT, 3307)")


def _config(args: argparse.Namespace) -> Config:
    return Config.from_env(
        state_dir=args.state_dir, host=args.host, kafka_port=args.kafka_port, db_port=args.db_port
    )


def cmd_up(args: argparse.Namespace) -> int:
    from matchstream.stack import Stack
    from matchstream.stack.mariadb import mask

    config = _config(args)
    stack = Stack(config)
    for line in stack.up() or ["already running"]:
        print(line)
    print()
    print(f"Kafka bootstrap: {config.kafka_bootstrap}  (broker keeps data in memory only)")
    print(
        f"MariaDB:         {config.host}:{config.db_port}  user {config.db_user}, "
        f"password {mask(config.db_password())} in {config.db_password_file}"
    )
    print(f"Connect:         {stack.mariadb.connect_hint()}")
    print("SQL:             matchstream sql -e 'SHOW PIPELINES'")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from matchstream.stack import Stack

    stopped = Stack(_config(args)).down()
    print("stopped " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from matchstream.stack import Stack

    rows = Stack(_config(args)).status()
    print(f"{'component':<10} {'address':<18} {'pid':>8}  {'answers':<7}  note")
    for r in rows:
        pid = str(r.pid) if r.pid else "-"
        print(f"{r.name:<10} {r.address:<18} {pid:>8}  {'yes' if r.answers else 'no':<7}  {r.note}")
    return 0 if all(r.answers for r in rows) else 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matchstream",
        description="Real-time ML in the ingest path: the local stack, SQL and pipelines.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("up", cmd_up, "start the local stack (idempotent) and print how to connect"),
        ("down", cmd_down, "stop exactly the processes `up` started"),
        ("status", cmd_status, "show each component, its address and whether it answers"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        _add_stack_flags(p)
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MatchstreamError as exc:
        print(f"matchstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
