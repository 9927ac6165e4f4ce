"""``import robustc`` puts PyTorch's large CPU tensors on transparent huge pages
(``robustc.THP_ENV``) where torch is not imported yet and the caller has not chosen. Each
case runs in a fresh interpreter: PyTorch reads the switch once, at its first allocation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# minor page faults of filling a fresh 64 MiB tensor (16,384 pages of 4 KiB; 32 huge pages)
FAULTS = """
import resource, sys
{first}
import torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(1 << 24)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(code: str, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    full.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.strip()


def test_the_switch_is_set_only_where_torch_is_not_imported_and_the_caller_is_silent():
    show = "import os; print(os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    assert _run(f"import robustc; {show}") == "1"
    assert _run(f"import robustc; {show}", THP_MEM_ALLOC_ENABLE="0") == "0"
    assert _run(f"import torch, robustc; {show}") == "None"


@pytest.mark.skipif(not THP.exists() or "[never]" in THP.read_text(),
                    reason="the kernel has no transparent huge pages to give")
def test_large_tensors_fault_in_huge_pages_after_import_robustc():
    """The effect, counted by the kernel: a 64 MiB tensor faults in far fewer pages."""
    plain = int(_run(FAULTS.format(first=""), THP_MEM_ALLOC_ENABLE="0"))
    huge = int(_run(FAULTS.format(first="import robustc")))
    assert plain >= 16_000  # one fault per 4 KiB page
    assert huge < plain / 8, (huge, plain)
