"""The command samples in README.md and docs/ are what the commands print (docs/samples.py).

Every fenced block that shows a ``$ robustc ...`` run carries a sample marker, so the script
can regenerate it; each sample is re-run and compared with its block (times masked).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "benchmarks"
spec = importlib.util.spec_from_file_location("doc_samples", ROOT / "docs" / "samples.py")
samples_mod = importlib.util.module_from_spec(spec)
sys.modules["doc_samples"] = samples_mod  # dataclasses look their module up there
spec.loader.exec_module(samples_mod)

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SAMPLES = [s for path in DOCS for s in samples_mod.samples(path)]


def test_every_shown_run_is_a_sample():
    """A block opening with ``$ robustc`` must be regenerable: a marker right before it."""
    for path in DOCS:
        text = path.read_text()
        shown = len(re.findall(r"^```[^\n]*\n\$ robustc ", text, re.M))
        marked = sum(s.body.startswith("$ robustc ") for s in samples_mod.samples(path))
        assert shown == marked, f"{path.name}: {shown - marked} '$ robustc' block(s) unmarked"
    assert {s.path.name for s in SAMPLES} >= {"README.md", "verify.md"}


@pytest.mark.slow
@pytest.mark.parametrize("sample", SAMPLES, ids=[f"{s.path.name}:{s.command.split()[1]}"
                                                 for s in SAMPLES])
def test_sample_says_what_the_command_prints(sample, verify_cli_run):
    if "../shared/" in sample.command and not SHARED.exists():
        pytest.skip("../shared/benchmarks is absent")
    words = sample.command.split()
    if words[:2] == ["robustc", "verify"] and len(words) == 3:  # an example spec's verdicts:
        output, _ = verify_cli_run(words[2])  # the run tests/verify/test_examples.py checks
    else:
        output, _ = samples_mod.run(sample.command)
    assert samples_mod.check(sample, output), (
        f"{sample.path.name}: the sample of '{sample.command}' is stale; run "
        f"python docs/samples.py {sample.path.relative_to(ROOT)}\n--- block:\n{sample.body}"
        f"--- now:\n{samples_mod.render(sample, output)}")


def test_regenerate_rewrites_only_the_blocks(tmp_path):
    from robustc import __version__

    page = tmp_path / "page.md"
    page.write_text("Intro.\n\n<!-- sample: robustc --version -->\n```\n$ robustc --version\n"
                    "robustc 0.0.0\n```\n\nOutro with ``` inline.\n")
    (sample,) = samples_mod.samples(page)
    output, _ = samples_mod.run(sample.command)
    assert __version__ in output
    assert not samples_mod.check(sample, output)  # the block names another version
    text = samples_mod.regenerate(page, [output])
    assert text.startswith("Intro.\n\n<!-- sample: robustc --version -->\n```\n")
    assert text.endswith("```\n\nOutro with ``` inline.\n")
    page.write_text(text)
    (again,) = samples_mod.samples(page)
    assert samples_mod.check(again, output)
    assert samples_mod.regenerate(page, [output]) == text  # idempotent


def test_wrap_head_and_masked_times(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- sample wrap head=2: robustc x -->\n```\n$ robustc x\n```\n")
    (sample,) = samples_mod.samples(page)
    long = "a: ROBUST: " + "word " * 30 + "[12.5 s, bounds]"
    body = samples_mod.render(sample, f"{long}\nsecond\nthird\n")
    lines = body.splitlines()
    assert lines[0] == "$ robustc x" and lines[-1] == "..." and "third" not in body
    assert all(len(line) <= samples_mod.WIDTH for line in lines)
    assert lines[2].startswith("  ")  # a continuation line
    sample.body = body
    assert samples_mod.check(sample, long.replace("12.5 s", "3.0 s") + "\nsecond\nthird\n")
    assert not samples_mod.check(sample, long.replace("ROBUST", "UNKNOWN") + "\nsecond\n")


def test_query_counts_are_masked_not_methods(tmp_path):
    """A time-limited MILP probe runs 1 or 2 queries by load; the method that decided is
    still compared."""
    page = tmp_path / "page.md"
    page.write_text("<!-- sample: robustc x -->\n```\n$ robustc x\n```\n")
    (sample,) = samples_mod.samples(page)
    line = "a: ROBUST: holds [13.8 s, highs, 1 MILP queries]\n"
    sample.body = samples_mod.render(sample, line)
    assert samples_mod.check(sample, line.replace("1 MILP", "2 MILP").replace("13.8", "15.5"))
    assert not samples_mod.check(sample, line.replace("highs", "bounds"))
    assert not samples_mod.check(sample, line.replace("ROBUST", "UNKNOWN"))


def test_unknown_option_names_file_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n<!-- sample tail=3: robustc x -->\n```\n$ robustc x\n```\n")
    with pytest.raises(ValueError, match=r"page.md:2: unknown sample option 'tail=3'"):
        samples_mod.samples(page)
