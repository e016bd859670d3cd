"""`matchstream alerts`: its options (whole names only, positive numbers)."""

from __future__ import annotations

import pytest

from matchstream.cli import build_parser


def test_options_and_defaults():
    args = build_parser().parse_args(["alerts", "--once", "--interval", "0.5"])
    assert (args.command, args.once, args.interval, args.catch_up_timeout) == (
        "alerts", True, 0.5, 120.0)
    assert build_parser().parse_args(["alerts"]).once is False


@pytest.mark.parametrize("argv", [["alerts", "--inter", "1"], ["alerts", "--interval", "0"],
                                  ["alerts", "--catch-up-timeout", "-1"]])
def test_abbreviations_and_non_positive_values_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err
