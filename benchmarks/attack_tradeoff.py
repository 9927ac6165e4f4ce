"""Benchmark: the ASR-distortion trade-off of JMA (robustc's default, the JMA paper's
experimental setting alone and the fast preset) and ML-C&W on the multi-label cases of
benchmarks/attacks.py.

One run per attack and case; the curve is ASR(tau), the share of images that reach the
target (replayed on onnxruntime) with an RMS distortion ||delta||_2 / sqrt(n) (the paper's
"MSE") of at most tau. A setting whose curve lies above another's everywhere is better at
every distortion budget. Prints a table (ASR, median MSE over the successes, time) and saves
JSON and a PNG under benchmarks/results/.

    PYTHONPATH=. python benchmarks/attack_tradeoff.py [--images 20] [--cases "flip 1"]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.attacks import SETTINGS, multilabel_cases

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = {
    # robustc's default: the paper's setting with the step search (a second pass with the
    # large step for the images the small steps miss)
    "jma (default)": ("jma", SETTINGS["jma"]),
    # The paper's experiments alone: confidence 0 (Sec. VI-D), n_bs = 6, n_it,max = 200 and
    # its smallest step epsilon = 0.05 (the first row of every JMA block in its tables).
    "jma (paper)": ("jma", {"max_iter": 200, "step": 0.05, "confidence": 0.0,
                            "search_steps": 6, "fallback_step": None}),
    # preset="fast": the large step alone (robustc's default before 2026-12-06)
    "jma (fast)": ("jma", SETTINGS["jma_fast"]),
    "mlcw": ("mlcw", SETTINGS["mlcw"]),
}


def curve(rms: np.ndarray, success: np.ndarray, budgets: np.ndarray) -> list[float]:
    """ASR at each distortion budget: successes with RMS distortion at most the budget."""
    return [float(np.mean(success & (rms <= tau))) for tau in budgets]


def run(n: int, cases: str | None) -> list[dict]:
    """One row per case and attack: ASR, median RMS over the successes, per-image RMS."""
    from robustc.analyses.attack import run_problem
    from robustc.runtime.attacks import ATTACKS as CLASSES

    rows = []
    for label, problem in multilabel_cases(n, np.random.default_rng(0)):
        if cases and cases not in label:
            continue
        for name, (method, options) in ATTACKS.items():
            report = run_problem(problem, CLASSES[method](**options), device="cpu", threads=1)
            delta = (report.x_adv - problem.x0).reshape(len(problem.x0), -1)
            rms = np.sqrt(np.mean(delta.astype(np.float64) ** 2, axis=1))
            ok = report.success
            rows.append({"case": label, "attack": name, "asr": float(ok.mean()),
                         "mse_median": float(np.median(rms[ok])) if ok.any() else None,
                         "seconds_per_image": report.metrics["seconds_per_image"],
                         "rms": rms.tolist(), "success": ok.tolist()})
            med = "-" if rows[-1]["mse_median"] is None else f"{rows[-1]['mse_median']:.4f}"
            print(f"{label:<18} {name:<14} {rows[-1]['asr']:>5.2f} {med:>8} "
                  f"{rows[-1]['seconds_per_image']:>8.3f}", flush=True)
    return rows


def plot(rows: list[dict], budgets: np.ndarray, path: Path) -> None:
    """One panel per case: ASR against the distortion budget, one line per attack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(r["case"] for r in rows))
    cols = min(3, len(cases))
    grid = -(-len(cases) // cols)
    fig, axes = plt.subplots(grid, cols, figsize=(4 * cols, 3.2 * grid), squeeze=False)
    for ax in axes.flat[len(cases):]:
        ax.set_visible(False)
    for ax, case in zip(axes.flat, cases, strict=False):
        for r in (r for r in rows if r["case"] == case):
            ax.plot(budgets, curve(np.array(r["rms"]), np.array(r["success"]), budgets),
                    label=r["attack"])
        ax.set_title(case)
        ax.set_xlabel("RMS distortion budget (paper's MSE)")
        ax.set_ylabel("ASR within budget")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Run, print the table, save JSON and the plot under benchmarks/results/."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--cases", default=None, help="only cases whose label contains this")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    print(f"{'case':<18} {'attack':<14} {'ASR':>5} {'MSE med':>8} {'s/img':>8}")
    rows = run(args.images, args.cases)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    budgets = np.linspace(0.0, 0.3, 121)
    plot(rows, budgets, out / "attack_tradeoff.png")
    (out / "attack_tradeoff.json").write_text(json.dumps(
        {"images": args.images, "attacks": {k: v[1] for k, v in ATTACKS.items()},
         "machine": platform.platform(), "total_seconds": time.perf_counter() - start,
         "budgets": budgets.tolist(), "rows": rows}, indent=1))
    print(f"total {time.perf_counter() - start:.0f} s; {out / 'attack_tradeoff.png'}")


if __name__ == "__main__":
    main()
