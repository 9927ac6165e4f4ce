"""benchmarks/vnncomp_compare.py: per-group counts of correct answers, wrong answers flagged."""

from __future__ import annotations

import csv
import importlib.util
import json

from tests.conftest import ROOT, shared_benchmarks


def _load():
    spec = importlib.util.spec_from_file_location("vnncomp_compare",
                                                  ROOT / "benchmarks" / "vnncomp_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_counts_correct_answers_and_flags_wrong_ones(tmp_path):
    base = shared_benchmarks()
    rows = [{"name": "mnist-net_256x2/prop_0_0.03", "expected": "unsat",
             "robustc": {"answer": "unsat", "time_s": 1.0}},
            {"name": "mnist-net_256x2/prop_1_0.03", "expected": "sat",
             "robustc": {"answer": "unsat", "time_s": 2.0}},   # wrong on purpose
            {"name": "mnist-net_256x2/prop_0_0.05", "expected": "sat",
             "robustc": {"answer": "timeout", "time_s": 3.0}}]
    result = tmp_path / "r.json"
    result.write_text(json.dumps({"suite": "mnist_fc2022", "instances": rows}))
    out = tmp_path / "cmp.json"
    code = _load().main([str(result), "--output", str(out)])
    data = json.loads(out.read_text())
    assert code == 1 and data["wrong"] == ["mnist-net_256x2/prop_1_0.03"]
    table = {line["group"]: line for line in data["table"]}
    assert table["all"]["instances"] == 3 and table["all"]["robustc"] == 1
    assert table["mnist-net_256x2 eps 0.03"]["robustc"] == 1
    assert table["mnist-net_256x2 eps 0.05"]["robustc"] == 0
    # alpha-beta-CROWN's column, counted here straight from its results file
    with open(base / "vnncomp2022_results/alpha_beta_crown/mnist_fc/results.csv") as f:
        answers = {(r[1].rsplit("/", 1)[-1], r[2].rsplit("/", 1)[-1]): r[4] for r in csv.reader(f)}
    want = sum(answers.get((n.split("/")[0] + ".onnx", n.split("/")[1] + ".vnnlib")) == e
               for n, e in [(r["name"], r["expected"]) for r in rows])
    assert table["all"]["alpha_beta_crown"] == want
