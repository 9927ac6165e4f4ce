"""Hidden-bound refinement (robustc.verify.relu_split.refine) on MNIST-FC 2022 instances.

For each instance: CROWN bounds, alpha-CROWN (``tighten``, 60 steps), then
:func:`~robustc.verify.relu_split.refine.refine` with each number of rounds and each variant
of its trees; prints, per run, the unstable ReLUs per hidden layer, the refinement's time
(and per layer) and the root bound of every violation case through the refined bounds
(the case is proved at the root when its bound is above 0).

    PYTHONPATH=. python benchmarks/refine.py [--rounds 8,16] [--variants default,refresh,fsb]
        [INSTANCE ...]

``INSTANCE`` is ``NET/PROP`` (``256x6/prop_13_0.05``). Variants: ``default`` (BaBSR, no
per-domain refresh), ``refresh`` (the per-domain CROWN refresh of the main search),
``fsb`` (filtered smart branching over 5 candidates). One thread. Results in
``benchmarks/results/refine.json`` (``--output``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT.parent / "shared" / "benchmarks" / "vnncomp2022_benchmarks" / "benchmarks" / \
    "mnist_fc"
DEFAULT = ["256x4/prop_2_0.05", "256x6/prop_13_0.05"]
VARIANTS = {"default": {}, "refresh": {"refine_refresh": True},
            "fsb": {"refine_candidates": 5}}


def _setup(name: str):
    """Chain, box, tightened bounds and violation cases of one instance."""
    from robustc.compiler.bounds import compute_bounds
    from robustc.compiler.vnnlib import vnnlib_problems
    from robustc.ir import logits
    from robustc.ir.property import dnf, negate
    from robustc.verify.relu_split.bounder import tighten
    from robustc.verify.relu_split.chain import case_chain

    net, prop = name.split("/")
    problem = vnnlib_problems(MNIST / "vnnlib" / f"{prop}.vnnlib",
                              MNIST / "onnx" / f"mnist-net_{net}.onnx")[0]
    graph, _ = logits(problem.graph)
    box = problem.prop.boxes[0]
    ch, cases = case_chain(graph, dnf(negate(problem.prop.condition)))
    bounds = compute_bounds(graph, box.lower, box.upper, "symbolic")
    lower, upper = box.lower.ravel(), box.upper.ravel()
    lo, hi = tighten(ch, lower, upper, [bounds.lower[n].ravel() for n in ch.pre],
                     [bounds.upper[n].ravel() for n in ch.pre], 60)
    return ch, lower, upper, lo, hi, cases


def _unstable(lo, hi) -> list[int]:
    return [int(((a < 0) & (b > 0)).sum()) for a, b in zip(lo, hi, strict=True)]


def _roots(ch, lower, upper, lo, hi, cases) -> list[float]:
    """The root bound of every case (no splitting: ``max_domains=0``)."""
    from robustc.backends.milp.encode import MARGIN_TOL
    from robustc.verify.relu_split.options import ReluSplitOptions
    from robustc.verify.relu_split.search import decide_cases

    outs = decide_cases(ch, lower, upper, lo, hi, cases, tol=MARGIN_TOL,
                        check=lambda x: None, options=ReluSplitOptions(max_domains=0))
    return [float(o.stats["root_bound"]) for o in outs]


def main(argv: list[str] | None = None) -> int:
    from robustc.runtime.torch_module import torch_threads
    from robustc.verify.relu_split.options import ReluSplitOptions
    from robustc.verify.relu_split.refine import refine

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("instances", nargs="*")
    p.add_argument("--rounds", default="8,16")
    p.add_argument("--variants", default="default")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "refine.json"))
    args = p.parse_args(argv)
    if not MNIST.is_dir():
        print(f"{MNIST} is absent; nothing to run")
        return 0
    runs = []
    print(f"{'instance':20} {'variant':8} {'rounds':>6} {'time s':>7}  unstable per layer"
          f"{'':14} worst root  per layer s")
    with torch_threads(1):
        for name in args.instances or DEFAULT:
            ch, lower, upper, lo, hi, cases = _setup(name)
            print(f"{name:20} {'alpha':8} {'-':>6} {'-':>7}  {str(_unstable(lo, hi)):32}"
                  f" {min(_roots(ch, lower, upper, lo, hi, cases)):+10.3f}")
            for variant in args.variants.split(","):
                for rounds in (int(r) for r in args.rounds.split(",")):
                    options = dataclasses.replace(ReluSplitOptions(), refine_rounds=rounds,
                                                  **VARIANTS[variant])
                    stats, start = {}, time.perf_counter()
                    r_lo, r_hi = refine(ch, lower, upper, lo, hi, options, stats=stats)
                    seconds = time.perf_counter() - start
                    roots = _roots(ch, lower, upper, r_lo, r_hi, cases)
                    runs.append({"instance": name, "variant": variant, "rounds": rounds,
                                 "s": seconds, "unstable": _unstable(r_lo, r_hi),
                                 "alpha_unstable": _unstable(lo, hi), "roots": roots,
                                 "layers": stats})
                    per_layer = [v["s"] for v in stats.values()]
                    print(f"{name:20} {variant:8} {rounds:6d} {seconds:7.1f}  "
                          f"{str(runs[-1]['unstable']):32} {min(roots):+10.3f}  {per_layer}",
                          flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": runs}, indent=1))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
