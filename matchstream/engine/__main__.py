"""``python -m matchstream.engine --state-dir DIR``: the engine process ``matchstream up`` starts.

Flags map one to one onto :class:`matchstream.config.Config` fields (argument > ``MATCHSTREAM_*``
environment variable > default). SIGTERM and SIGINT stop it cleanly: in-flight batch partitions
are rolled back (or finish if they are already committing). SIGKILL is safe too.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import fields
from types import FrameType

from matchstream.config import Config
from matchstream.engine.engine import Engine
from matchstream.errors import MatchstreamError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m matchstream.engine",
                                     description="Run the local pipeline engine.",
                                     allow_abbrev=False)
    for f in fields(Config):
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                            help=f"overrides {Config.setting_name(f.name)}")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    level = args.pop("log_level")
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        config = Config.from_env(**args)
        stop = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        Engine(config).run(stop)
    except MatchstreamError as exc:
        print(f"matchstream engine: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
