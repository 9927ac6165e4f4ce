"""Shared test fixtures: where the external benchmarks live, and the example networks."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCHMARKS = ROOT.parent / "shared" / "benchmarks"
EXAMPLES = ROOT / "examples"


def pytest_addoption(parser):
    """``--cases N`` / ``--cases-start S``: the differential suite's size (tests/differential);
    ``--long``: the fuzz suite's full size (tests/faults)."""
    parser.addoption("--cases", type=int, default=None,
                     help="number of random differential cases (default 300)")
    parser.addoption("--cases-start", type=int, default=None,
                     help="first seed of the differential cases (default 0)")
    parser.addoption("--long", action="store_true", default=False,
                     help="run the fault and fuzz suite at full size (tests/faults)")


def shared_benchmarks() -> Path:
    """The ``../shared/benchmarks`` folder, or skip the test with the reason."""
    if not SHARED_BENCHMARKS.is_dir():
        pytest.skip(f"external benchmarks folder {SHARED_BENCHMARKS} is absent")
    return SHARED_BENCHMARKS


def benchmark_networks() -> list[Path]:
    """Every ONNX network under ../shared/benchmarks (empty when the folder is absent)."""
    if not SHARED_BENCHMARKS.is_dir():
        return []
    return sorted(SHARED_BENCHMARKS.rglob("*.onnx"))


def example_networks() -> list[Path]:
    """Every ONNX network committed under examples/."""
    return sorted(EXAMPLES.rglob("*.onnx"))
