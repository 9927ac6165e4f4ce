"""The verified lower bound of ``robustc global`` on a generator that ends in Tanh.

``examples/global_28.rspec``'s ``robust_eight`` (generator gen28_digit8: 32 -> 128 -> 256
-> 784, LeakyReLU, Tanh, x0.5+0.5; classifier cls28: 784 -> 128 -> 64 -> 10, ReLU): for
noises drawn from N(0, I_32) that the composed network classifies as 8, the verifier of
``robustc global`` (``_verify_one``: bounds, alpha-CROWN, the graph branch and bound; the
tanh relaxed by its tangent/chord lines) decides the ball ``|z' - z|_inf <= eps``. Every
ball is then checked independently: uniform points, corners and PGD iterates (on the IR's
float64 PyTorch module) classified by onnxruntime on the two ONNX files. A proved ball with
a misclassified point would be a soundness bug (the script exits 1).

    PYTHONPATH=. python benchmarks/smooth_verify.py [--eps 0.05 0.2 0.4] [--samples 6]
        [--time-limit 30] [--points 3000]

Prints, per eps: proved / refuted (replayed witness) / unknown, median and worst seconds
per ball, and the misclassified points found in each kind of ball.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def check_points(task, module, chain, z, eps, rng, points: int) -> int:
    """Misclassified points among uniform, corner and PGD points of the ball around z."""
    import torch

    lo, hi = z - eps, z + eps
    pts = [rng.uniform(lo, hi, size=(points, *z.shape)),
           np.where(rng.random((points // 6, *z.shape)) < 0.5, lo, hi)]
    x = torch.as_tensor(rng.uniform(lo, hi, size=(64, *z.shape)))
    lo_t, hi_t = torch.as_tensor(lo), torch.as_tensor(hi)
    for _ in range(40):
        x.requires_grad_(True)
        y = module(x).reshape(len(x), -1)
        others = torch.cat([y[:, :task.label], y[:, task.label + 1:]], 1)
        (grad,) = torch.autograd.grad((y[:, task.label] - others.max(1).values).sum(), x)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x - 0.05 * eps * grad.sign(), lo_t), hi_t)
        pts.append(x.detach().numpy().copy())
    pts = np.concatenate(pts)
    return int((chain(pts).argmax(1) != task.label).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "examples/global_28.rspec"))
    parser.add_argument("--property", default="robust_eight")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.2, 0.4])
    parser.add_argument("--samples", type=int, default=6, help="noises drawn (seed 0)")
    parser.add_argument("--time-limit", type=float, default=30.0, help="per ball, seconds")
    parser.add_argument("--points", type=int, default=3000, help="uniform points per ball")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import torch

    from robustc.analyses.global_robustness import (
        ChunkResult,
        _verify_one,
        forward_logits,
        global_tasks,
    )
    from robustc.runtime.onnx_chain import OnnxChain
    from robustc.runtime.torch_module import to_torch
    from robustc.specs import load

    torch.set_num_threads(1)
    task = global_tasks(load(args.spec), [args.property])[0]
    chain = OnnxChain(task.onnx_paths)
    module = to_torch(task.graph, device="cpu", dtype=torch.float64, logits=True)
    rng = np.random.default_rng(0)
    z = task.noise.sample(rng, (args.samples, *task.graph.input.shape))
    z = z[forward_logits(task, z).argmax(1) == task.label]
    print(f"{args.property}: {len(z)} of {args.samples} noises classified {task.label_name}; "
          f"time limit {args.time_limit} s per ball")
    print("| eps | proved | refuted | unknown | median s | worst s | misclassified points "
          "in proved / refuted / unknown balls |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    unsound = False
    for eps in args.eps:
        t = dataclasses.replace(task, eps=eps, verify_time_limit=args.time_limit)
        kinds, times, bad = [], [], {"P": 0, "W": 0, "U": 0}
        for zi in z:
            result = ChunkResult(0, 1)
            start = time.perf_counter()
            witness = _verify_one(t, zi, False, result)
            times.append(time.perf_counter() - start)
            kind = "P" if result.proved else "W" if witness is not None else "U"
            kinds.append(kind)
            wrong = check_points(t, module, chain, zi, eps, rng, args.points)
            bad[kind] += wrong
            unsound |= kind == "P" and wrong > 0
        print(f"| {eps} | {kinds.count('P')} | {kinds.count('W')} | {kinds.count('U')} | "
              f"{statistics.median(times):.2f} | {max(times):.2f} | "
              f"{bad['P']} / {bad['W']} / {bad['U']} |", flush=True)
    if unsound:
        print("UNSOUND: a proved ball holds a misclassified point")
    return 1 if unsound else 0


if __name__ == "__main__":
    sys.exit(main())
