"""The ``matchstream`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from matchstream.config import Config
from matchstream.errors import MatchstreamError
from matchstream.producer import ROLES

__all__ = ["main"]


def _add_stack_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", help="where the stack keeps its data (MATCHSTREAM_STATE_DIR)"
    )
    parser.add_argument("--host", help="address the stack binds to (MATCHSTREAM_HOST)")
    parser.add_argument(
        "--kafka-port",
        type=int,
        help=f"broker port (MATCHSTREAM_KAFKA_PORT, default {Config.kafka_port})",
    )
    parser.add_argument(
        "--db-port", type=int, help=f"MariaDB port (MATCHSTREAM_DB_PORT, default {Config.db_port})"
    )


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be a positive number")
    return value


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
    from matchstream.ml.trainer_link import stop_trainer
    from matchstream.stack import Stack

    config = _config(args)
    stopped = Stack(config).down()
    # The warm trainer of the local model directory would exit when idle; down means now.
    if stop_trainer(config.state_dir / "models"):
        stopped.append("trainer")
    print("stopped " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from matchstream.stack import Stack

    rows = Stack(_config(args)).status()
    print(f"{'component':<10} {'address':<18} {'pid':>8}  {'answers':<7}  note")
    for r in rows:
        pid = str(r.pid) if r.pid else "-"
        print(f"{r.name:<10} {r.address:<18} {pid:>8}  {'yes' if r.answers else 'no':<7}  {r.note}")
    # The warm trainer is not part of the stack: it starts with a training batch and exits
    # when idle, so its absence is not a fault and does not change the exit status.
    from matchstream.ml.trainer_link import trainer_pid

    model_dir = _config(args).state_dir / "models"
    trainer = trainer_pid(model_dir)
    print(f"{'trainer':<10} {'-':<18} {trainer or '-':>8}  {'yes' if trainer else 'no':<7}  "
          "warm trainer "
          f"of {model_dir} (started by train.py, exits when idle)")
    if any(r.name == "mariadb" and r.answers for r in rows):
        print()
        print(_pipelines_text(_config(args)))
    if any(r.name == "broker" and r.answers for r in rows):
        print()
        print(_clients_text(_config(args)))
    silent = [r.name for r in rows if not r.answers]
    if silent:
        print(
            f"not answering: {', '.join(silent)} (matchstream up starts what is missing; "
            f"logs in {_config(args).log_dir})",
            file=sys.stderr,
        )
        return 3
    return 0


def _pipelines_text(config: Config) -> str:
    """The pipeline table of ``status``, or why it cannot be had (never fatal: the components'
    table above is what the exit status is about)."""
    import pymysql

    from matchstream.db import connect
    from matchstream.pipeline_status import format_statuses, pipeline_statuses

    try:
        conn = connect(config, io_timeout_s=10)
        try:
            return format_statuses(pipeline_statuses(conn))
        finally:
            conn.close()
    except (MatchstreamError, pymysql.MySQLError) as exc:
        return f"pipelines: cannot read the catalog ({exc})"


def _clients_text(config: Config) -> str:
    """The Kafka clients found here and the kcat line that works against this broker (local
    look-ups only: package versions and ``kcat -V``)."""
    from matchstream.kafka_clients import client_rows, format_clients, kcat_command

    rows, kcat = client_rows(config.state_dir)
    line = None
    if kcat.environment is not None:
        line = kcat_command(config.kafka_bootstrap, ["-L"], kcat.environment)
    return format_clients(rows, line)


def _parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise MatchstreamError(f"--var {pair!r}: expected NAME=VALUE")
        variables[name] = value
    return variables


def cmd_sql(args: argparse.Namespace) -> int:
    from pathlib import Path

    from matchstream.output import OutputStyle, ResultFormat
    from matchstream.sqlrunner import ScriptSource, default_variables, run_sources

    config = _config(args)
    sources: list[ScriptSource] = []
    for file in args.files:
        path = Path(file)
        if not path.is_file():
            raise MatchstreamError(f"{file}: no such SQL file")
        sources.append(ScriptSource.from_file(path))
    for i, text in enumerate(args.execute or (), start=1):
        sources.append(ScriptSource(text, f"-e#{i}", Path.cwd()))
    if not sources:
        sources.append(ScriptSource(sys.stdin.read(), "<stdin>", Path.cwd()))
    variables = {**default_variables(config), **_parse_vars(args.var or ())}
    result_format = ResultFormat(OutputStyle(args.style), column_names=not args.skip_column_names)
    note = _stderr if result_format.keeps_stdout_for_rows else print
    run_sources(sources, config=config, variables=variables, database=args.database,
                result_format=result_format, note=note)
    return 0


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def cmd_produce(args: argparse.Namespace) -> int:
    from pathlib import Path

    from matchstream.ml.spec import FeatureSpec
    from matchstream.producer import produce_files, role_for_topic
    from matchstream.sqlrunner import default_variables

    config = _config(args)
    spec = FeatureSpec.load(args.spec or default_variables(config)["FEATURES"])
    report = produce_files(
        args.topic,
        [Path(f) for f in args.files],
        bootstrap=args.bootstrap or config.kafka_bootstrap,
        spec=spec,
        role=role_for_topic(args.topic, args.role),
        validate=not args.no_validate,
        rate=args.rate,
        loop=args.loop,
        shuffle=args.shuffle,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(f"{args.topic}: sent {report.sent} rows, rejected {len(report.rejected)}")
    return 1 if report.rejected else 0


def cmd_watch(args: argparse.Namespace) -> int:
    import threading
    from pathlib import Path

    from matchstream.ml.spec import FeatureSpec
    from matchstream.sqlrunner import default_variables
    from matchstream.watcher import Watcher

    config = _config(args)
    spec = FeatureSpec.load(args.spec or default_variables(config)["FEATURES"])
    watcher = Watcher(
        Path(args.dir), bootstrap=config.kafka_bootstrap, spec=spec, settle_s=args.settle
    )
    if args.once:
        try:
            watcher.scan_once()
        finally:
            watcher.close()
        return 0
    watcher.run(threading.Event())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from matchstream.demo import DemoOptions, run_demo

    rates = {"train_rate": args.train_rate} if args.train_rate is not None else {}
    print(run_demo(_config(args), DemoOptions(reset=args.reset, **rates)))
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from matchstream.alerts import AlertsOptions, run_publisher

    options = AlertsOptions(interval_s=args.interval, catch_up_timeout_s=args.catch_up_timeout)
    total = run_publisher(_config(args), options, once=args.once,
                          emit=lambda text: print(text, flush=True))
    if args.once:
        print(f"published {total} alerts to topic {options.topic}")
    return 0


def _add_dashboard_flags(parser: argparse.ArgumentParser) -> None:
    from matchstream.dashboard import DEFAULT_CATALOG, DEFAULT_DATABASE

    parser.add_argument(
        "--state-dir", help="where the stack keeps its data (MATCHSTREAM_STATE_DIR)"
    )
    parser.add_argument(
        "--db-port", type=int, help=f"MariaDB port (MATCHSTREAM_DB_PORT, default {Config.db_port})"
    )
    parser.add_argument("-D", "--database", default=DEFAULT_DATABASE,
                        help=f"the database shown (default {DEFAULT_DATABASE})")
    parser.add_argument("--catalog", default=DEFAULT_CATALOG,
                        help=f"schema of the pipeline views (default {DEFAULT_CATALOG}; "
                        "information_schema on SingleStore)")


def _dashboard_connect(config: Config, database: str) -> Callable[[], Any]:
    from matchstream.db import connect

    # Reads bounded in time, so a stuck query fails its own refresh only (the server keeps a few
    # sessions between refreshes: matchstream/dashboard/sessions.py).
    return lambda: connect(config, database, io_timeout_s=10)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from matchstream.dashboard.server import serve

    config = Config.from_env(state_dir=args.state_dir, db_port=args.db_port,
                             dashboard_port=args.dashboard_port)

    def ready(url: str) -> None:
        print(f"dashboard of {args.database}: {url}  (updates every 2 s; Ctrl-C stops it)",
              flush=True)

    serve(args.bind, config.dashboard_port, _dashboard_connect(config, args.database),
          database=args.database, catalog=args.catalog, ready=ready)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from matchstream.dashboard.report import write_report

    config = Config.from_env(state_dir=args.state_dir, db_port=args.db_port)
    out = Path(args.out)
    snapshot = write_report(out, _dashboard_connect(config, args.database),
                            database=args.database, catalog=args.catalog)
    for section, message in snapshot["errors"].items():
        print(f"matchstream report: {section}: {message}", file=sys.stderr)
    print(f"wrote {out} ({out.stat().st_size} bytes; open it in any browser, it needs nothing "
          "else)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matchstream",
        description="Real-time ML in the ingest path: the local stack, SQL and pipelines.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("up", cmd_up, "start the local stack (idempotent) and print how to connect"),
        ("down", cmd_down, "stop exactly the processes `up` started"),
        ("status", cmd_status, "show each component, its address and whether it answers, "
         "then each pipeline's state, lag, latest batch time and latest error, then the Kafka "
         "clients found here and the kcat command line that works"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        _add_stack_flags(p)
        p.set_defaults(func=func)
    sql = sub.add_parser(
        "sql",
        help="run SQL files, -e statements or stdin (pipeline statements go to the engine)",
        description="Run SQL through the local stack. Statements are split like the mysql "
        "client does; CREATE/START/STOP/ALTER/DROP/SHOW/TEST/EXTRACT PIPELINE statements and "
        "SELECT ... INTO KAFKA run in the local pipeline engine, everything else in MariaDB once "
        "the SingleStore gate has checked it (information_schema.PIPELINES* and @@pipelines_* "
        "are the engine's). ${NAME} placeholders are filled from --var NAME=VALUE, whose local "
        "defaults are KAFKA, TRANSFORMS, MODEL_DIR and FEATURES.",
    )
    sql.add_argument("files", nargs="*", help="SQL files, run in the order given")
    sql.add_argument("-e", "--execute", action="append", help="SQL text to run (repeatable)")
    sql.add_argument("--var", action="append", metavar="NAME=VALUE", help="placeholder value")
    sql.add_argument("-D", "--database", help="database to use first")
    style = sql.add_mutually_exclusive_group()
    style.add_argument("-B", "--batch", dest="style", action="store_const", const="batch",
                       default="table", help="tab-separated rows like `mysql -B` (special "
                       "characters escaped, NULL as NULL); statement messages go to stderr")
    style.add_argument("--json", dest="style", action="store_const", const="json",
                       help="one JSON object per row (JSON Lines); messages go to stderr")
    sql.add_argument("-N", "--skip-column-names", action="store_true",
                     help="leave out the header line (column names), like `mysql -N`")
    _add_stack_flags(sql)
    sql.set_defaults(func=cmd_sql)

    produce = sub.add_parser(
        "produce",
        help="send CSV rows to a topic, one message per row, checked against the feature spec",
        description="Send every data row of the CSV files to TOPIC (header not sent), keyed by "
        "the spec's id column. Rows the spec rejects are reported as file:line and not sent; "
        "the exit status is 1 when any row was rejected, 2 on an error.",
    )
    produce.add_argument("topic")
    produce.add_argument("files", nargs="+", metavar="FILE.csv")
    produce.add_argument("--spec", help="feature spec (default data/features.json)")
    produce.add_argument(
        "--role",
        choices=ROLES,
        help="rows carry the label (training), not (scoring), or are id,label outcome rows "
        "(outcomes); default: the topic's name",
    )
    produce.add_argument("--rate", type=_positive, metavar="ROWS_PER_S", help="limit the send rate")
    produce.add_argument("--loop", action="store_true", help="send the files again and again")
    produce.add_argument("--shuffle", action="store_true", help="send rows in random order")
    produce.add_argument("--seed", type=int, help="seed for --shuffle")
    produce.add_argument(
        "--no-validate",
        action="store_true",
        help="send rows without checking them against the spec",
    )
    produce.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the local stack)")
    produce.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_stack_flags(produce)
    produce.set_defaults(func=cmd_produce)

    watch = sub.add_parser(
        "watch",
        help="produce every CSV dropped into DIR/training/, DIR/scoring/ or DIR/outcomes/, once",
        description="Each complete file in DIR/training/, DIR/scoring/ or DIR/outcomes/ is "
        "produced to that "
        "topic exactly once, then moved to DIR/done/ or to DIR/failed/ with a .reason.txt.",
    )
    watch.add_argument("dir")
    watch.add_argument("--spec", help="feature spec (default data/features.json)")
    watch.add_argument(
        "--settle",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="a file must stay unchanged this long before it is produced",
    )
    watch.add_argument("--once", action="store_true", help="one scan, then exit")
    _add_stack_flags(watch)
    watch.set_defaults(func=cmd_watch)

    demo = sub.add_parser(
        "demo",
        help="run the main job: both pipelines on the speed-dating data, then a summary",
        description="Apply sql/, start the pipelines, produce data/train.csv and "
        "data/score.csv at the same time and each date's true outcome (data/score_labels.csv) "
        "to outcomes a delay after its scoring row, wait for the pipelines' cursors and print "
        "a summary. A second run prints the summary only; --reset starts over.",
    )
    demo.add_argument(
        "--reset",
        action="store_true",
        help="drop pipelines, database, model versions and topic data first",
    )
    demo.add_argument(
        "--train-rate",
        type=float,
        metavar="ROWS_PER_S",
        help="training rows per second (default 150)",
    )
    _add_stack_flags(demo)
    demo.set_defaults(func=cmd_demo)
    alerts = sub.add_parser(
        "alerts",
        help="publish each new match alert to the alerts topic, exactly once",
        description="Rounds of: wait until the pipeline alerts_published has loaded the whole "
        "alerts topic, then SELECT ... INTO KAFKA every alert of match_alerts not on it yet "
        "(sql/alerts/publish.sql). A crash cannot publish an alert twice (README: Alerts on "
        "Kafka). Runs until Ctrl-C; --once runs one round.",
    )
    alerts.add_argument("--once", action="store_true", help="one round, then exit")
    alerts.add_argument("--interval", type=_positive, default=2.0, metavar="SECONDS",
                        help="pause between rounds (default 2)")
    alerts.add_argument("--catch-up-timeout", type=_positive, default=120.0, metavar="SECONDS",
                        help="how long a round waits for alerts_published to catch up with the "
                        "topic before it fails (default 120)")
    _add_stack_flags(alerts)
    alerts.set_defaults(func=cmd_alerts)
    dashboard = sub.add_parser(
        "dashboard",
        help="serve a live web page of the model's quality, predictions and pipelines",
        description="Serve, on a local address, a page that updates every 2 s from the "
        "database: AUC, accuracy and F1 per model version, live accuracy against the known "
        "outcomes, predictions per second, each pipeline's state, lag and batch time, the "
        "latest pipeline errors. Every asset ships with matchstream: it works offline.",
    )
    dashboard.add_argument(
        "--port", "--dashboard-port", dest="dashboard_port", type=int,
        help=f"port to listen on (MATCHSTREAM_DASHBOARD_PORT, default {Config.dashboard_port})")
    dashboard.add_argument("--host", dest="bind", default="127.0.0.1",
                           help="address to listen on (default 127.0.0.1: this machine only)")
    _add_dashboard_flags(dashboard)
    dashboard.set_defaults(func=cmd_dashboard)
    report = sub.add_parser(
        "report",
        help="write the dashboard's charts, with the current data, to one self-contained HTML "
        "file",
        description="Write the dashboard of the current data to FILE: one HTML file with its "
        "scripts inlined and the data embedded, that opens in a browser without a server or a "
        "network.",
    )
    report.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write")
    _add_dashboard_flags(report)
    report.set_defaults(func=cmd_report)
    from matchstream.model_command import add_parser as add_model_parser

    add_model_parser(sub, _add_stack_flags)
    from matchstream.cluster.command import add_parser as add_cluster_parser

    add_cluster_parser(sub)
    _whole_option_names_only(parser)
    return parser


def _whole_option_names_only(parser: argparse.ArgumentParser) -> None:
    """No prefix matching anywhere (``--db 5`` must not mean ``--db-port 5``); argparse reads
    ``allow_abbrev`` at parse time, so setting it on every sub-parser here is enough."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _whole_option_names_only(sub)


def main(argv: Sequence[str] | None = None) -> int:
    from matchstream.stack.engine_process import prepend_interpreter

    args = build_parser().parse_args(argv)
    prepend_interpreter(os.environ)
    try:
        if args.command == "model":
            return int(args.func(args, _config(args)))
        return int(args.func(args))
    except MatchstreamError as exc:
        print(f"matchstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
