"""The AST the parser builds, defaults, rendering details and structured errors."""

from __future__ import annotations

import pytest

from matchstream.ddl import (
    DdlSyntaxError,
    UnsupportedByLocalEngine,
    ast,
    parse_statement,
    render,
    show_create,
)

KAFKA = "CREATE PIPELINE p AS LOAD DATA KAFKA 'localhost:9092/events' "


def create(sql: str) -> ast.CreatePipeline:
    node = parse_statement(sql)
    assert isinstance(node, ast.CreatePipeline)
    return node


def test_minimal_create_leaves_every_option_unset():
    node = create(KAFKA + "INTO TABLE t")
    assert node == ast.CreatePipeline(
        name="p", source=ast.KafkaSource(("localhost:9092",), "events"), table="t"
    )
    assert node.effective_batch_interval == 2500
    assert node.effective_max_retries_per_batch_partition == 4
    assert node.effective_max_offsets_per_batch_partition == 1_000_000
    assert node.effective_stop_on_error is True
    assert node.effective_fields == ast.FieldsOptions("\t", "", False, "\\")
    assert node.effective_lines == ast.LinesOptions("", "\n")
    assert node.config_dict() == {} and node.credentials_dict() == {}


def test_full_create_fills_every_field():
    node = create(
        "create or replace aggregator pipeline if not exists `p` as load data kafka "
        """'b1,b2:9093/top.ic' config '{"a": 1}' credentials '{"k": "v"}' batch_interval 7 """
        "max_partitions_per_batch 2 max_retries_per_batch_partition 3 "
        "max_offsets_per_batch_partition 5 with transform ('file:///t.py', 'x', '-a  -b') "
        "ignore replace stop_on_error off into table `T` character set utf8mb4 "
        """fields terminated by ',' optionally enclosed by '"' escaped by '' """
        "lines starting by 'S' terminated by ';' trailing nullcols null defined by 'N' "
        "ignore 3 lines (a, @v, @, `T`.b) set c = @v * 2, d = 'x,y' where a > 0"
    )
    assert node == ast.CreatePipeline(
        name="p",
        source=ast.KafkaSource(("b1", "b2:9093"), "top.ic"),
        table="T",
        or_replace=True,
        if_not_exists=True,
        aggregator=True,
        config='{"a": 1}',
        credentials='{"k": "v"}',
        batch_interval=7,
        max_partitions_per_batch=2,
        max_retries_per_batch_partition=3,
        max_offsets_per_batch_partition=5,
        transform=ast.TransformSpec("file:///t.py", "x", "-a  -b"),
        error_handling=ast.ErrorHandling.IGNORE,
        replace=True,
        stop_on_error=False,
        charset="utf8mb4",
        fields=ast.FieldsOptions(",", '"', True, ""),
        lines=ast.LinesOptions("S", ";"),
        trailing_nullcols=True,
        null_defined_by=ast.NullDefinedBy("N"),
        ignore_lines=3,
        columns=(ast.ColumnRef("a"), ast.VarRef("v"), ast.DiscardField(), ast.ColumnRef("b")),
        set_assignments=(ast.SetAssignment("c", "@v * 2"), ast.SetAssignment("d", "'x,y'")),
        where="a > 0",
    )
    assert node.source.bootstrap_servers() == ("b1:9092", "b2:9093")
    assert node.transform is not None and node.transform.argv_tail() == ("-a", "-b")
    assert node.config_dict() == {"a": 1}
    assert parse_statement(render(node)) == node


@pytest.mark.parametrize(
    ("clause", "handling", "replace"),
    [
        ("REPLACE", None, True),
        ("IGNORE", ast.ErrorHandling.IGNORE, False),
        ("SKIP ALL ERRORS", ast.ErrorHandling.SKIP_ALL_ERRORS, False),
        ("SKIP CONSTRAINT ERRORS REPLACE", ast.ErrorHandling.SKIP_CONSTRAINT_ERRORS, True),
        ("skip duplicate key errors", ast.ErrorHandling.SKIP_DUPLICATE_KEY_ERRORS, False),
        ("SKIP PARSER ERRORS REPLACE", ast.ErrorHandling.SKIP_PARSER_ERRORS, True),
    ],
)
def test_error_handling_clause(clause, handling, replace):
    node = create(KAFKA + clause + " INTO TABLE t")
    assert (node.error_handling, node.replace) == (handling, replace)


@pytest.mark.parametrize(
    "clause", ["REPLACE", "IGNORE", "SKIP CONSTRAINT ERRORS", "SKIP DUPLICATE KEY ERRORS"]
)
def test_transform_allows_the_other_error_clauses(clause):
    sql = KAFKA + "WITH TRANSFORM ('file:///t.py','','') " + clause + " INTO TABLE t"
    node = create(sql)
    assert node.transform is not None and node.transform.uri == "file:///t.py"
    assert clause in render(node)
    assert create(render(node)) == node


def test_strings_are_unescaped_and_re_escaped():
    node = create(
        KAFKA + r"""INTO TABLE t FIELDS TERMINATED BY '\t' ENCLOSED BY '\'' ESCAPED BY '\\' """
        r"""LINES TERMINATED BY '\r\n' STARTING BY 'a''b\"\Z\0\%'"""
    )
    assert node.fields == ast.FieldsOptions("\t", "'", False, "\\")
    assert node.lines == ast.LinesOptions("a'b\"\x1a\0\\%", "\r\n")
    assert parse_statement(render(node)) == node


def test_any_string_round_trips():
    nasty = "\0\b\n\r\t\x1a'\"\\%_`é;--#/*"
    node = ast.CreatePipeline(
        name=nasty,
        source=ast.KafkaSource(("h",), "t"),
        table=nasty,
        transform=ast.TransformSpec(nasty, nasty, nasty),
        lines=ast.LinesOptions(nasty, nasty),
        columns=(ast.ColumnRef(nasty), ast.VarRef(nasty), ast.VarRef("plain.v$1")),
        set_assignments=(ast.SetAssignment(nasty, "1"),),
    )
    assert parse_statement(render(node)) == node


def test_show_create_matches_singlestore_normal_form():
    node = create(
        "CREATE OR REPLACE PIPELINE mypipeline AS LOAD DATA KAFKA '127.0.0.1/my-topic' "
        "BATCH_INTERVAL 0 IGNORE INTO TABLE t FIELDS TERMINATED BY ',' (id, name)"
    )
    # SingleStore's documented SHOW CREATE PIPELINE output (docs §3.7).
    assert show_create(node) == (
        "CREATE PIPELINE `mypipeline`\n"
        "AS LOAD DATA KAFKA '127.0.0.1/my-topic'\n"
        "BATCH_INTERVAL 0\n"
        "IGNORE\n"
        "INTO TABLE `t`\n"
        "FIELDS TERMINATED BY ',' ENCLOSED BY '' ESCAPED BY '\\\\'\n"
        "LINES TERMINATED BY '\\n' STARTING BY ''\n"
        "(`t`.`id`,`t`.`name`)"
    )
    assert show_create(create(show_create(node))) == show_create(node)


def test_expressions_are_verbatim_without_comments():
    node = create(
        KAFKA + "INTO TABLE t (@a) SET x = IF(@a = '', NULL,  -- empty\n @a), y = LENGTH(@a) "
        "/* note */ WHERE  x  IS NOT NULL\n AND y<>'WHERE, (x'"
    )
    assert node.set_assignments == (
        ast.SetAssignment("x", "IF(@a = '', NULL, @a)"),
        ast.SetAssignment("y", "LENGTH(@a)"),
    )
    assert node.where == "x IS NOT NULL AND y<>'WHERE, (x'"


def test_null_defined_by_after_where_is_the_same_clause():
    late = create(KAFKA + "INTO TABLE t WHERE a IS NULL NULL DEFINED BY 'x'")
    early = create(KAFKA + "INTO TABLE t NULL DEFINED BY 'x' WHERE a IS NULL")
    assert late == early
    assert late.where == "a IS NULL"


def test_qualified_column_list_must_name_the_table():
    node = create(KAFKA + "INTO TABLE `my t` (`my t`.a, b) SET `my t`.c = 1")
    assert node.columns == (ast.ColumnRef("a"), ast.ColumnRef("b"))
    assert node.set_assignments == (ast.SetAssignment("c", "1"),)


def test_lifecycle_statements():
    assert parse_statement("START PIPELINE p") == ast.StartPipeline("p")
    assert parse_statement("start pipeline if not running p foreground limit 2 batches;") == (
        ast.StartPipeline("p", if_not_running=True, foreground=True, limit_batches=2)
    )
    assert parse_statement("STOP PIPELINE IF RUNNING p") == ast.StopPipeline("p", True)
    assert parse_statement("DROP PIPELINE IF EXISTS p") == ast.DropPipeline("p", True)
    assert parse_statement("TEST PIPELINE p LIMIT 1") == ast.TestPipeline("p", 1)
    assert parse_statement("SHOW CREATE PIPELINE p EXTENDED") == (
        ast.ShowCreatePipeline("p", extended=True)
    )
    assert parse_statement("EXTRACT PIPELINE p FROM '3' OFFSETS 1 TO 9 INTO OUTFILE 'f'") == (
        ast.ExtractPipeline("p", "f", "3", (1, 9))
    )
    assert parse_statement("CLEAR PIPELINE ERRORS p") == ast.ClearPipelineErrors("p")


def test_alter_actions_keep_their_order():
    node = parse_statement(
        """ALTER PIPELINE p SET OFFSETS '{"0": 5, "2": 0}', TRANSFORM ('file:///t.py') """
        "STOP_ON_ERROR OFF RELOAD TRANSFORM SET BATCH_INTERVAL 1"
    )
    assert node == ast.AlterPipeline(
        "p",
        (
            ast.SetOffsets(ast.OffsetsMode.JSON, '{"0": 5, "2": 0}'),
            ast.SetTransform(ast.TransformSpec("file:///t.py")),
            ast.SetStopOnError(False),
            ast.ReloadTransform(),
            ast.SetBatchInterval(1),
        ),
    )
    assert node.actions[0].partition_offsets() == {0: 5, 2: 0}
    assert parse_statement(render(node)) == node


def test_error_carries_file_position_snippet_and_context():
    sql = "CREATE PIPELINE p\n  AS LOAD DATA KAFKA 'h/t'\n  INTO TABLE t FIELDS ESCAPED BY 'ab'"
    with pytest.raises(DdlSyntaxError) as info:
        parse_statement(sql, line=10, col=5, source="sql/10_pipelines.sql")
    error = info.value
    assert (error.line, error.col, error.snippet) == (12, 34, "'ab'")
    assert error.source == "sql/10_pipelines.sql"
    assert error.location == "sql/10_pipelines.sql:12:34"
    assert error.context == "  INTO TABLE t FIELDS ESCAPED BY 'ab'"
    text = str(error)
    assert text.startswith("sql/10_pipelines.sql:12:34: ESCAPED BY takes one character")
    assert text.endswith("\n    " + " " * 33 + "^")


def test_first_line_columns_are_offset_by_the_statement_start():
    with pytest.raises(UnsupportedByLocalEngine) as info:
        parse_statement("SHOW PROFILE PIPELINE p", line=3, col=9)
    assert (info.value.line, info.value.col, info.value.snippet) == (3, 14, "PROFILE")
    assert info.value.context is not None and info.value.context[13:20] == "PROFILE"


def test_errors_are_matchstream_errors():
    from matchstream.errors import MatchstreamError

    assert issubclass(DdlSyntaxError, MatchstreamError)
    assert issubclass(UnsupportedByLocalEngine, MatchstreamError)


def test_long_snippets_are_shortened():
    with pytest.raises(DdlSyntaxError) as info:
        parse_statement("SELECT " + "x" * 100)
    assert info.value.snippet == "SELECT"
    with pytest.raises(DdlSyntaxError) as info:
        parse_statement(KAFKA + "INTO TABLE t FIELDS ESCAPED BY '" + "h" * 100 + "'")
    assert len(info.value.snippet) == 40 and info.value.snippet.endswith("...")


def test_render_rejects_non_nodes():
    with pytest.raises(TypeError):
        render("DROP PIPELINE p")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "field", "value"),
    [
        (ast.SetBatchInterval(7), "batch_interval", 7),
        (ast.SetMaxPartitionsPerBatch(2), "max_partitions_per_batch", 2),
        (ast.SetMaxRetriesPerBatchPartition(3), "max_retries_per_batch_partition", 3),
        (ast.SetMaxOffsetsPerBatchPartition(9), "max_offsets_per_batch_partition", 9),
        (ast.SetConfig('{"client.id": "x"}'), "config", '{"client.id": "x"}'),
        (ast.SetCredentials('{"sasl.username": "u"}'), "credentials", '{"sasl.username": "u"}'),
        (ast.SetTransform(ast.TransformSpec("file:///t.py", "", "")), "transform",
         ast.TransformSpec("file:///t.py", "", "")),
        (ast.SetStopOnError(False), "stop_on_error", False),
    ],
)
def test_each_option_action_sets_exactly_its_field(action, field, value):
    base = create(KAFKA + "INTO TABLE t")
    changed = action.apply(base)
    assert getattr(changed, field) == value
    assert {f for f in vars(base) if getattr(base, f) != getattr(changed, f)} == {field}
    assert isinstance(action, ast.OptionAction)
