"""Rebuild every example data file and network from scratch, in dependency order.

    python examples/train/build_all.py            # everything (about 20 min on 2 shared cores)
    python examples/train/build_all.py --only mlc_pgd gen

Each step is a separate process running one of the scripts in this folder; the times are
printed at the end. The generators need ``digits_softmax`` (they report its recognition rate);
``dd64_pgd`` fine-tunes ``dd64_plain`` with PGD. ``gen28`` trains the 28x28 classifier and its
ten generators together (about a minute).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
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


def main() -> None:
    """Run the requested steps (default: all) and print their times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(STEPS), default=list(STEPS))
    args = parser.parse_args()
    times = {name: run_step(name) for name in STEPS if name in args.only}
    for name, seconds in times.items():
        print(f"{name:15s} {seconds:7.1f} s")


if __name__ == "__main__":
    main()
