"""A MySQL/MariaDB-flavoured tokenizer whose every token knows its line and column.

It lexes the way MariaDB does under its default ``sql_mode`` (no ``ANSI_QUOTES``, no
``NO_BACKSLASH_ESCAPES``): ``'...'`` and ``"..."`` are strings with backslash escapes and doubled
quotes, backquoted names are identifiers, ``-- `` (dash dash *space*), ``#`` and ``/* */`` are
comments. ``/*! ... */`` and ``/*M! ... */`` are executable comments in MariaDB, so they are kept
as tokens rather than dropped. The parser and the script splitter share this lexer, which is why
it accepts any SQL (unknown characters become one-character operator tokens) and only fails on
unterminated strings, identifiers and comments.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterator
from dataclasses import dataclass

from matchstream.ddl.errors import DdlError, DdlSyntaxError

__all__ = ["SourceMap", "Token", "TokenType", "tokenize", "unescape_string"]


class TokenType(enum.Enum):
    IDENT = "identifier"  # unquoted word; keywords are IDENTs compared case-insensitively
    QUOTED_IDENT = "quoted identifier"  # `...`
    STRING = "string"
    NUMBER = "number"
    VARIABLE = "variable"  # @name, @`name`, @@name
    OP = "operator"  # punctuation and operators, including a bare @
    EXEC_COMMENT = "executable comment"  # /*! ... */
    EOF = "end of statement"


@dataclass(frozen=True, slots=True)
class Token:
    type: TokenType
    text: str  # exactly as in the source
    value: str  # unescaped string / unquoted identifier / text otherwise
    line: int
    col: int
    start: int  # character offsets into the tokenized text
    end: int
    space_before: bool  # whitespace or a comment separates it from the previous token

    def is_keyword(self, *words: str) -> bool:
        return self.type is TokenType.IDENT and self.value.upper() in words


# Longest first so that "<=>" wins over "<=" over "<".
_OPERATORS = ("<=>", "->>", "<=", ">=", "<>", "!=", ":=", "||", "&&", "<<", ">>", "->", "::")

# MySQL string escapes; any other backslash-char is the char itself, except \% and \_ which keep
# their backslash (they only mean something in LIKE patterns).
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$" or ord(ch) >= 0x80


class SourceMap:
    """Maps offsets in a piece of text to 1-based (line, col) in the file it came from."""

    def __init__(self, text: str, line: int = 1, col: int = 1, source: str | None = None) -> None:
        self.text = text
        self.line0 = line
        self.col0 = col
        self.source = source
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def position(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.line_starts, offset) - 1
        col = offset - self.line_starts[index] + 1
        if index == 0:
            col += self.col0 - 1
        return self.line0 + index, col

    def line_text(self, offset: int) -> str:
        index = bisect.bisect_right(self.line_starts, offset) - 1
        start = self.line_starts[index]
        end = self.text.find("\n", start)
        line = self.text[start : end if end >= 0 else len(self.text)]
        # Keep the caret aligned when the statement starts mid-line in a file.
        return (" " * (self.col0 - 1) + line) if index == 0 else line

    def error(
        self, reason: str, offset: int, snippet: str, kind: type[DdlError] = DdlSyntaxError
    ) -> DdlError:
        line, col = self.position(offset)
        return kind(reason, line, col, snippet, source=self.source, context=self.line_text(offset))


class _Lexer(SourceMap):
    def _skip_quoted(self, start: int, quote: str) -> int:
        """Offset just past the closing quote of the literal opening at ``start``."""
        text, i, n = self.text, start + 1, len(self.text)
        while i < n:
            ch = text[i]
            if ch == "\\" and quote != "`":
                i += 2
            elif ch == quote:
                if i + 1 < n and text[i + 1] == quote:  # doubled quote
                    i += 2
                else:
                    return i + 1
            else:
                i += 1
        what = "identifier" if quote == "`" else "string"
        raise self.error(f"unterminated quoted {what}", start, text[start : start + 20])

    def tokens(self) -> Iterator[Token]:
        text, n, i = self.text, len(self.text), 0
        space = False
        while True:
            # Whitespace and comments.
            while i < n:
                ch = text[i]
                if ch.isspace():
                    i += 1
                elif ch == "#" or (
                    text.startswith("--", i) and (i + 2 >= n or text[i + 2].isspace())
                ):
                    nl = text.find("\n", i)
                    i = n if nl < 0 else nl + 1
                elif text.startswith("/*", i) and not (
                    text.startswith("/*!", i) or text.startswith("/*M!", i)
                ):
                    close = text.find("*/", i + 2)
                    if close < 0:
                        raise self.error("unterminated /* comment", i, "/*")
                    i = close + 2
                else:
                    break
                space = True
            if i >= n:
                line, col = self.position(n)
                yield Token(TokenType.EOF, "", "", line, col, n, n, space)
                return
            start, ch = i, text[i]
            if ch in "'\"":
                i = self._skip_quoted(start, ch)
                kind, value = TokenType.STRING, unescape_string(text[start:i])
            elif ch == "`":
                i = self._skip_quoted(start, ch)
                kind, value = TokenType.QUOTED_IDENT, text[start + 1 : i - 1].replace("``", "`")
            elif text.startswith("/*", i):
                close = text.find("*/", i + 2)
                if close < 0:
                    raise self.error("unterminated /*! comment", i, text[i : i + 4])
                i = close + 2
                kind, value = TokenType.EXEC_COMMENT, text[start:i]
            elif ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
                i = self._number_end(i)
                kind, value = TokenType.NUMBER, text[start:i]
            elif _is_ident_char(ch):
                while i < n and _is_ident_char(text[i]):
                    i += 1
                kind, value = TokenType.IDENT, text[start:i]
            elif ch == "@":
                kind, i, value = self._variable(start)
            else:
                op = next((o for o in _OPERATORS if text.startswith(o, i)), ch)
                i += len(op)
                kind, value = TokenType.OP, op
            line, col = self.position(start)
            yield Token(kind, text[start:i], value, line, col, start, i, space)
            space = False

    def _number_end(self, i: int) -> int:
        text, n = self.text, len(self.text)
        if text.startswith(("0x", "0X", "0b", "0B"), i) and i + 2 < n and text[i + 2].isalnum():
            i += 2
            while i < n and text[i].isalnum():
                i += 1
            return i
        while i < n and text[i].isdigit():
            i += 1
        if i < n and text[i] == ".":
            i += 1
            while i < n and text[i].isdigit():
                i += 1
        if i < n and text[i] in "eE":
            j = i + 1
            if j < n and text[j] in "+-":
                j += 1
            if j < n and text[j].isdigit():
                i = j
                while i < n and text[i].isdigit():
                    i += 1
        return i

    def _variable(self, start: int) -> tuple[TokenType, int, str]:
        text, n = self.text, len(self.text)
        i = start + 1
        if i < n and text[i] == "@":  # @@system_variable, @@global.name
            i += 1
        if i < n and text[i] in "`'\"":
            end = self._skip_quoted(i, text[i])
            quoted = text[i:end]
            name = quoted[1:-1].replace("``", "`") if text[i] == "`" else unescape_string(quoted)
            return TokenType.VARIABLE, end, name
        j = i
        while j < n and (_is_ident_char(text[j]) or text[j] == "."):
            j += 1
        if j == start + 1:
            return TokenType.OP, start + 1, "@"  # a bare @ discards a field in a column list
        return TokenType.VARIABLE, j, text[start + 1 : j]


def unescape_string(literal: str) -> str:
    """The value of a MySQL string literal, quotes included in ``literal``."""
    quote, body = literal[0], literal[1:-1]
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == "\\" and i + 1 < n:
            nxt = body[i + 1]
            if nxt in "%_":
                out.append("\\" + nxt)
            else:
                out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        elif ch == quote and i + 1 < n and body[i + 1] == quote:
            out.append(quote)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(
    text: str, *, line: int = 1, col: int = 1, source: str | None = None
) -> Iterator[Token]:
    """Lazily yield the tokens of ``text``, ending with one EOF token.

    ``line``/``col`` give the position of ``text[0]`` in its file, so that positions of
    statements cut out of a script are file positions. Raises DdlSyntaxError on an unterminated
    string, quoted identifier or comment.

    >>> [t.value for t in tokenize("SET a = 'it''s' -- note")]
    ['SET', 'a', '=', "it's", '']
    """
    return _Lexer(text, line, col, source).tokens()
