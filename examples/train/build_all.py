"""Rebuild every example data file and network from scratch, in dependency order.

    python examples/train/build_all.py            # everything (about 20 min on 2 shared cores)
    python examples/train/build_all.py --only mlc_pgd gen

Each step is a separate process running one of the scripts in this folder; the times are
printed at the end. The generators need ``digits_softmax`` (they report its recognition rate);
``dd64_pgd`` fine-tunes ``dd64_plain`` with PGD. ``gen28`` trains the 28x28 classifier and its
ten generators together (about a minute).

Every run compares the files each step leaves in ``examples/models``, ``examples/data`` and
``examples/samples`` (manifests aside: their ``train_seconds`` always change) with what was
there before it, and prints which were rebuilt byte for byte and which differ; ``--check``
makes a difference the exit status (1). The weights depend on the CPU's floating-point code
paths, not only on the code and the seed: ``docs/examples.md``, "Rebuilding".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
OUTPUTS = ("models", "data", "samples")  # the folders the steps write
STEPS: dict[str, list[str]] = {
    "data": ["build_data.py"],
    "digits_softmax": ["train_digits.py", "--model", "softmax"],
    "fc_digits": ["train_digits.py", "--model", "fc"],
    "ecoc": ["train_digits.py", "--model", "ecoc"],
    "gen": ["train_generators.py"],
    "gen28": ["train_gen28.py"],
    "mlc_plain": ["train_mlc.py", "--defence", "none"],
    "mlc_l0": ["train_mlc.py", "--defence", "l0"],
    "mlc_pgd": ["train_mlc.py", "--defence", "pgd", "--epochs", "20"],
    "dd64_plain": ["train_dd64.py", "--defence", "none", "--epochs", "150"],
    "dd64_l0": ["train_dd64.py", "--defence", "l0", "--epochs", "150"],
    "dd64_pgd": ["train_dd64.py", "--defence", "pgd", "--init", "dd64_plain", "--epochs", "30",
                 "--lr", "3e-3", "--warmup", "5", "--train-steps", "3", "--train-eps", "0.03"],
}


def run_step(name: str) -> float:
    """Run one step's script and return its wall time; raise ``CalledProcessError`` on failure."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), str(HERE)])}
    started = time.time()
    subprocess.run([sys.executable, str(HERE / STEPS[name][0]), *STEPS[name][1:]],
                   check=True, env=env)  # fmt: skip
    return time.time() - started


def digests() -> dict[str, tuple[str, int]]:
    """sha256 and modification time (ns) of every file the steps may write, manifests
    (``.json``) aside, by path relative to ``examples``."""
    out = {}
    for folder in OUTPUTS:
        for path in sorted((EXAMPLES / folder).rglob("*")):
            if path.is_file() and path.suffix != ".json":
                out[str(path.relative_to(EXAMPLES))] = (
                    hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return out


def compare(before: dict, after: dict) -> tuple[list[str], list[str]]:
    """Of the files written since ``before`` (a newer modification time, or new), those
    byte for byte as before and those that differ or are new (sorted)."""
    written = [k for k, (_, mtime) in after.items() if k not in before or mtime != before[k][1]]
    same = sorted(k for k in written if k in before and before[k][0] == after[k][0])
    return same, sorted(set(written) - set(same))


def main() -> int:
    """Run the requested steps (default: all), print their times and which of the files
    they wrote are byte for byte what was there before; with ``--check``, return 1 when
    one differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(STEPS), default=list(STEPS))
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when a rebuilt file differs from the one "
                             "it replaced")  # fmt: skip
    args = parser.parse_args()
    before = digests()
    times = {name: run_step(name) for name in STEPS if name in args.only}
    for name, seconds in times.items():
        print(f"{name:15s} {seconds:7.1f} s")
    same, changed = compare(before, digests())
    print(f"files written: {len(same)} byte for byte as before, {len(changed)} different "
          "or new")
    for path in changed:
        print(f"  differs: {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
