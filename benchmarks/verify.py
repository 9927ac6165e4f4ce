"""Benchmark: robustc's MILP encoding against a naive one, and HiGHS against Gurobi.

For each case (a network, a box around a point, a property), every violation case of the
property is decided three ways:

  (a) naive: interval bounds, a variable and an equality row for every neuron, a binary for
      every ReLU that interval bounds leave unstable and for every MaxPool input; HiGHS;
  (b) robustc: symbolic bounds, affine expressions (no variable per neuron), binaries only
      for unstable ReLUs, MaxPool pruning, objective-aware relaxation; HiGHS;
  (c) robustc's model with Gurobi, when it fits the installed license.

All three answer the same decision question with the same early stopping. Reported per case:
model size (variables, binaries, constraints), bound time, solve time and verdict; then
medians of the total times and the ratios (a)/(b) and (b)/(c) over the cases both decided.

    python benchmarks/verify.py [--quick] [--time-limit S] [--images N]

Prints a table and writes benchmarks/results/verify.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robustc.backends import gurobi, highs  # noqa: E402
from robustc.backends.milp.encode import MARGIN_TOL, encode  # noqa: E402
from robustc.backends.milp.model import MilpBuilder  # noqa: E402
from robustc.backends.solve import FEASIBLE, INFEASIBLE, SolveOptions  # noqa: E402
from robustc.compiler import load_onnx, standard_passes  # noqa: E402
from robustc.compiler.bounds import compute_bounds  # noqa: E402
from robustc.errors import LicenseLimit  # noqa: E402
from robustc.ir import Input, MaxPool, Relu, evaluate, logits  # noqa: E402
from robustc.ir.linear import affine_map, pool_index  # noqa: E402
from robustc.ir.property import Box, Linear, dnf, in_top_k, negate, output_gt  # noqa: E402

SHARED = ROOT.parent / "shared" / "benchmarks"


# -- the naive encoding ----------------------------------------------------------------

def naive_encode(graph, lower, upper, box: Box, objective: Linear):
    """A variable per neuron, interval-bound big-M, no pruning (the baseline)."""
    b = MilpBuilder()
    var: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        lo, hi = lower[node.name].ravel(), upper[node.name].ravel()
        if isinstance(node, Input):
            var[node.name] = b.add_vars(box.lower.ravel(), box.upper.ravel(), name="x")
            continue
        v = b.add_vars(lo, hi, name=node.name)
        if isinstance(node, Relu):
            _naive_relu(b, v, var[node.inputs[0]], lower[node.inputs[0]].ravel(),
                        upper[node.inputs[0]].ravel())
        elif isinstance(node, MaxPool):
            _naive_pool(b, node, graph[node.inputs[0]].shape, v, var[node.inputs[0]],
                        lower[node.inputs[0]].ravel(), upper[node.inputs[0]].ravel())
        else:
            mats, offset = affine_map(node, [graph[i].shape for i in node.inputs])
            rows = b.unit(v)
            for M, src in zip(mats, node.inputs, strict=True):
                rows = rows - sp.csr_matrix(M) @ b.unit(var[src])
            b.add_rows(rows, offset, offset)
        var[node.name] = v
    out = var[graph.output.name]
    obj = np.zeros(b.num_vars)
    obj[out] = objective.coeffs
    return b.build(obj, objective.const, input_index=var[graph.input.name],
                   input_fixed=box.lower.ravel())


def _naive_relu(b: MilpBuilder, y, z, lo, hi) -> None:
    Y, Z = b.unit(y), b.unit(z)
    active, inactive = lo >= 0, hi <= 0
    b.add_rows((Y - Z)[np.flatnonzero(active)], 0.0, 0.0)       # active: y = z
    b.add_rows(Y[np.flatnonzero(inactive)], 0.0, 0.0)           # inactive: y = 0
    idx = np.flatnonzero(~active & ~inactive)
    d = b.add_vars(np.zeros(len(idx)), np.ones(len(idx)), integer=True, name="d")
    Yu, Zu, D = b.unit(y[idx]), b.unit(z[idx]), b.unit(d)
    b.add_rows(Yu - Zu, 0.0, np.inf)
    b.add_rows(Yu - Zu - sp.diags(lo[idx]) @ D, -np.inf, -lo[idx])
    b.add_rows(Yu - sp.diags(hi[idx]) @ D, -np.inf, 0.0)


def _naive_pool(b: MilpBuilder, node, in_shape, y, z, lo, hi) -> None:
    for o, win in enumerate(pool_index(node, in_shape)):
        win = win[win >= 0]
        d = b.add_vars(np.zeros(len(win)), np.ones(len(win)), integer=True, name="p")
        top = hi[win].max()
        for i, dv in zip(win, d, strict=True):
            yi = b.unit(y[[o]])
            zi = b.unit(z[[i]])
            b.add_rows(yi - zi, 0.0, np.inf)
            row = yi - zi + sp.csr_matrix(([top - lo[i]], ([0], [dv])), shape=(1, b.num_vars))
            b.add_rows(row, -np.inf, top - lo[i])
        b.add_rows(b.unit(d).sum(axis=0), 1.0, 1.0)


# -- cases ------------------------------------------------------------------------------

def example_cases(n_images: int, eps_values):
    from robustc.runtime.datasets import digits, double_digits

    cases = []
    images, labels, _ = double_digits("test")
    for name in ("mlc_plain", "mlc_pgd"):
        graph = _graph(ROOT / "examples" / "models" / f"{name}.onnx")
        for i in range(n_images):
            x = images[i].reshape(graph.input.shape).astype(np.float64)
            target = int(np.flatnonzero(labels[i])[0])
            for eps in eps_values:
                cases.append((f"{name}/img{i}/eps{eps}", graph, _linf(x, eps, 0, 1),
                              output_gt(10, target, value=0.0)))
    dx, dy = digits("test")
    graph = _graph(ROOT / "examples" / "models" / "fc_digits.onnx")
    for i in range(n_images):
        x = dx[i].reshape(graph.input.shape).astype(np.float64)
        for eps in eps_values:
            cases.append((f"fc_digits/img{i}/eps{eps}", graph, _linf(x, eps, 0, 1),
                          in_top_k(10, int(dy[i]), 1)))
    return cases


def external_cases(n_points: int):
    cases = []
    acas = SHARED / "vnncomp2021" / "benchmarks" / "acasxu"
    mnist = SHARED / "vnncomp2021" / "benchmarks" / "mnistfc" / "mnist-net_256x2.onnx"
    if not acas.is_dir():
        print(f"note: {SHARED} is absent; ACAS Xu / MNIST-FC cases skipped")
        return cases
    rng = np.random.default_rng(0)
    for net in ("1_1", "2_3", "5_9"):
        graph = _graph(acas / f"ACASXU_run2a_{net}_batch_2000.onnx")
        for k in range(n_points):
            x = rng.uniform(-0.3, 0.3, graph.input.shape)
            c = int(np.argmin(evaluate(graph, x)))
            cases.append((f"acas{net}/pt{k}/eps0.02", graph, _linf(x, 0.02, -0.5, 0.5),
                          _argmin(5, c)))
    graph = _graph(mnist)
    data = np.loadtxt(SHARED / "eran" / "data" / "mnist_test.csv", delimiter=",",
                      max_rows=n_points, ndmin=2)
    for k, row in enumerate(data):
        x = (row[1:] / 255.0).reshape(graph.input.shape)
        cases.append((f"mnist256x2/img{k}/eps0.01", graph, _linf(x, 0.01, 0, 1),
                      in_top_k(10, int(row[0]), 1)))
    return cases


def _argmin(n: int, c: int):
    from robustc.ir.property import AtLeast

    return AtLeast(tuple(output_gt(n, j, c) for j in range(n) if j != c), n - 1)


def _graph(path):
    graph, _ = logits(standard_passes().run(load_onnx(path)))
    return graph


def _linf(x, eps, lo, hi) -> Box:
    return Box(np.clip(x - eps, lo, hi), np.clip(x + eps, lo, hi))


# -- running ----------------------------------------------------------------------------

def decide(graph, box: Box, cond, mode: str, limit: float) -> dict:
    """Decide every violation case; verdict robust/violated/unknown with sizes and times."""
    t0 = time.perf_counter()
    method = "interval" if mode == "naive" else "symbolic"
    bounds = compute_bounds(graph, box.lower, box.upper, method)
    rec = {"bound_s": time.perf_counter() - t0, "solve_s": 0.0, "variables": 0,
           "binaries": 0, "constraints": 0, "verdict": "robust"}
    for case in dnf(negate(cond)):
        objective = negate(case[0])
        if mode == "naive":
            model = naive_encode(graph, bounds.lower, bounds.upper, box, objective)
        else:
            model = encode(graph, bounds.lower, bounds.upper, box, [], objective=objective)
        rec["variables"] += model.num_vars
        rec["binaries"] += model.num_binaries
        rec["constraints"] += model.num_rows
        solver = gurobi if mode == "gurobi" else highs
        options = SolveOptions(time_limit=limit, threads=1, objective_bound=MARGIN_TOL,
                               objective_target=-1e-4)
        t = time.perf_counter()
        out = solver.solve(model, options)
        rec["solve_s"] += time.perf_counter() - t
        verdict = case_verdict(graph, box, model, out, objective)
        if verdict != "robust":
            rec["verdict"] = verdict
            break
    rec["total_s"] = rec["bound_s"] + rec["solve_s"]
    return rec


def case_verdict(graph, box: Box, model, out, objective: Linear) -> str:
    """The pipeline's rules (robustc.verify): a proof is INFEASIBLE or a proven optimum
    above the tolerance; a violation is a solution at or below it whose input violates the
    property in the interpreter (the benchmark's replay); anything else is unknown."""
    if out.status == INFEASIBLE:
        return "robust"
    if out.status == FEASIBLE and out.proven_optimal and out.dual_bound is not None \
            and out.dual_bound > MARGIN_TOL:
        return "robust"
    if out.solution is not None and out.objective is not None and out.objective <= MARGIN_TOL:
        x = np.clip(model.input_values(out.solution).reshape(box.lower.shape), box.lower,
                    box.upper)
        if float(objective.margin(evaluate(graph, x).reshape(1, -1))[0]) <= 0:
            return "violated"
    return "unknown"


def run_case(name, graph, box, cond, limit: float) -> dict:
    row = {"case": name}
    for mode in ("naive", "highs", "gurobi"):
        try:
            row[mode] = decide(graph, box, cond, mode, limit)
        except LicenseLimit as exc:
            row[mode] = {"verdict": "skipped", "reason": str(exc)}
    return row


def summarise(rows: list[dict]) -> dict:
    def med(mode):
        vals = [r[mode]["total_s"] for r in rows if r[mode]["verdict"] != "skipped"]
        return float(np.median(vals)) if vals else None

    def ratio(a, b, key="total_s"):
        both = [r for r in rows if r[a]["verdict"] not in ("unknown", "skipped")
                and r[b]["verdict"] not in ("unknown", "skipped")]
        vals = [r[a][key] / max(r[b][key], 1e-6) for r in both]
        return (float(np.median(vals)) if vals else None), len(both)

    def med_part(mode, key):
        vals = [r[mode][key] for r in rows if r[mode]["verdict"] != "skipped"]
        return float(np.median(vals)) if vals else None

    disagree = [r["case"] for r in rows if len({r[m]["verdict"] for m in ("naive", "highs",
                "gurobi")} - {"unknown", "skipped"}) > 1]
    ab, n_ab = ratio("naive", "highs")
    bc, n_bc = ratio("highs", "gurobi")
    return {"cases": len(rows), "median_total_s": {m: med(m) for m in ("naive", "highs",
                                                                       "gurobi")},
            "median_bound_s": {m: med_part(m, "bound_s") for m in ("naive", "highs",
                                                                    "gurobi")},
            "median_solve_s": {m: med_part(m, "solve_s") for m in ("naive", "highs",
                                                                    "gurobi")},
            "ratio_naive_over_highs": ab, "ratio_cases": n_ab,
            "ratio_naive_over_highs_solve": ratio("naive", "highs", "solve_s")[0],
            "ratio_highs_over_gurobi": bc, "gurobi_ratio_cases": n_bc,
            "ratio_highs_over_gurobi_solve": ratio("highs", "gurobi", "solve_s")[0],
            "unknown": {m: sum(r[m]["verdict"] == "unknown" for r in rows)
                        for m in ("naive", "highs", "gurobi")},
            "disagreements": disagree}


def print_table(rows: list[dict]) -> None:
    head = f"{'case':34} {'mode':7} {'vars':>7} {'bin':>6} {'rows':>7} {'bound s':>8} " \
           f"{'solve s':>8} verdict"
    print(head)
    print("-" * len(head))
    for r in rows:
        for mode in ("naive", "highs", "gurobi"):
            m = r[mode]
            if m["verdict"] == "skipped":
                print(f"{r['case']:34} {mode:7} {'(over the Gurobi license)':>40}")
                continue
            print(f"{r['case']:34} {mode:7} {m['variables']:7d} {m['binaries']:6d} "
                  f"{m['constraints']:7d} {m['bound_s']:8.3f} {m['solve_s']:8.3f} "
                  f"{m['verdict']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="3 images, 1 point, limit 10 s")
    args = parser.parse_args()
    if args.quick:
        args.images, args.points, args.time_limit = 3, 1, 10.0
    cases = example_cases(args.images, (0.002, 0.005, 0.01)) + external_cases(args.points)
    rows = []
    for name, graph, box, cond in cases:
        rows.append(run_case(name, graph, box, cond, args.time_limit))
        print(f"  done {name}", file=sys.stderr, flush=True)
    print_table(rows)
    summary = summarise(rows)
    print(json.dumps(summary, indent=2))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "verify.json").write_text(json.dumps({"summary": summary, "rows": rows,
                                                 "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()
