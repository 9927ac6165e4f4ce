"""Z3 against HiGHS on the same small MILPs, and Z3's ReLU encodings on ACAS-like nets.

Part 1: the violation MILPs of random differential cases (tests/differential/cases.py),
solved by HiGHS and by Z3 (robustc.backends.z3smt, big-M with 0/1 Int, and with Bool
binaries). Part 2: exact mode (robustc.backends.z3exact) on ACAS-like nets (5 inputs,
3 hidden ReLU layers of 16, 5 outputs; argmax kept on random boxes) with the big-M,
``If`` and disjunctive ReLU forms. Prints a table (medians, ratios to the fastest) and
saves JSON under benchmarks/results/. A run that hits the time limit counts at the limit.

    PYTHONPATH=. python benchmarks/z3_vs_highs.py [--cases 30] [--nets 6] [--limit 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from robustc.backends import highs, z3smt
from robustc.backends.milp.encode import encode
from robustc.backends.solve import LIMIT, SolveOptions
from robustc.backends.z3exact import decide_exact
from robustc.compiler.bounds import compute_bounds
from robustc.ir import Graph, Input, Relu
from robustc.ir.property import Box, Property, dnf, in_top_k, negate
from tests.differential.cases import _Net, random_case

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(fn, limit: float) -> tuple[float, str]:
    t = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t
    return (limit if out.status == LIMIT else elapsed), out.status


def milp_rows(n_cases: int, limit: float) -> list[dict]:
    """HiGHS vs Z3 (Int and Bool binaries) on every violation case of n random cases."""
    rows = []
    for seed in range(n_cases):
        case = random_case(seed)
        box = case.prop.boxes[0]
        b = compute_bounds(case.graph, box.lower, box.upper, "symbolic")
        for atoms in dnf(negate(case.prop.condition))[:4]:
            model = encode(case.graph, b.lower, b.upper, box, atoms)
            opts = SolveOptions(time_limit=limit, threads=1)
            row = {"seed": seed, "family": case.family, "binaries": model.num_binaries}
            for name, fn in (("highs", lambda m=model, o=opts: highs.solve(m, o)),
                             ("z3_int", lambda m=model, o=opts: z3smt.solve(m, o)),
                             ("z3_bool", lambda m=model, o=opts: z3smt.solve(
                                 m, o, binaries="bool"))):
                row[name], row[name + "_status"] = _timed(fn, limit)
            rows.append(row)
    return rows


def acas_like(seed: int) -> tuple[Graph, Property]:
    """A 5-16-16-16-5 ReLU net and an argmax property on a random box."""
    rng = np.random.default_rng(1000 + seed)
    net = _Net(rng, (1, 5))
    for _ in range(3):
        net.dense(16)
        net.add(Relu, alpha=0.0)
    net.dense(5)
    graph = net.graph()
    center = rng.uniform(-1, 1, (1, 5))
    from robustc.ir import evaluate

    label = int(np.argmax(evaluate(graph, center)))
    eps = float(rng.uniform(0.02, 0.1))
    return graph, Property("acas", (Box(center - eps, center + eps),), in_top_k(5, label, 1))


def encoding_rows(n_nets: int, limit: float) -> list[dict]:
    rows = []
    for seed in range(n_nets):
        graph, prop = acas_like(seed)
        assert isinstance(graph.nodes[0], Input)
        row = {"net": seed}
        for form in ("bigm", "ite", "or"):
            row[form], row[form + "_status"] = _timed(
                lambda f=form, g=graph, p=prop: decide_exact(
                    g, p.boxes[0], p.condition, time_limit=limit, relu=f), limit)
        rows.append(row)
    return rows


def _summary(rows: list[dict], keys: tuple[str, ...]) -> dict:
    med = {k: float(np.median([r[k] for r in rows])) for k in keys}
    best = min(med.values())
    return {k: {"median_s": med[k], "ratio": med[k] / best} for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=30)
    ap.add_argument("--nets", type=int, default=6)
    ap.add_argument("--limit", type=float, default=20.0)
    args = ap.parse_args()
    milp = milp_rows(args.cases, args.limit)
    enc = encoding_rows(args.nets, args.limit)
    out = {"milp": _summary(milp, ("highs", "z3_int", "z3_bool")),
           "relu_forms": _summary(enc, ("bigm", "ite", "or")),
           "milp_rows": milp, "encoding_rows": enc, "limit_s": args.limit}
    print(f"{'what':28s} {'median s':>10s} {'ratio':>7s}")
    for part in ("milp", "relu_forms"):
        for k, v in out[part].items():
            print(f"{part + ':' + k:28s} {v['median_s']:10.4f} {v['ratio']:7.1f}")
    print(f"({len(milp)} MILPs from {args.cases} cases; {len(enc)} ACAS-like nets; "
          f"time limit {args.limit} s counted at the limit)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "z3_vs_highs.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
