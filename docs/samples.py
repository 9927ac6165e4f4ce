"""Regenerate, or check, the command samples of README.md and docs/*.md from real runs.

A sample is an HTML comment naming the command, right before a fenced block::

    <!-- sample wrap: robustc verify examples/double_digits_verify.rspec -->
    ```
    $ robustc verify examples/double_digits_verify.rspec
    keep_seven: ROBUST: ...
    ```

The command runs from the repository root (``robustc`` is this checkout's
``python -m robustc.cli``); its standard output (progress lines go to stderr) replaces the
block. Options before the colon: ``wrap`` wraps lines over 100 characters at spaces, with
a two-space indent on the continuation lines; ``head=N`` keeps the first N lines and a
``...`` line.

    python docs/samples.py              # rerun every sample, rewrite its block, print times
    python docs/samples.py --check      # rerun and compare; exit 1 where a block is stale
    python docs/samples.py README.md    # only these files

``--check`` masks times (``2.3 s``) and MILP query counts (``2 MILP queries``: how many a
time-limited step gets to run depends on the machine) on both sides, so only what a run
decides (verdicts, margins, labels, the method, counts of verdicts) has to
match; ``tests/test_doc_samples.py`` runs it on the samples.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- sample(?P<opts>[^:]*): (?P<command>.+?) -->\n```[^\n]*\n"
                    r"(?P<body>.*?)^```$", re.M | re.S)
SECONDS = re.compile(r"\b\d+(\.\d+)? s\b")
# How many MILP queries a verdict took depends on the machine's speed where a time-limited
# step comes first (verify's MILP probe: 10 s for all cases together; the README's
# keep_zero_wider is proved with 1 or 2 queries by load), so the check masks it like a time.
QUERIES = re.compile(r"\b\d+ MILP queries\b")
WIDTH = 100


@dataclass
class Sample:
    """One sample of a file: its command, options and the text of its block."""

    path: Path
    command: str
    wrap: bool
    head: int | None
    body: str
    span: tuple[int, int]   # the body's character span in the file


def samples(path: Path) -> list[Sample]:
    """The samples of the Markdown file ``path``, in order; raises ``ValueError`` for an
    option it does not know (naming the file and line)."""
    text = path.read_text()
    found = []
    for m in MARKER.finditer(text):
        wrap, head = False, None
        for opt in m["opts"].split():
            if opt == "wrap":
                wrap = True
            elif opt.startswith("head=") and opt[5:].isdigit():
                head = int(opt[5:])
            else:
                line = text.count("\n", 0, m.start()) + 1
                raise ValueError(f"{path}:{line}: unknown sample option {opt!r} "
                                 "(known: wrap, head=N)")
        found.append(Sample(path, m["command"], wrap, head, m["body"], m.span("body")))
    return found


def run(command: str, timeout: float = 600) -> tuple[str, float]:
    """The standard output of ``command`` run from the repository root, and its seconds."""
    argv = shlex.split(command)
    if argv[0] == "robustc":
        argv = [sys.executable, "-m", "robustc.cli", *argv[1:]]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode not in (0, 1, 3):  # robust, a counterexample, unknown
        raise RuntimeError(f"'{command}' exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout, time.perf_counter() - start


def render(sample: Sample, output: str) -> str:
    """The block's new text: the command line, then the output as the options say."""
    lines = output.rstrip("\n").split("\n")
    if sample.head is not None and len(lines) > sample.head:
        lines = lines[: sample.head] + ["..."]
    if sample.wrap:
        lines = [part for line in lines for part in
                 textwrap.wrap(line, WIDTH, subsequent_indent="  ", break_long_words=False,
                               break_on_hyphens=False) or [""]]
    return "\n".join([f"$ {sample.command}", *lines]) + "\n"


def comparable(sample: Sample, text: str) -> str:
    """``text`` with wrapped lines joined again (``wrap`` samples), times and MILP query
    counts masked."""
    lines = text.rstrip("\n").split("\n")
    if sample.wrap:
        joined: list[str] = []
        for line in lines:
            if line.startswith("  ") and joined:
                joined[-1] += " " + line.strip()
            else:
                joined.append(line)
        lines = joined
    return QUERIES.sub("# MILP queries", SECONDS.sub("# s", "\n".join(lines)))


def check(sample: Sample, output: str) -> bool:
    """Whether the block still says what the command prints (times aside)."""
    return comparable(sample, sample.body) == comparable(sample, render(sample, output))


def regenerate(path: Path, outputs: list[str]) -> str:
    """The text of ``path`` with each sample's block replaced by the matching output."""
    text = path.read_text()
    for sample, output in reversed(list(zip(samples(path), outputs, strict=True))):
        start, end = sample.span
        text = text[:start] + render(sample, output) + text[end:]
    return text


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path,
                        help="Markdown files (default: README.md and docs/*.md)")
    parser.add_argument("--check", action="store_true",
                        help="compare instead of rewriting; exit 1 on a stale block")
    args = parser.parse_args(argv)
    files = [p.resolve() for p in args.files] or [ROOT / "README.md",
                                                  *sorted((ROOT / "docs").glob("*.md"))]
    stale = 0
    for path in files:
        found = samples(path)
        outputs = []
        for sample in found:
            output, seconds = run(sample.command)
            outputs.append(output)
            ok = check(sample, output)
            stale += not ok
            state = "ok" if ok else ("stale" if args.check else "rewritten")
            print(f"{path.relative_to(ROOT)}: {sample.command}: {seconds:.1f} s, {state}")
        if found and not args.check:
            from robustc.files import write_text

            write_text(path, regenerate(path, outputs))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
