"""docs/api.md's examples run: every ``python`` block, in order, in one namespace, from the
repository root (so the document cannot drift from the API)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"


def test_the_api_doc_examples_run(monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    namespace: dict = {"__name__": "api_doc"}
    for i, block in enumerate(blocks, start=1):
        code = compile(block, f"docs/api.md[block {i}]", "exec")
        try:
            exec(code, namespace)  # noqa: S102 - the document's own examples
        except Exception as exc:  # noqa: BLE001 - name the block that failed
            pytest.fail(f"docs/api.md block {i} raised {exc!r}")
    printed = capsys.readouterr().out
    assert "[('keep_seven', 'robust')]" in printed
    assert "has shape [1, 5] but network 'net' expects [1, 4]" in printed
    assert os.getcwd() == str(ROOT)
