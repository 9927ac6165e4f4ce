"""``--memory SIZE`` (issue 23, item 4): the cap is parsed and checked by argparse, set as
the process's ``RLIMIT_DATA`` for the command and restored after it, a file too large
for it is refused before it is read, and an allocation past it is ``unknown`` "memory cap
reached" or one error line, never a traceback. The caps are exercised in child
processes: a cap in the test process would constrain pytest itself."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from robustc.cli import main
from robustc.cli.common import EXIT_ERROR, memory_cap_of, memory_size
from robustc.errors import Error
from robustc.files import limits
from robustc.files.limits import (
    MemoryCapError,
    check_file_size,
    default_memory_cap,
    format_size,
    memory_capped,
    parse_size,
)
from tests.cli.test_hardening import VNNLIB, write_net

ROOT = str(Path(__file__).resolve().parents[2])


@pytest.mark.parametrize("text, size", [("4G", 4 << 30), ("500M", 500 << 20), ("2048K", 2 << 20),
                                        ("1.5GiB", 3 << 29), ("123456", 123456),
                                        ("512mb", 512 << 20), (" 1T ", 1 << 40)])
def test_sizes(text, size):
    assert parse_size(text) == size
    assert parse_size(format_size(size)) == pytest.approx(size, rel=1e-3)  # one decimal


@pytest.mark.parametrize("text", ["", "4X", "-1G", "G", "1e3M", "nan", "0", "0.1"])
def test_bad_sizes(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize("value, words", [("4X", "expected a size such as 4G"),
                                          ("100M", "must be at least 400M"),
                                          ("", "expected a size")])
def test_bad_memory_options_are_argparse_errors(value, words, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["verify", "x.rspec", "--memory", value])
    assert stop.value.code == EXIT_ERROR
    assert f"argument --memory: {words}" in capsys.readouterr().err


def test_the_default_is_three_quarters_of_memtotal(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683784 kB\nMemFree:         1000 kB\n")
    assert default_memory_cap(str(meminfo)) == int(24683784 * 1024 * 0.75)
    assert default_memory_cap(str(tmp_path / "absent")) is None
    total = Path("/proc/meminfo")
    if total.exists():  # the command line's default is the machine's
        import argparse

        assert memory_cap_of(argparse.Namespace(memory=None)) == default_memory_cap()
        assert memory_cap_of(argparse.Namespace(memory=memory_size("none"))) is None
        assert memory_cap_of(argparse.Namespace()) is None  # commands without --memory


def test_the_cap_is_set_for_the_block_and_restored():
    before = resource.getrlimit(resource.RLIMIT_DATA)
    cap = 64 << 30  # far above what the test process uses
    with memory_capped(cap) as applied:
        soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
        assert applied == soft <= cap and limits.memory_cap() == applied
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    assert limits.memory_cap() is None


def test_a_file_too_large_for_the_cap_is_named(tmp_path, monkeypatch):
    big = tmp_path / "q.vnnlib"
    big.write_bytes(b";" * 4096)
    check_file_size(big, "VNN-LIB file", 20.0)  # no cap: nothing to check
    monkeypatch.setattr(limits, "_cap", 50_000)
    check_file_size(big, "VNN-LIB file", 10.0)  # 40,960 bytes fit in 50,000
    with pytest.raises(MemoryCapError) as err:
        check_file_size(big, "VNN-LIB file", 20.0)
    assert isinstance(err.value, Error)
    assert str(err.value).startswith(f"{big}: the VNN-LIB file is 4K, too large for the "
                                      f"memory cap of 48.8K")


def _robustc(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robustc", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _query(folder: Path, padding: int = 0) -> Path:
    """The 4-input query of tests/cli, with ``padding`` bytes of comment in front."""
    query = folder / "q.vnnlib"
    with open(query, "w") as fh:
        if padding:
            fh.write(";" + "x" * (padding - 2) + "\n")
        fh.write(VNNLIB + "".join(f"(assert (>= X_{i} 0)) (assert (<= X_{i} 1))\n"
                                  for i in range(4)) + "(assert (>= Y_1 Y_0))\n")
    return query


def test_a_vnnlib_file_too_large_for_a_small_cap_is_refused_before_reading(tmp_path):
    """A 21 MB query (mostly a comment) under --memory 400M: reading it needs about 20x its
    size, so it is refused with one line and exit 2; under the default cap it runs."""
    net = write_net(tmp_path)
    query = _query(tmp_path, padding=21 << 20)
    got = _robustc(["verify", query, "--network", net, "--memory", "400M"], tmp_path)
    assert got.returncode == EXIT_ERROR, got.stderr
    assert f"{query.name}: the VNN-LIB file is 21.0M, too large for the memory cap of " \
           f"400M (--memory" in got.stderr
    assert "Traceback" not in got.stderr
    ok = _robustc(["verify", query, "--network", net, "--memory", "2G"], tmp_path)
    assert ok.returncode in (0, 1, 3), ok.stderr  # the oracle: the same run fits in 2G


def test_a_small_cap_still_runs_a_small_problem(tmp_path):
    """400M, the smallest cap, is enough for robustc itself: the query is decided."""
    got = _robustc(["verify", _query(tmp_path), "--network", write_net(tmp_path),
                    "--memory", "400M", "--json"], tmp_path)
    assert got.returncode in (0, 1), got.stderr
    assert '"verdict": "not_robust"' in got.stdout or '"verdict": "robust"' in got.stdout


_FRAGMENT = """
import contextlib, sys
import numpy as np
from robustc.files.limits import MMAP_THRESHOLD, large_allocations_mapped
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 >> 20
mib = (MMAP_THRESHOLD >> 20) + 1  # blocks just over the threshold
def fragment():
    blocks = [np.ones(mib << 17) for _ in range(60)]
    kept = blocks[::10]  # every tenth stays: the freed ones lie between them
    before = rss()
    del blocks
    return before, rss(), kept
big = np.ones(30 << 17)  # 30 MiB, freed: glibc's adaptive threshold rises to it
del big
block = large_allocations_mapped() if sys.argv[1] == "map" else contextlib.nullcontext(False)
with block as mapped:
    before, after, kept = fragment()
before2, after2, kept2 = fragment()  # after the block
print(mapped, mib * 54, before - after, before2 - after2)
"""


def test_large_allocations_are_returned_to_the_system_when_freed():
    """Blocks just over :data:`MMAP_THRESHOLD` freed between blocks still held: with
    glibc's adaptive threshold (raised by one freed 30 MiB block) they stay in the heap
    and the process keeps their memory; inside :func:`large_allocations_mapped` each has
    its own mapping and the memory goes back at once; after it, blocks that size stay in
    the heap again (:data:`MMAP_THRESHOLD_AFTER`). A child process each: the setting is
    process-wide."""
    runs = {}
    for how in ("default", "map"):
        out = subprocess.run([sys.executable, "-c", _FRAGMENT, how], capture_output=True,
                             text=True, check=True, env={**os.environ, "PYTHONPATH": ROOT})
        mapped, freed, back, back_after = out.stdout.split()
        runs[how] = (mapped == "True", int(freed), int(back), int(back_after))
    if not runs["map"][0]:
        pytest.skip("this C library has no mallopt (not glibc)")
    freed = runs["map"][1]  # MiB
    assert runs["map"][2] >= 0.9 * freed, runs
    assert runs["default"][2] < 0.5 * freed, runs  # the contrast
    assert runs["map"][3] < 0.5 * freed, runs  # after the block: kept in the heap
