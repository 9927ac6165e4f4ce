"""Benchmark: how often one round of the case attack reaches a narrow violation case.

The numbers behind ``robustc.runtime.falsify.case_attack``'s docstring and
``docs/layered.md`` (helper M): on a property whose negation asks for "at least k of these
atoms" (a top-2 property: two labels must beat b), one round of the case attack as the
pipeline runs it (``CASE_ATTACK``: the best pairs of labels at the box's centre, 16
random starts each, 100 steps) with seeds 1..``--seeds``, against the first attack's
descent (:func:`~robustc.runtime.falsify.pgd_falsify`, targeted, the pipeline's steps and
restarts) with the same seeds. A hit is a point whose case margin is ``>= 0`` in the
float32 module *and* that onnxruntime's replay confirms. Default property: ``dd64_pgd``
test image 5 at eps [0.05, 0.04, 0.03, 0.02, 0.01] (written by ``benchmarks/verify64.py``
under ``benchmarks/results/verify64/dd64_5/``; run that first, or pass ``--spec``).
``--temperature`` sets the case attack's soft-minimum temperature (a share of the case's
mean ``|margin|``; default :data:`~robustc.runtime.falsify.CASE_TEMPERATURE`). One torch
thread. Prints one row per seed and attack, the hit counts and median seconds; saves JSON.

    PYTHONPATH=. python benchmarks/case_attack.py [--spec SPEC] [--seeds 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "benchmarks" / "results" / "verify64" / "dd64_5" / "dd64_pgd.rspec"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--seeds", type=int, default=8, help="seeds 1..N (default 8)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="the case attack's soft-minimum temperature as a share of the "
                        "case's mean |margin| (default: falsify.CASE_TEMPERATURE)")
    parser.add_argument("--output", type=Path,
                        default=ROOT / "benchmarks" / "results" / "case_attack.json")
    args = parser.parse_args(argv)
    if not args.spec.exists():
        parser.error(f"{args.spec} not found: run benchmarks/verify64.py first or pass --spec")

    import torch

    from robustc import specs
    from robustc.compiler.spec_lower import verify_problems
    from robustc.ir import logits
    from robustc.ir.property import dnf, negate
    from robustc.runtime.falsify import (
        CASE_TEMPERATURE,
        case_attack,
        pgd_falsify,
        subset_targets,
    )
    from robustc.runtime.replay import replay
    from robustc.runtime.torch_module import to_torch
    from robustc.verify import VerifyOptions
    from robustc.verify.pipeline import CASE_ATTACK

    torch.set_num_threads(1)
    (problem,) = verify_problems(specs.load(args.spec))
    graph, _ = logits(problem.graph)
    prop = problem.prop
    (box,) = prop.boxes
    cases = dnf(negate(prop.condition))
    module = to_torch(graph, device="cpu", dtype=torch.float32)
    centre = (box.lower + box.upper) / 2
    with torch.no_grad():
        y0 = module(torch.as_tensor(centre, dtype=torch.float32)[None]).reshape(1, -1)
    choices, restarts, steps = CASE_ATTACK
    targets = subset_targets(cases, y0, choices)
    options = VerifyOptions()
    temperature = CASE_TEMPERATURE if args.temperature is None else args.temperature

    def confirmed(x: np.ndarray) -> bool:
        return bool(replay(problem.onnx_paths, x, box, prop.condition).violated)

    rows = []
    for seed in range(1, args.seeds + 1):
        t = time.perf_counter()
        x, m = case_attack(module, box, targets, steps=steps, restarts=restarts, seed=seed,
                           temperature=temperature)
        took = time.perf_counter() - t
        rows.append({"attack": "case_attack", "seed": seed, "margin": float(m),
                     "hit": bool(m >= 0 and confirmed(x)), "seconds": round(took, 3)})
        t = time.perf_counter()
        x, m = pgd_falsify(graph, box, prop.condition, steps=options.attack_steps,
                           restarts=options.attack_restarts, seed=seed,
                           start=prop.meta.get("center", centre),
                           module=module, targeted=True)
        took = time.perf_counter() - t
        # pgd_falsify's margin: < 0 where the property is violated
        rows.append({"attack": "pgd_falsify", "seed": seed, "margin": float(-m),
                     "hit": bool(m < 0 and confirmed(x)), "seconds": round(took, 3)})
        for r in rows[-2:]:
            print(f"{r['attack']:12} seed {r['seed']:2}  case margin {r['margin']:+.5f}  "
                  f"{'HIT' if r['hit'] else 'miss':4}  {r['seconds']:6.2f} s", flush=True)
    summary = {}
    for attack in ("case_attack", "pgd_falsify"):
        mine = [r for r in rows if r["attack"] == attack]
        summary[attack] = {"hits": sum(r["hit"] for r in mine), "runs": len(mine),
                           "median_s": statistics.median(r["seconds"] for r in mine),
                           "best_margin": max(r["margin"] for r in mine)}
        s = summary[attack]
        print(f"{attack}: {s['hits']} of {s['runs']} seeds reached the case; median "
              f"{s['median_s']:.2f} s a round; best case margin {s['best_margin']:+.5f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "spec": str(args.spec), "targets": len(targets), "case_attack": CASE_ATTACK,
        "temperature": temperature,
        "pgd": [options.attack_steps, options.attack_restarts],
        "machine": platform.platform(), "rows": rows, "summary": summary}, indent=1))
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
