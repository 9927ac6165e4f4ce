"""Every example in docs/language.md parses (as a whole block, or line by line in context)."""

from __future__ import annotations

import re
from pathlib import Path

from robustc.errors import SpecError
from robustc.specs import parse_text

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
WRAPPERS = ["{}", "verify v: forall z in {}: unchanged", "verify v: forall z in linf(x, 1): {}",
            "verify v: forall z in layered(x, {}, eps=[1]): unchanged"]


def _parses(text: str) -> bool:
    try:
        parse_text(text)
        return True
    except SpecError:
        return False


def test_every_doc_example_parses():
    blocks = re.findall(r"```\n(.*?)```", DOC.read_text(), re.S)
    checked = 0
    for block in blocks:
        if block.startswith(("robustc ", "spec.rspec", "from robustc")) or _parses(block):
            continue
        for line in block.split("\n"):
            code = line.split("#")[0].strip()
            if code:
                assert any(_parses(w.format(code)) for w in WRAPPERS), code
                checked += 1
    assert len(blocks) >= 15 and checked >= 10
