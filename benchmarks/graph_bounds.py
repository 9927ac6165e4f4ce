"""Linear bounds on the convolutional VNN-COMP 2021 suites: time, memory, and what bounds
alone prove.

For each instance (network, VNN-LIB property) of ``verivital``, ``oval21`` and
``cifar10_resnet`` (``../shared/benchmarks``), in a fresh subprocess (so the peak RSS is the
instance's own), one CPU thread:

* ``symbolic``: robustc's numpy CROWN (``robustc.compiler.bounds``, sparse affine maps);
* ``crown``: the same bounds operator by operator (``robustc.compiler.crown``; no matrix of
  a convolution), checked equal to ``symbolic`` (worst relative difference printed);
* ``alpha``: alpha-CROWN on every atom of every violation case (``Crown.optimise``).

An instance counts as *proved by bounds* when every violation case has an atom whose upper
bound is below ``-MARGIN_TOL`` (the MILP encoding's tolerance), which is how the pipeline
refutes a case. Prints a table per suite (proved counts, median and worst times, peak RSS)
and saves JSON.

    PYTHONPATH=. python benchmarks/graph_bounds.py [--suite verivital] [--limit N]
        [--alpha-steps 20] [--output benchmarks/results/graph_bounds.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

SUITES = ("verivital", "oval21", "cifar10_resnet")


def run_one(onnx: str, vnnlib: str, alpha_steps: int) -> dict:
    """Bounds of one instance (in this process); returns times, proofs and peak RSS."""
    import resource
    import time

    import numpy as np
    import torch

    from robustc.backends.milp.encode import MARGIN_TOL
    from robustc.compiler.bounds import symbolic_bounds
    from robustc.compiler.crown.engine import Crown
    from robustc.compiler.vnnlib import vnnlib_problems
    from robustc.ir import logits
    from robustc.ir.property import Linear, dnf, negate

    torch.set_num_threads(1)
    out = {"symbolic_s": 0.0, "crown_s": 0.0, "alpha_s": 0.0, "worst_diff": 0.0,
           "cases": 0, "crown_refuted": 0, "alpha_refuted": 0, "unstable": 0}
    for problem in vnnlib_problems(vnnlib, onnx):
        graph = logits(problem.graph)[0]
        cases = dnf(negate(problem.prop.condition))
        for box in problem.prop.boxes:
            t = time.perf_counter()
            want = symbolic_bounds(graph, box.lower, box.upper)
            out["symbolic_s"] += time.perf_counter() - t
            t = time.perf_counter()
            crown = Crown(graph)
            tbox = crown.box(box.lower, box.upper)
            got = crown.bounds(box.lower, box.upper)
            out["crown_s"] += time.perf_counter() - t
            for n in graph.nodes:
                for mine, theirs in ((got.lower, want.lower), (got.upper, want.upper)):
                    ref = theirs[n.name].ravel()
                    diff = np.abs(mine[n.name][0].numpy() - ref) / (1 + np.abs(ref))
                    out["worst_diff"] = max(out["worst_diff"], float(diff.max(initial=0.0)))
            out["unstable"] += want.num_unstable()
            atoms = [a for case in cases for a in case if isinstance(a, Linear)]
            w = np.stack([-a.coeffs for a in atoms])
            b = np.array([-a.const for a in atoms])
            t = time.perf_counter()
            plain = crown.objective(w, b, got, tbox)[0].detach().numpy()
            out["crown_s"] += time.perf_counter() - t
            t = time.perf_counter()
            best = crown.optimise(w, b, got, tbox, steps=alpha_steps)[0].detach().numpy()
            out["alpha_s"] += time.perf_counter() - t
            upper = {"crown": dict(zip(map(id, atoms), -plain, strict=True)),
                     "alpha": dict(zip(map(id, atoms), -best, strict=True))}
            for case in cases:
                out["cases"] += 1
                for kind, ub in upper.items():
                    if any(isinstance(a, Linear) and ub[id(a)] < -MARGIN_TOL for a in case):
                        out[f"{kind}_refuted"] += 1
    out["proved_crown"] = out["crown_refuted"] == out["cases"]
    out["proved_alpha"] = out["alpha_refuted"] == out["cases"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the suites; print tables; save JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", action="append", choices=SUITES)
    p.add_argument("--limit", type=int, help="first N instances of each suite")
    p.add_argument("--alpha-steps", type=int, default=20)
    p.add_argument("--output", default=str(ROOT / "benchmarks/results/graph_bounds.json"))
    p.add_argument("--one", nargs=2, metavar=("ONNX", "VNNLIB"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print("RESULT", json.dumps(run_one(*args.one, args.alpha_steps)))
        return 0
    import vnncomp

    if not vnncomp.SHARED.exists():
        print(f"benchmarks folder {vnncomp.SHARED} is absent; nothing to run")
        return 0
    report = {"alpha_steps": args.alpha_steps, "suites": {}}
    for suite in args.suite or SUITES:
        rows = []
        for inst in vnncomp.instances(suite)[:args.limit]:
            proc = subprocess.run([sys.executable, __file__, "--one", inst["onnx"],
                                   inst["vnnlib"], "--alpha-steps", str(args.alpha_steps)],
                                  capture_output=True, text=True,
                                  env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                                       "PATH": "/usr/bin:/bin"})
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            res = json.loads(line[0][7:]) if line else {"error": proc.stderr[-400:]}
            res.update(name=inst["name"], expected=inst["expected"])
            rows.append(res)
            print(f"{suite:15s} {inst['name'][:60]:60s} "
                  + (f"crown {res['crown_s']:6.2f}s alpha {res['alpha_s']:6.2f}s "
                     f"sym {res['symbolic_s']:6.2f}s rss {res['peak_rss_mb']:5.0f}MB "
                     f"proved {res['proved_crown']}/{res['proved_alpha']} "
                     f"diff {res['worst_diff']:.1e}" if "error" not in res else
                     "ERROR " + res["error"].splitlines()[-1]), flush=True)
        report["suites"][suite] = rows
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=1))
    print(f"\n{'suite':15s} {'n':>3s} {'crown':>6s} {'alpha':>6s} {'med crown s':>11s} "
          f"{'max crown s':>11s} {'med alpha s':>11s} {'max rss MB':>10s} {'max diff':>9s}")
    for suite, rows in report["suites"].items():
        ok = [r for r in rows if "error" not in r]
        if not ok:
            continue
        print(f"{suite:15s} {len(rows):3d} {sum(r['proved_crown'] for r in ok):6d} "
              f"{sum(r['proved_alpha'] for r in ok):6d} "
              f"{statistics.median(r['crown_s'] for r in ok):11.2f} "
              f"{max(r['crown_s'] for r in ok):11.2f} "
              f"{statistics.median(r['alpha_s'] for r in ok):11.2f} "
              f"{max(r['peak_rss_mb'] for r in ok):10.0f} "
              f"{max(r['worst_diff'] for r in ok):9.1e}")
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
