"""Shared test fixtures: where the external benchmarks live, and the example networks."""

from __future__ import annotations

import json
import subprocess
import sys
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


@pytest.fixture(scope="session")
def verify_cli_run(tmp_path_factory):
    """``run(spec)``: the standard output and the records (``--output`` JSON lines, header
    left out) of ``robustc verify SPEC --output LOG``, run once per spec and session as a
    subprocess from the repository root. The README's and docs' samples
    (tests/test_doc_samples.py) and the documented verdicts (tests/verify/test_examples.py)
    of the same example spec share one run: the 64x64 one takes minutes under load."""
    runs: dict[str, tuple[str, list[dict]]] = {}

    def run(spec: str) -> tuple[str, list[dict]]:
        if spec not in runs:
            log = tmp_path_factory.mktemp("verify_cli_run") / "results.jsonl"
            done = subprocess.run([sys.executable, "-m", "robustc.cli", "verify", spec,
                                   "--output", str(log)], cwd=ROOT, capture_output=True,
                                  text=True, timeout=900)
            assert done.returncode in (0, 1, 3), f"verify {spec} exited {done.returncode}:\n" \
                f"{done.stderr[-2000:]}"
            records = [json.loads(line) for line in log.read_text().splitlines()[1:]]
            runs[spec] = done.stdout, records
        return runs[spec]

    return run
