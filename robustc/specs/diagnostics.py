"""Positioned diagnostics and their rendering (``file:line:col: message``, line, caret)."""

from __future__ import annotations

from dataclasses import dataclass

from robustc.errors import SpecError
from robustc.specs.ast import SourcePos

__all__ = ["Diagnostic", "render", "raise_if_any"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a spec: where it is, what is wrong, and the source line it is on."""

    pos: SourcePos
    message: str
    line_text: str = ""

    def render(self) -> str:
        """Return ``file:line:col: message`` followed by the source line and a caret."""
        head = f"{self.pos.file}:{self.pos.line}:{self.pos.col}: {self.message}"
        if not self.line_text or self.pos.col < 1:
            return head
        text = self.line_text.expandtabs(1)
        width = 1
        if self.pos.end_line == self.pos.line and self.pos.end_col > self.pos.col:
            width = self.pos.end_col - self.pos.col
        width = max(1, min(width, len(text) - self.pos.col + 1))
        caret = " " * (self.pos.col - 1) + "^" + "~" * (width - 1)
        return f"{head}\n    {text}\n    {caret}"

    def __str__(self) -> str:
        return self.render()


def line_of(source: str, line: int) -> str:
    """Return line ``line`` (1-based) of ``source`` without its newline, or ''."""
    lines = source.split("\n")
    return lines[line - 1] if 1 <= line <= len(lines) else ""


def make(pos: SourcePos, message: str, source: str) -> Diagnostic:
    """Build a diagnostic at ``pos``, taking the offending line from ``source``."""
    return Diagnostic(pos, message, line_of(source, pos.line))


def render(diagnostics: list[Diagnostic]) -> str:
    """Render several diagnostics, sorted by position, with a count at the end."""
    ordered = sorted(diagnostics, key=lambda d: (d.pos.file, d.pos.line, d.pos.col))
    body = "\n".join(d.render() for d in ordered)
    if len(ordered) > 1:
        body += f"\n{len(ordered)} errors"
    return body


def raise_if_any(diagnostics: list[Diagnostic]) -> None:
    """Raise :class:`SpecError` carrying all ``diagnostics`` if there is at least one."""
    if diagnostics:
        raise SpecError(render(diagnostics), diagnostics)
