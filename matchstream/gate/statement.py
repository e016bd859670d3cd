"""One statement as the gate's rules see it: its tokens, and positions in its file."""

from __future__ import annotations

from dataclasses import dataclass, field

from matchstream.ddl.tokens import SourceMap, Token, TokenType, tokenize
from matchstream.gate.errors import GateRefusal

__all__ = ["GateStatement"]


@dataclass
class GateStatement:
    """``text`` starts at ``line``:``col`` of ``source``; ``tokens`` exclude the EOF token."""

    text: str
    source: str = "<string>"
    line: int = 1
    col: int = 1
    tokens: list[Token] = field(init=False)
    source_map: SourceMap = field(init=False)

    def __post_init__(self) -> None:
        self.source_map = SourceMap(self.text, self.line, self.col, self.source)
        self.tokens = [t for t in tokenize(self.text, line=self.line, col=self.col,
                                           source=self.source) if t.type is not TokenType.EOF]

    def words(self, count: int) -> list[str]:
        """The first ``count`` leading unquoted words, upper-cased (fewer if a non-word comes)."""
        out: list[str] = []
        for token in self.tokens[:count]:
            if token.type is not TokenType.IDENT:
                break
            out.append(token.value.upper())
        return out

    def refusal(
        self, offset: int, construct: str, why: str, alternative: str, reference: str
    ) -> GateRefusal:
        line, col = self.source_map.position(offset)
        snippet = self.text[offset : offset + 40].split("\n", 1)[0]
        return GateRefusal(construct, why, alternative, reference, line=line, col=col,
                           snippet=snippet, source=self.source,
                           context=self.source_map.line_text(offset))
