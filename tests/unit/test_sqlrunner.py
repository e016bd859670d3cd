from __future__ import annotations

import pytest

from matchstream.errors import MatchstreamError
from matchstream.sqlrunner import check_variables, format_table


def test_format_table_aligns_and_shows_null() -> None:
    text = format_table(["id", "name"], [(1, "ab"), (22, None)])
    assert text.splitlines() == [
        "+----+------+",
        "| id | name |",
        "+----+------+",
        "| 1  | ab   |",
        "| 22 | NULL |",
        "+----+------+",
        "2 rows in set",
    ]


@pytest.mark.parametrize("value", ["/home/me/My Projects/x", "it's", "a\\b", "tab\there"])
def test_values_that_cannot_pass_through_sql_and_argv_are_rejected(value: str) -> None:
    with pytest.raises(MatchstreamError, match=r"\$\{MODEL_DIR\}"):
        check_variables({"KAFKA": "127.0.0.1:9092", "MODEL_DIR": value})


def test_plain_paths_and_addresses_pass() -> None:
    check_variables({"KAFKA": "kafka:29092", "MODEL_DIR": "/var/lib/matchstream/models"})
