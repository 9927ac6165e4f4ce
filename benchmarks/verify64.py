"""Benchmark: layered neighbourhoods on the 64x64 DOUBLE-MNIST classifiers, decided one by one.

For each of the first ``--images`` 64x64 test images whose top-2 label set all the
networks get right, and each network (``dd64_plain``, ``dd64_l0``, ``dd64_pgd``: the papers'
2-conv, 1-max-pool, 1-dense architecture, 12,288 ReLUs), one property, written as a user
would write it: digit a and four chebyshev rings around it may change by
``--eps`` (0.05, 0.04, 0.03, 0.02, 0.01 by default), and digit b must stay among the top 2
labels. Each image gets a folder under ``--workdir`` with its ``.npy`` input, its two masks
and one ``.rspec`` per network, so every row can be re-run with ``robustc verify``. Each
property runs in this process with ``--timeout`` seconds, one solver thread and one torch
thread (one core). Prints one row per property, then per network: decided count, verdict
counts, median and worst time, and the worst time-limit overshoot; saves everything to
``--output`` (JSON).

    PYTHONPATH=. python benchmarks/verify64.py [--images 20] [--timeout 60]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("dd64_plain", "dd64_l0", "dd64_pgd")
EPS = (0.05, 0.04, 0.03, 0.02, 0.01)

SPEC = """# {name}: written by benchmarks/verify64.py (test image {index}: a = {a}, b = {b})
network net = onnx(external "{onnx}")
input x = npy("dd64_{index}.npy") in [0, 1]
labels digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
decode net as topk(2) over digits
region a = mask("dd64_{index}_mask_a.npy")

verify keep_b on net:
    forall x' in layered(x, rings(a, chebyshev, {rings}), eps={eps}):
        present("{b}")
"""


def top2(model: str | Path, images: np.ndarray) -> np.ndarray:
    """The top-2 multi-hot sets of ``model`` (onnxruntime) on ``images`` [N, 1, 64, 64]:
    a name of ``examples/models/<name>.onnx``, or a path."""
    import onnxruntime as ort

    path = model if isinstance(model, Path) else ROOT / "examples" / "models" / f"{model}.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = np.concatenate([sess.run(None, {name: images[i : i + 1]})[0]
                          for i in range(len(images))])  # fmt: skip
    hot = np.zeros(out.shape, dtype=np.uint8)
    np.put_along_axis(hot, np.argsort(-out, axis=1)[:, :2], 1, axis=1)
    return hot


def chosen_images(models: list[str], count: int) -> list[int]:
    """The first ``count`` test images on which every model's top-2 set is right."""
    from robustc.runtime.datasets import LARGE, double_digits

    images, labels, _ = double_digits("test", layout=LARGE)
    right = np.ones(len(images), dtype=bool)
    for model in models:
        right &= (top2(model, images) == labels).all(1)
    return [int(i) for i in np.flatnonzero(right)[:count]]


def write_specs(index: int, models: list[str], workdir: Path, eps: list[float]) -> dict:
    """Write image ``index``'s input, masks and one spec per model; return the paths."""
    from robustc.runtime.datasets import LARGE, double_digits_info, render_pairs

    info = double_digits_info("test", layout=LARGE)
    one = type(info)(*(field[index : index + 1] for field in info))
    images, _, masks = render_pairs(one, LARGE)
    folder = workdir / f"dd64_{index}"
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"dd64_{index}.npy", images)
    np.save(folder / f"dd64_{index}_mask_a.npy", masks[0, 0])
    np.save(folder / f"dd64_{index}_mask_b.npy", masks[0, 1])
    a, b = (int(c) for c in info.classes[index])
    specs = {}
    for model in models:
        path = folder / f"{model}.rspec"
        onnx_path = (ROOT / "examples" / "models" / f"{model}.onnx").resolve()
        path.write_text(SPEC.format(name=path.name, index=index, a=a, b=b, onnx=onnx_path,
                                    rings=len(eps) - 1, eps=list(eps)))  # fmt: skip
        specs[model] = path
    return {"a": a, "b": b, "specs": specs}


def decide(spec: Path, timeout: float) -> dict:
    """Verify the spec's one property as ``robustc verify --timeout T --threads 1`` does."""
    from robustc import specs
    from robustc.compiler.spec_lower import verify_problems
    from robustc.verify import VerifyOptions, verify

    started = time.perf_counter()
    (problem,) = verify_problems(specs.load(spec))
    result = verify(problem, VerifyOptions(time_limit=timeout, threads=1))
    seconds = time.perf_counter() - started
    return {"verdict": result.verdict, "seconds": round(seconds, 3), "method": result.solver,
            "reason": result.reason, "stats": result.stats,
            "overshoot_s": round(seconds - timeout, 3)}


def summary(rows: list[dict], models: list[str]) -> list[dict]:
    """Per model: decided count, verdict counts, median / worst time, worst overshoot."""
    out = []
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        times = [r["seconds"] for r in mine]
        counts = {v: sum(r["verdict"] == v for r in mine)
                  for v in ("robust", "not_robust", "unknown")}  # fmt: skip
        out.append({"model": model, "properties": len(mine),
                    "decided": counts["robust"] + counts["not_robust"], **counts,
                    "median_s": float(np.median(times)), "worst_s": max(times),
                    "worst_overshoot_s": max(r["overshoot_s"] for r in mine)})
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--eps", type=float, nargs="+", default=list(EPS),
                        help="one budget per layer: digit a, then its rings")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--workdir", default=str(RESULTS / "verify64"))
    parser.add_argument("--output", default=str(RESULTS / "verify64.json"))
    args = parser.parse_args()
    indices = chosen_images(args.models, args.images)
    print(f"test images (top-2 right on {', '.join(args.models)}): {indices}")
    print(f"{'model':<11} {'image':>5} {'a':>2} {'b':>2} {'verdict':<11} {'seconds':>8} "
          f"{'method':<10} reason")
    rows = []
    for index in indices:
        item = write_specs(index, args.models, Path(args.workdir), args.eps)
        for model in args.models:
            row = {"model": model, "image": index, "a": item["a"], "b": item["b"],
                   "spec": str(item["specs"][model]), **decide(item["specs"][model],
                                                              args.timeout)}  # fmt: skip
            rows.append(row)
            print(f"{model:<11} {index:>5} {item['a']:>2} {item['b']:>2} {row['verdict']:<11} "
                  f"{row['seconds']:>8.2f} {row['method'] or '-':<10} {row['reason'] or ''}",
                  flush=True)
    table = summary(rows, args.models)
    print(f"\n{'model':<11} {'props':>5} {'decided':>7} {'robust':>6} {'not rob':>7} "
          f"{'unknown':>7} {'median s':>8} {'worst s':>8} {'overshoot':>9}")
    for t in table:
        print(f"{t['model']:<11} {t['properties']:>5} {t['decided']:>7} {t['robust']:>6} "
              f"{t['not_robust']:>7} {t['unknown']:>7} {t['median_s']:>8.2f} "
              f"{t['worst_s']:>8.2f} {t['worst_overshoot_s']:>+9.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")
    out = {"args": vars(args), "machine": platform.platform(), "images": indices,
           "rows": rows, "summary": table, "peak_rss_mib": round(peak)}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
