"""settings.retry_policy: SingleStore 9.x's retry defaults and the precedence of the clauses
("Pipeline Retry Options": RETRY_OPTIONS wins over MAX_RETRIES_PER_BATCH_PARTITION; the defaults
come from the batch interval and the engine variables)."""

from __future__ import annotations

import pytest

from matchstream.ddl import ast, parse_statement
from matchstream.engine.settings import RetryPolicy, retry_policy


def _stmt(clauses: str = "") -> ast.CreatePipeline:
    stmt = parse_statement(f"CREATE PIPELINE p AS LOAD DATA KAFKA 'h/t' {clauses} INTO TABLE t")
    assert isinstance(stmt, ast.CreatePipeline)
    return stmt


def test_no_clause_is_the_9x_default() -> None:
    assert retry_policy(_stmt()) == RetryPolicy(4, 2500, 25000, True)


def test_engine_variables_give_the_defaults_the_pipeline_does_not_set() -> None:
    variables = {"pipelines_batch_interval": 100, "pipelines_max_retries_per_batch_partition": 6}
    assert retry_policy(_stmt(), variables) == RetryPolicy(6, 100, 1000, True)
    # The pipeline's own clauses win over the variables.
    assert retry_policy(_stmt("BATCH_INTERVAL 40 MAX_RETRIES_PER_BATCH_PARTITION 2"),
                        variables) == RetryPolicy(2, 40, 400, True)


def test_retry_options_win_key_by_key() -> None:
    stmt = _stmt('BATCH_INTERVAL 40 MAX_RETRIES_PER_BATCH_PARTITION 2 RETRY_OPTIONS '
                 '\'{"max_retries": 9}\'')
    assert retry_policy(stmt) == RetryPolicy(9, 40, 400, True)
    stmt = _stmt('BATCH_INTERVAL 40 RETRY_OPTIONS \'{"retry_interval": 7, "exponential": false}\'')
    assert retry_policy(stmt) == RetryPolicy(4, 7, 70, False)
    stmt = _stmt('RETRY_OPTIONS \'{"max_retry_interval": 3000}\'')
    assert retry_policy(stmt) == RetryPolicy(4, 2500, 3000, True)


@pytest.mark.parametrize(
    ("policy", "waits"),
    [
        (RetryPolicy(5, 100, 1000, True), [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]),
        (RetryPolicy(5, 100, 250, True), [0.1, 0.2, 0.25, 0.25, 0.25, 0.25]),
        (RetryPolicy(5, 300, 0, False), [0.3] * 6),
        (RetryPolicy(5, 0, 0, True), [0.0] * 6),  # BATCH_INTERVAL 0: retry at once
    ],
)
def test_delays(policy: RetryPolicy, waits: list[float]) -> None:
    assert [policy.delay_s(n) for n in range(1, 7)] == waits


def test_set_global_values_the_catalog_attaches_are_the_defaults() -> None:
    from dataclasses import replace

    stmt = replace(_stmt(), defaults=ast.BatchDefaults(batch_interval=300,
                                                       max_retries_per_batch_partition=2))
    assert retry_policy(stmt) == RetryPolicy(2, 300, 3000, True)
    assert retry_policy(replace(stmt, batch_interval=50)) == RetryPolicy(2, 50, 500, True)
