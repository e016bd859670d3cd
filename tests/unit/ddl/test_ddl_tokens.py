"""The MySQL-flavoured tokenizer shared by the parser and the script splitter."""

from __future__ import annotations

import pytest

from matchstream.ddl.errors import DdlSyntaxError
from matchstream.ddl.tokens import TokenType, tokenize, unescape_string


def kinds_and_values(text: str) -> list[tuple[str, str]]:
    return [(t.type.name, t.value) for t in tokenize(text) if t.type is not TokenType.EOF]


def test_positions_are_one_based_and_follow_newlines():
    tokens = list(tokenize("a\n  bb\tc", line=5, col=3))
    assert [(t.value, t.line, t.col) for t in tokens] == [
        ("a", 5, 3),
        ("bb", 6, 3),
        ("c", 6, 6),
        ("", 6, 7),
    ]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r"'it''s'", "it's"),
        (r"'it\'s'", "it's"),
        (r'"say ""hi"""', 'say "hi"'),
        (r"'\0\b\n\r\t\Z\\'", "\0\b\n\r\t\x1a\\"),
        (r"'\%\_\q'", "\\%\\_q"),
        ("'a;b -- c # d /* e */'", "a;b -- c # d /* e */"),
        ("''", ""),
    ],
)
def test_string_escapes(literal, value):
    assert unescape_string(literal) == value
    assert kinds_and_values(literal) == [("STRING", value)]


def test_comments_are_skipped_and_mark_space():
    tokens = list(tokenize("a/*x*/b -- c\nd#e\n--\nf--g"))
    assert [t.value for t in tokens[:-1]] == ["a", "b", "d", "f", "-", "-", "g"]
    assert [t.space_before for t in tokens[:4]] == [False, True, True, True]


def test_executable_comments_are_tokens():
    assert kinds_and_values("/*!40101 SET x=1 */ /*M!100 y */") == [
        ("EXEC_COMMENT", "/*!40101 SET x=1 */"),
        ("EXEC_COMMENT", "/*M!100 y */"),
    ]


def test_identifiers_variables_numbers_operators():
    assert kinds_and_values("`a``b` é$1 @v @`x y` @@sql_mode @ 1.5e3 .5 0x1F <=> ->> :=") == [
        ("QUOTED_IDENT", "a`b"),
        ("IDENT", "é$1"),
        ("VARIABLE", "v"),
        ("VARIABLE", "x y"),
        ("VARIABLE", "@sql_mode"),
        ("OP", "@"),
        ("NUMBER", "1.5e3"),
        ("NUMBER", ".5"),
        ("NUMBER", "0x1F"),
        ("OP", "<=>"),
        ("OP", "->>"),
        ("OP", ":="),
    ]


@pytest.mark.parametrize(
    ("text", "col", "snippet"),
    [
        ("x 'abc", 3, "'abc"),
        ('x "a\\"', 3, '"a\\"'),
        ("x `ab", 3, "`ab"),
        ("x /* never closed", 3, "/*"),
        ("x /*! never closed", 3, "/*! "),
    ],
)
def test_unterminated_literals_are_positioned(text, col, snippet):
    with pytest.raises(DdlSyntaxError) as info:
        list(tokenize(text, source="f.sql"))
    assert (info.value.line, info.value.col, info.value.snippet) == (1, col, snippet)
    assert info.value.source == "f.sql"
    assert "unterminated" in info.value.reason
