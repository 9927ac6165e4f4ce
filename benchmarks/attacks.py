"""Benchmark: JMA vs ML-C&W vs PGD on the example networks (one run, one table).

Multi-label: mlc_plain, mlc_l0, mlc_pgd, 100 correctly classified double-digit test images,
targets flipping 1, 2 and 5 random labels of the true label vector. ``--suite dd64``: the
64x64 top-2 networks dd64_plain, dd64_l0, dd64_pgd, 100 correctly classified 64x64 test
images, targets swapping 1 or 2 of the 2 true labels for random others (2 or 4 flipped
bits: a top-2 network always outputs 2 labels, so odd flips are unreachable). ECOC and one-hot
(digits_softmax): 100 correctly classified test digits, a random other class as target.
Every success is replayed on onnxruntime (robustc.analyses.attack.run_problem); metrics come from
robustc.runtime.attacks.metrics. Time is the batch's wall time divided by the images.

    PYTHONPATH=. python benchmarks/attacks.py [--images 100] [--threads 1]
    PYTHONPATH=. python benchmarks/attacks.py --suite dd64     # the 64x64 top-2 networks
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"

SETTINGS = {
    # JMA's default: the paper's setting (confidence 0, n_bs 6, n_it,max 200, step 0.05)
    # with the step search (images the small steps miss run again with step 1.0,
    # confidence 3.0); jma_fast: that large step alone (robustc's default before).
    "jma": {},
    "jma_fast": {"step": 1.0, "confidence": 3.0, "fallback_step": None, "max_iter": 60},
    # The JMA paper's (lambda, n_bs, n_it,max) = (0.01, 10, 1000); the rest are MLCW's
    # defaults (learning rate 0.01, confidence 0, Carlini-Wagner's early abort).
    "mlcw": {"max_iter": 1000, "binary_steps": 10, "c": 0.01},
    "pgd": {"steps": 50, "eps": 1.5, "restarts": 1},
}


def _network(name: str):
    from robustc.compiler import load_onnx, standard_passes
    from robustc.compiler.spec_lower import Network

    path = MODELS / f"{name}.onnx"
    return Network(name, standard_passes().run(load_onnx(str(path), name=name)), (str(path),))


def _problem(net, decoder, codebook, x, target, source):
    from robustc.analyses.attack import AttackProblem

    x = x.reshape((len(x),) + tuple(net.graph.input.shape)).astype(np.float32)
    return AttackProblem(net.name, net, decoder, codebook, x, target, source, False, "", {},
                         np.zeros_like(x), np.ones_like(x))


def multilabel_cases(n: int, rng) -> list:
    """(label, problem) for each multi-label model and number of flipped labels."""
    from robustc.analyses.attack import decode_onnx
    from robustc.runtime import datasets
    from robustc.specs import ast as A

    images, labels, _ = datasets.double_digits("test")
    decoder = A.MultiLabelDecoder(score="logit", threshold=A.Number(0.0))
    cases = []
    for model in ("mlc_plain", "mlc_l0", "mlc_pgd"):
        net = _network(model)
        probe = _problem(net, decoder, None, images[: 3 * n], labels[: 3 * n], labels[: 3 * n])
        decoded, _ = decode_onnx(probe, probe.x0)
        right = np.flatnonzero((decoded == labels[: 3 * n].astype(bool)).all(axis=1))[:n]
        source = labels[right].astype(bool)
        for k in (1, 2, 5):
            target = source.copy()
            for row in target:
                flip = rng.choice(10, k, replace=False)
                row[flip] = ~row[flip]
            cases.append((f"{model} flip {k}",
                          _problem(net, decoder, None, images[right], target, source)))
    return cases


def top2_cases(n: int, rng) -> list:
    """(label, problem) for the 64x64 DOUBLE-MNIST networks (top-2 decoding), flipping 2 and
    4 label bits: a top-2 target names 2 labels, so a flip swaps labels in pairs (1 or 5
    flipped bits name 1 or 3 labels, which a top-2 network never outputs)."""
    from robustc.analyses.attack import decode_onnx
    from robustc.runtime.datasets import LARGE, double_digits
    from robustc.specs import ast as A

    images, labels, _ = double_digits("test", layout=LARGE)
    decoder = A.TopKDecoder(k=A.Number(2))
    cases = []
    for model in ("dd64_plain", "dd64_l0", "dd64_pgd"):
        net = _network(model)
        probe = _problem(net, decoder, None, images[: 3 * n], labels[: 3 * n], labels[: 3 * n])
        decoded, _ = decode_onnx(probe, probe.x0)
        right = np.flatnonzero((decoded == labels[: 3 * n].astype(bool)).all(axis=1))[:n]
        source = labels[right].astype(bool)
        for k in (2, 4):
            target = source.copy()
            for row in target:
                out = rng.choice(np.flatnonzero(row), k // 2, replace=False)
                into = rng.choice(np.flatnonzero(~row), k // 2, replace=False)
                row[out], row[into] = False, True
            cases.append((f"{model} flip {k}",
                          _problem(net, decoder, None, images[right], target, source)))
    return cases


def class_cases(n: int, rng) -> list:
    """(label, problem) for the ECOC and the one-hot digit classifiers."""
    from robustc.analyses.attack import decode_onnx
    from robustc.runtime import datasets
    from robustc.specs import ast as A

    images, labels = datasets.digits("test")
    book = np.load(MODELS / "ecoc_codebook.npy").astype(np.float32)
    cases = []
    for model, decoder, codebook in (("ecoc", A.EcocDecoder(codebook=None), book),
                                     ("digits_softmax", A.ArgmaxDecoder(), None)):
        net = _network(model)
        eye = np.eye(10, dtype=bool)
        probe = _problem(net, decoder, codebook, images[: 3 * n], eye[labels[: 3 * n]],
                         eye[labels[: 3 * n]])
        decoded, _ = decode_onnx(probe, probe.x0)
        right = np.flatnonzero(decoded.argmax(axis=1) == labels[: 3 * n])[:n]
        other = (labels[right] + rng.integers(1, 10, len(right))) % 10
        cases.append((f"{model} target class", _problem(net, decoder, codebook, images[right],
                                                        eye[other], eye[labels[right]])))
    return cases


def run(n: int, cases: str | None = None, save=None, suite: str = "examples") -> list[dict]:
    """Every case of ``suite`` (whose label contains ``cases``) with every attack; one row
    each; ``save(rows)`` after every row."""
    from robustc.analyses.attack import run_problem
    from robustc.runtime.attacks import ATTACKS

    rng = np.random.default_rng(0)
    rows = []
    suites = {"examples": lambda: multilabel_cases(n, rng) + class_cases(n, rng),
              "dd64": lambda: top2_cases(n, rng)}
    for label, problem in suites[suite]():
        if cases and cases not in label:
            continue
        for method, options in SETTINGS.items():
            norm = {"norm": "l2"} if method == "pgd" else {}
            attack = ATTACKS[method.removesuffix("_fast")](**options, **norm)
            report = run_problem(problem, attack, device="cpu")
            rows.append({"case": label, "attack": method, **report.metrics})
            print(_line(rows[-1]), flush=True)
            if save is not None:
                save(rows)
    return rows


def _line(r: dict) -> str:
    basr = "-" if r["basr"] is None else f"{r['basr']:.3f}"
    return (f"{r['case']:<26} {r['attack']:<5} {r['asr']:>5.2f} {basr:>6} {r['mse']:>8.4f} "
            f"{r['ssim']:>6.3f} {r['iterations_mean']:>7.1f} {r['iterations_success_mean']:>7.1f} "
            f"{r['updates_mean']:>7.1f} {r['seconds_per_image']:>8.4f}")


def ratios(rows: list[dict]) -> list[dict]:
    """Per case: ASR difference and ML-C&W / JMA time ratio."""
    out = []
    for case in dict.fromkeys(r["case"] for r in rows):
        by = {r["attack"]: r for r in rows if r["case"] == case}
        if "jma" not in by or "mlcw" not in by:
            continue
        out.append({"case": case, "asr_jma": by["jma"]["asr"], "asr_mlcw": by["mlcw"]["asr"],
                    "time_ratio_mlcw_over_jma": by["mlcw"]["seconds"] / by["jma"]["seconds"]})
    return out


def main() -> None:
    """Run the benchmark, print the table and save JSON under benchmarks/results/."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", default=None, help="only cases whose label contains this")
    parser.add_argument("--suite", default="examples", choices=["examples", "dd64"],
                        help="examples: the 16x24 multi-label, ECOC and one-hot networks; "
                             "dd64: the 64x64 top-2 networks (results in attacks_dd64.json)")
    args = parser.parse_args()
    name = "attacks.json" if args.suite == "examples" else f"attacks_{args.suite}.json"
    import dataclasses

    import torch

    from robustc.runtime.attacks import ATTACKS

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    settings = {m: dataclasses.asdict(ATTACKS[m.removesuffix("_fast")](
        **o, **({"norm": "l2"} if m == "pgd" else {}))) for m, o in SETTINGS.items()}

    def save(rows, **extra):
        (out / name).write_text(json.dumps(
            {"settings": settings, "images": args.images, "threads": args.threads,
             "machine": platform.platform(), "complete": False, "rows": rows, **extra},
            indent=1, default=float))

    print(f"{'case':<26} {'atk':<8} {'ASR':>5} {'bASR':>6} {'MSE':>8} {'SSIM':>6} "
          f"{'iter':>7} {'it_ok':>7} {'updates':>7} {'s/img':>8}")
    rows = run(args.images, args.cases, save, args.suite)
    summary = ratios(rows)
    print("\ncase                        ASR jma  ASR mlcw  time mlcw/jma")
    for s in summary:
        print(f"{s['case']:<26} {s['asr_jma']:>8.2f} {s['asr_mlcw']:>9.2f} "
              f"{s['time_ratio_mlcw_over_jma']:>14.2f}")
    med = float(np.median([s["time_ratio_mlcw_over_jma"] for s in summary]))
    total = time.perf_counter() - start
    print(f"median time ratio ML-C&W / JMA: {med:.2f}; total {total:.0f} s")
    save(rows, ratios=summary, median_time_ratio=med, total_seconds=total)
    data = json.loads((out / name).read_text())
    data["complete"] = args.cases is None
    (out / name).write_text(json.dumps(data, indent=1, default=float))


if __name__ == "__main__":
    main()
