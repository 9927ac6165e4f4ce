"""Re-run every oracle on a saved differential case: ``python -m tests.differential.reproduce
DIR`` (DIR holds case.json, network.onnx and property.pkl as written by ``save_case``)."""

from __future__ import annotations

import json
import pickle
import sys
import tempfile
from pathlib import Path

from robustc.compiler import load_onnx
from tests.differential.cases import Case
from tests.differential.oracles import disagreement, run_case


def main(argv: list[str]) -> int:
    """Print each oracle's verdict on the saved case; exit 1 when they disagree."""
    folder = Path(argv[0])
    info = json.loads((folder / "case.json").read_text())
    with open(folder / "property.pkl", "rb") as fh:
        prop = pickle.load(fh)
    graph = load_onnx(str(folder / "network.onnx"))
    case = Case(info["seed"], info["family"], info["input_set"], info["condition"], graph, prop)
    verdicts = run_case(case, Path(tempfile.mkdtemp()))
    for name, (verdict, reason) in verdicts.items():
        print(f"{name:10s} {verdict:11s} {reason}")
    why = disagreement(verdicts)
    print(why or "all verdicts agree")
    return 1 if why else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
