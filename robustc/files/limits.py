"""The memory cap of a command (``--memory SIZE``, docs/errors.md).

:func:`apply_memory_cap` sets the process's ``RLIMIT_DATA`` (its heap and private
writable mappings; inherited by worker and solver child processes, each of which gets
the whole cap): an allocation past it fails with ``MemoryError`` in Python, an allocation
error in PyTorch, and ``verify`` turns either into ``unknown`` "memory cap reached". The
cap is not ``RLIMIT_AS`` (the address space): measured on the double-digits example, a
1 GB address-space cap aborted the process when HiGHS started its threads ("cannot
allocate memory for thread-local data: ABORT") and 500 MB stopped PyTorch from loading,
while a ``RLIMIT_DATA`` cap of 500 MB ran the same command to the same verdicts.

:func:`check_file_size` is the pre-check for a file read whole (an ONNX network, a
VNN-LIB query): a file larger than the cap divided by the reader's overhead is refused
before reading it, with its size and the cap named.

:func:`large_allocations_mapped` has glibc's malloc give every large block its own
mapping, returned to the system when freed, for a block of code (the ReLU split on the
graph runs in one): with its default, adaptive threshold, the bound propagation's
short-lived tensors of a few MiB each stay in the heap once freed, fragmented, and the
process grows far past what it holds. Not for everything: a mapping is zeroed by the
kernel each time, and searches that allocate many mid-sized arrays in short steps pay for
it (ACAS Xu 4_2 prop_2, input split: 107 s mapped against 74 s).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from robustc.errors import Error

__all__ = ["parse_size", "format_size", "default_memory_cap", "apply_memory_cap",
           "memory_capped", "memory_cap", "check_file_size", "large_allocations_mapped",
           "MemoryCapError", "DEFAULT_FRACTION", "MIN_MEMORY", "MMAP_THRESHOLD",
           "MMAP_THRESHOLD_AFTER"]

#: The default cap: this fraction of the machine's memory (``MemTotal``).
DEFAULT_FRACTION = 0.75
#: The smallest cap ``--memory`` takes: measured with a 4-6-3 network, robustc verify ran
#: at 300M and failed at 200M while importing PyTorch (an OSError, or a C++ bad_alloc
#: abort at 100M), before any robustc code could report it.
MIN_MEMORY = 400 * 2 ** 20

_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)

_cap: int | None = None  # the cap in force in this process (bytes), set by apply_memory_cap

#: Blocks from this size on get a mapping of their own (:func:`large_allocations_mapped`).
#: resnet_4b prop_1 (VNN-COMP 2021 cifar10_resnet), 100 s, one core, two runs side by
#: side, peak RSS and domains bounded in the first 84 s: glibc's adaptive default
#: 3,493-3,533 MiB, 2,369-2,969 domains; 4 MiB 2,265 MiB, 2,415; 1 MiB 1,439-1,544 MiB,
#: 1,895; 128 KiB 1,265 MiB. A smaller threshold maps (and the kernel zeroes) more
#: blocks: fewer domains in the same time (``docs/verify.md``, "Memory of the graph
#: search"; ``benchmarks/malloc_threshold.py`` runs such a comparison). 1 MiB for a day
#: (7 December 2026), when the faster graph search pushed resnet_4b prop_1 / prop_13 at
#: 300 s to 4,685 / 4,144 MiB with 4 MiB (4,093 / 3,399 with 1 MiB, prop_13 bounding
#: 12,915 domains against 17,607); back at 4 MiB since a round holds the parameters of
#: the rows it bounds only and the open domains their ReLU input bounds in float32
#: (:mod:`robustc.verify.relu_split.graph`): prop_1 / prop_13 at 300 s, side by side,
#: peak at 3,267 / 3,462 MiB with 4 MiB (2.6 GiB each beside a lighter job).
MMAP_THRESHOLD = 4 << 20
#: The threshold after the block: glibc's adaptive threshold stops at this (its
#: ``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit systems), where a process that frees large
#: blocks soon has it; setting any threshold ends the adaptation.
MMAP_THRESHOLD_AFTER = 32 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc's malloc.h)


class MemoryCapError(Error, MemoryError):
    """A file too large for the memory cap, or a cap that cannot be set."""


def parse_size(text: str) -> int:
    """Bytes of a size such as ``4G``, ``500M``, ``1.5GiB`` or ``123456`` (binary units);
    raises ``ValueError`` naming the text."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"expected a size such as 4G, 500M or 2048K, got {text!r}")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not value >= 1:
        raise ValueError(f"a memory size must be at least 1 byte, got {text!r}")
    return int(value)


def format_size(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps one decimal (``1.5G``)."""
    for unit in ("T", "G", "M", "K"):
        if n >= _UNITS[unit]:
            value = n / _UNITS[unit]
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{n}B"


def _mem_total(meminfo: str = "/proc/meminfo") -> int | None:
    try:
        text = Path(meminfo).read_text()
    except OSError:
        return None
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def default_memory_cap(meminfo: str = "/proc/meminfo") -> int | None:
    """``DEFAULT_FRACTION`` of ``MemTotal`` (None where /proc/meminfo is absent)."""
    total = _mem_total(meminfo)
    return None if total is None else int(total * DEFAULT_FRACTION)


def apply_memory_cap(cap: int | None) -> int | None:
    """Lower this process's ``RLIMIT_DATA`` to ``cap`` bytes (never raise it above a limit
    already set); returns the cap in force, None where the platform has no such limit."""
    global _cap
    if cap is None:
        return None
    try:
        import resource
    except ImportError:  # not on POSIX: no cap
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limits = [v for v in (soft, hard, cap) if v != resource.RLIM_INFINITY]
    new = min(limits)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (new, hard))
    except (ValueError, OSError) as exc:
        raise MemoryCapError(f"cannot set the memory cap to {format_size(cap)}: {exc}") \
            from None
    _cap = new
    return new


@contextmanager
def memory_capped(cap: int | None) -> Iterator[int | None]:
    """:func:`apply_memory_cap` for the block (yields the cap in force); the previous limit
    is restored after it, so a command run in-process (tests, the API) leaves its caller's
    limit as it was."""
    global _cap
    if cap is None:
        yield None
        return
    import resource

    saved, saved_cap = resource.getrlimit(resource.RLIMIT_DATA), _cap
    try:
        yield apply_memory_cap(cap)
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, saved)
        _cap = saved_cap


def memory_cap() -> int | None:
    """The cap :func:`apply_memory_cap` set in this process (None: none)."""
    return _cap


def check_file_size(path: str | os.PathLike, what: str, overhead: float = 1.0) -> None:
    """Raise ``MemoryCapError`` naming ``path`` when reading it whole (``overhead`` bytes
    of memory per byte of file) would not fit in the memory cap; no-op without a cap or
    for a file that cannot be stat'ed (the reader reports that)."""
    if _cap is None:
        return
    try:
        size = os.path.getsize(path)
    except OSError:
        return
    if size * overhead > _cap:
        raise MemoryCapError(f"{path}: the {what} is {format_size(size)}, too large for the "
                             f"memory cap of {format_size(_cap)} (--memory; reading it "
                             f"needs about {overhead:g}x its size)")


def _glibc(name: str):
    """The C library's function ``name`` (None where it has none: not glibc)."""
    import ctypes

    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def _set_mmap_threshold(threshold: int) -> bool:
    """``mallopt(M_MMAP_THRESHOLD, threshold)``; False where the C library has no
    ``mallopt`` (not glibc) or refuses."""
    import ctypes

    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1


@contextmanager
def large_allocations_mapped(threshold: int = MMAP_THRESHOLD) -> Iterator[bool]:
    """For the block, glibc's malloc serves every block of ``threshold`` bytes or more by a
    mapping of its own, unmapped when freed; after it, the threshold is
    :data:`MMAP_THRESHOLD_AFTER` and the heap's free memory is given back
    (``malloc_trim``). Process-wide while it lasts. Yields whether it is in force (False
    where the C library is not glibc: nothing changes)."""
    ok = _set_mmap_threshold(threshold)
    try:
        yield ok
    finally:
        if ok:
            _set_mmap_threshold(MMAP_THRESHOLD_AFTER)
            _glibc("malloc_trim")(0)
