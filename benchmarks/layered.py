"""Benchmark: maximal robust layered neighbourhoods, naive vs oracle-guided (fixed, sensitivity).

For each example multi-label classifier (no defence, L0, PGD) and each of the first
``--images`` double-digit test images on which all three detect digit b: perturb digit a and
the chebyshev rings around it (``--rings``), keep ``present(b)``, uniform weights. With
``--scale 64`` the classifiers are the papers' 64x64 DOUBLE-MNIST networks (``dd64_*``) and
``present(b)`` means b is among the top 2 outputs, the papers' objective (the margin is the
target's score minus the second-highest other score). Each
method runs with the same verifier configuration (HiGHS, ``--bounds`` bounds, PGD first,
``--call-limit`` seconds per call; an unknown counts as not robust). The oracle methods stop
after ``--max-failures`` refused optimiser steps (and their CEGIS cuts) and size their steps
so that the next proof is predicted to take at most ``--effort`` of the call limit;
``--thorough`` also runs them without the effort cap and with ``--thorough-failures``
(rows ``fixed+``, ``sensitivity+``). Each run's
verifier calls are broken down by verdict (count and seconds: proofs, unknowns at the time
limit, counterexamples) and the weakest-point searches. Prints one row per run and a
summary (medians and ratios of the oracle methods to naive, per model medians and eps per
ring), and saves everything, including each run's eps vector, to
``benchmarks/results/layered.json``; ``--heatmaps`` writes one PNG per run under
``benchmarks/results/layered/``.

    PYTHONPATH=. python benchmarks/layered.py [--images 10] [--rings 3] [--heatmaps]
    PYTHONPATH=. python benchmarks/layered.py --scale 64 --rings 4 --call-limit 10 --heatmaps
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("mlc_plain", "mlc_l0", "mlc_pgd")
# --scale 64: the papers' 64x64 DOUBLE-MNIST classifiers, decoded as the top 2 labels
MODELS_BY_SCALE = {16: MODELS, 64: ("dd64_plain", "dd64_l0", "dd64_pgd")}


def _layout(scale: int):
    from robustc.runtime.datasets import LARGE, SMALL

    return {16: SMALL, 64: LARGE}[scale]


def _condition(scale: int, target: int):
    """``present(target)``: logit > 0 (16x24 networks) or among the top 2 (64x64 ones)."""
    from robustc.ir import property as P

    if scale == 64:
        return P.in_top_k(10, target, 2, label=f"'{target}' in the top 2")
    return P.output_gt(10, target, value=0.0, label=f"'{target}' present")


def _problems(args) -> list[dict]:
    """One entry per (image): the image, the masks and the labels."""
    from robustc.compiler.onnx_import import load_onnx
    from robustc.compiler.passes import standard_passes
    from robustc.ir import evaluate, logits
    from robustc.ir.property import holds
    from robustc.runtime.datasets import double_digits, double_digits_info

    layout = _layout(args.scale)
    images, _, masks = double_digits("test", layout=layout)
    classes = double_digits_info("test", layout=layout).classes
    graphs = {m: logits(standard_passes().run(load_onnx(str(ROOT / "examples" / "models" /
                                                          f"{m}.onnx"))))[0]
              for m in args.models}  # fmt: skip

    def kept(i: int) -> bool:
        x0 = images[i][None].astype(np.float64)
        cond = _condition(args.scale, int(classes[i][1]))
        return all(holds(cond, evaluate(graphs[m], x0).reshape(1, -1))[0] for m in args.models)

    return [{"index": i, "x0": images[i][None].astype(np.float64), "masks": masks[i],
             "perturbed": int(classes[i][0]), "target": int(classes[i][1])}
            for i in choose(len(images), kept, args.images, getattr(args, "skip", 0))]


def choose(total: int, kept, count: int, skip: int = 0) -> list[int]:
    """Indices of the chosen test images: the ``skip``-th to the ``skip + count - 1``-th (from 0)
    of the indices ``i < total`` with ``kept(i)``, in index order. The rule does not depend on
    ``skip``: ``--skip 3 --images 3`` gives the images that ``--images 6`` gives after its first
    three. ``kept`` is not called past the last chosen index."""
    if count < 0 or skip < 0:
        raise ValueError(f"--images and --skip must be >= 0, got {count} and {skip}")
    chosen = []
    for i in range(total):
        if len(chosen) == skip + count:
            break
        if kept(i):
            chosen.append(i)
    return chosen[skip:]


def _layered(model: str, item: dict, rings: int, scale: int = 16):
    from robustc.analyses.maximize import LayeredProblem
    from robustc.compiler.onnx_import import load_onnx
    from robustc.compiler.passes import standard_passes
    from robustc.specs.rings import layer_indices

    path = ROOT / "examples" / "models" / f"{model}.onnx"
    graph = standard_passes().run(load_onnx(str(path)))
    ring_index = layer_indices(item["masks"][0], "chebyshev", rings)
    cond = _condition(scale, item["target"])
    return LayeredProblem(f"{model}/dd{item['index']}", graph, (str(path),), item["x0"],
                          ring_index, cond, np.ones(rings + 1), (1, *_layout(scale).canvas),
                          meta={"network": model, "region": item["masks"][0]})


def _run(problem, options, method: str) -> dict:
    from robustc.analyses.maximize import maximize

    t = time.perf_counter()
    result = maximize(problem, replace(options, method=method))
    row = result.to_json()
    row["profile"] = _profile(row.pop("history"))
    row["wall_s"] = time.perf_counter() - t
    return row


def _profile(history: list[dict]) -> dict:
    """Verifier calls by verdict (count, seconds) and the weakest-point searches."""
    out: dict = {}
    for h in history:
        key = h["verdict"] if h["kind"] == "verify" else "weakest"
        n, s = out.get(key, (0, 0.0))
        out[key] = (n + 1, round(s + h["time_s"], 4))
    return {k: {"count": n, "seconds": s} for k, (n, s) in out.items()}


def _summary(rows: list[dict]) -> dict:
    out = {}
    methods = list(rows[0]["runs"])
    for method in methods[1:]:
        size, vtime, calls = [], [], []
        for r in rows:
            naive = r["runs"]["naive"]
            size.append(r["runs"][method]["weighted_size"] / max(naive["weighted_size"], 1e-12))
            vtime.append(r["runs"][method]["verifier_s"] / max(naive["verifier_s"], 1e-12))
            calls.append(r["runs"][method]["verifier_calls"] / max(naive["verifier_calls"], 1))
        out[method] = {"median_size_ratio": float(np.median(size)),
                       "median_verifier_time_ratio": float(np.median(vtime)),
                       "median_calls_ratio": float(np.median(calls)),
                       "mean_size_ratio": float(np.mean(size)),
                       "mean_verifier_time_ratio": float(np.mean(vtime)),
                       "total_verifier_time_ratio": float(
                           sum(r["runs"][method]["verifier_s"] for r in rows)
                           / max(sum(r["runs"]["naive"]["verifier_s"] for r in rows), 1e-12)),
                       "total_wall_time_ratio": float(
                           sum(r["runs"][method]["wall_s"] for r in rows)
                           / max(sum(r["runs"]["naive"]["wall_s"] for r in rows), 1e-12))
                       if all("wall_s" in r["runs"][m] for r in rows for m in methods) else None,
                       "share_size_ge_95pct": float(np.mean(np.array(size) >= 0.95)),
                       "share_time_le_20pct": float(np.mean(np.array(vtime) <= 0.2)),
                       "share_both_goals": float(np.mean((np.array(size) >= 0.95)
                                                         & (np.array(vtime) <= 0.2)))}
    out["profile"] = {}
    profiled = [r for r in rows if all("profile" in r["runs"][m] for m in methods)]
    out["profiled_runs"] = len(profiled)
    for method in methods:
        agg: dict = {}
        for r in profiled:
            for k, v in r["runs"][method]["profile"].items():
                n, sec = agg.get(k, (0, 0.0))
                agg[k] = (n + v["count"], sec + v["seconds"])
        out["profile"][method] = {k: {"count": n, "seconds": round(sec, 2),
                                      "per_call_s": round(sec / max(n, 1), 3)}
                                  for k, (n, sec) in agg.items()}
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        out[model] = {m: {"median_size": float(np.median([r["runs"][m]["weighted_size"]
                                                          for r in mine])),
                          # over the runs that kept their vectors (not rows from a table)
                          "median_eps": np.median(vectors, axis=0).round(4).tolist()
                          if (vectors := [r["runs"][m]["eps"] for r in mine
                                          if "eps" in r["runs"][m]]) else None,
                          "eps_runs": len(vectors),
                          "mean_size": float(np.mean([r["runs"][m]["weighted_size"]
                                                      for r in mine]))}
                      for m in methods} if mine else {}
    return out


def markdown(data: dict) -> str:
    """The benchmark's tables in Markdown (per run, per method, per model)."""
    rows = data["rows"]
    summary = _summary(rows)  # recomputed: older saved runs lack some entries
    methods = list(rows[0]["runs"])
    head = " | ".join(f"{m} size | calls | verifier s" for m in methods)
    lines = [f"| model | image | {head} |", "|---|---|" + "---|---|---|" * len(methods)]
    for r in rows:
        cells = " | ".join(f"{r['runs'][m]['weighted_size']:.3f} | "
                           f"{r['runs'][m]['verifier_calls']} | "
                           f"{r['runs'][m]['verifier_s']:.1f}" for m in methods)
        lines.append(f"| {r['model']} | {r['image']} | {cells} |")
    lines += ["", "| method | size / naive (median) | verifier time / naive (median, mean, "
              "total) | calls / naive (median) | runs with size >= 95 % | runs with time "
              "<= 20 % | runs with both | total time / naive |",
              "|---|---|---|---|---|---|---|---|"]

    def count(share: float) -> str:
        return f"{round(share * len(rows))} of {len(rows)}"

    for m in methods[1:]:
        q = summary[m]
        lines.append(f"| {m} | {q['median_size_ratio']:.2f} | "
                     f"{q['median_verifier_time_ratio']:.3f}, "
                     f"{q['mean_verifier_time_ratio']:.3f}, "
                     f"{q['total_verifier_time_ratio']:.3f} | {q['median_calls_ratio']:.2f} | "
                     f"{count(q['share_size_ge_95pct'])} | {count(q['share_time_le_20pct'])} | "
                     f"{count(q['share_both_goals'])} | "
                     + ("n/a" if q["total_wall_time_ratio"] is None
                        else f"{q['total_wall_time_ratio']:.3f}") + " |")
    if data.get("partial"):
        lines += ["", "Partial: a saved run had not ended when its file was read."]
    tabled = [f"{r['model']} {r['image']}" for r in rows if r.get("source")]
    if tabled:
        lines += ["", f"{len(tabled)} of {len(rows)} rows read back from a Markdown table "
                  f"({', '.join(dict.fromkeys(r['source'] for r in rows if r.get('source')))}: "
                  "sizes to 3 decimals, seconds to 0.1 s, no vectors, profile or wall time): "
                  + ", ".join(tabled) + "."]
    recorded = [(r, m) for r in rows for m in methods if "certified" in r["runs"][m]]
    if recorded:
        failed = [f"{r['model']} {r['image']} {m}" for r, m in recorded
                  if not r["runs"][m]["certified"]]
        lines += ["", f"Final vectors re-verified robust by the complete verifier: "
                  f"{len(recorded) - len(failed)} of {len(recorded)} recorded runs"
                  + (f" (not: {', '.join(failed)})" if failed else "") + "."]
    lines += ["", f"| method | verifier calls by verdict: count, seconds, seconds per call "
              f"({summary['profiled_runs']} runs) |", "|---|---|"] if summary["profiled_runs"] \
        else []
    for m in methods if summary["profiled_runs"] else ():
        prof = summary["profile"][m]
        lines.append(f"| {m} | " + "; ".join(
            f"{k}: {v['count']}, {v['seconds']:.1f} s, {v['per_call_s']:.2f} s"
            for k, v in sorted(prof.items())) + " |")
    lines += ["", "| model | method | median size | mean size | median eps (rings 0..r; runs) |",
              "|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        for m, q in summary.get(model, {}).items():
            lines.append(f"| {model} | {m} | {q['median_size']:.3f} | {q['mean_size']:.3f} | "
                         f"{q['median_eps']}; {q['eps_runs']} |")
    return "\n".join(lines) + "\n"


def table_rows(text: str, source: str = "table") -> list[dict]:
    """The per-run rows of the Markdown tables in ``text`` that :func:`markdown` writes
    (header ``| model | image | naive size | calls | verifier s | ...``): per method the
    weighted size, the verifier calls and seconds, as printed; each row gets ``source``."""
    rows, methods = [], None
    for number, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.strip(
            ).startswith("|") else None
        if cells is None:
            methods = None
        elif cells[:2] == ["model", "image"] and len(cells) > 2:
            names = cells[2::3]
            if (len(cells) - 2) % 3 or not all(n.endswith(" size") for n in names) \
                    or cells[3::3] != ["calls"] * len(names) \
                    or cells[4::3] != ["verifier s"] * len(names):
                methods = None
                continue
            methods = [n[:-len(" size")] for n in names]
        elif methods and not set(line) <= set("|-: \t"):
            if len(cells) != 2 + 3 * len(methods):
                raise ValueError(f"{source}:{number}: {len(cells)} cells, the header has "
                                 f"{2 + 3 * len(methods)}")
            try:
                runs = {m: {"weighted_size": float(cells[2 + 3 * k]),
                            "verifier_calls": int(cells[3 + 3 * k]),
                            "verifier_s": float(cells[4 + 3 * k])}
                        for k, m in enumerate(methods)}
                rows.append({"model": cells[0], "image": int(cells[1]), "runs": runs,
                             "source": source})
            except ValueError as e:
                raise ValueError(f"{source}:{number}: not a per-run row ({e})") from None
    return rows


def combine(paths: list[str]) -> dict:
    """One saved run from several: the rows of every JSON file (in order; a later file's row
    for the same model and image replaces an earlier one), then the rows of any Markdown
    file's per-run tables (:func:`table_rows`) for the models of the JSON files (all models
    without JSON files) and the images no JSON file has; rows ordered by model (first
    appearance), then image."""
    saved, tables = [], []
    for path in paths:
        text = Path(path).read_text()
        if path.endswith(".md"):
            tables += table_rows(text, source=path)
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ValueError(f"{path}: not a saved run of this benchmark (no 'rows' list)")
        saved.append(data)
    rows: dict = {}
    for data in saved:
        rows.update({(r["model"], r["image"]): r for r in data["rows"]})
    models = {m for m, _ in rows}
    for r in tables:
        if (r["model"], r["image"]) not in rows and (not models or r["model"] in models):
            rows[r["model"], r["image"]] = r
    if not rows:
        raise ValueError(f"no per-run rows in {', '.join(paths)}")
    order = list(dict.fromkeys(m for m, _ in rows))
    methods = list(next(iter(rows.values()))["runs"])
    for key, r in rows.items():
        if list(r["runs"]) != methods:
            raise ValueError(f"{key[0]} image {key[1]}: methods {list(r['runs'])}, "
                             f"other rows have {methods}")
    out = {"args": saved[0]["args"] if saved else {}, "sources": list(paths),
           "rows": [rows[k] for k in sorted(rows, key=lambda k: (order.index(k[0]), k[1]))]}
    out["partial"] = any(d.get("partial") for d in saved)
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from robustc.analyses.maximize import MaximizeOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--skip", type=int, default=0,
                        help="start after the first SKIP chosen images (same choice rule)")
    parser.add_argument("--rings", type=int, default=3)
    parser.add_argument("--call-limit", type=float, default=1.0)
    parser.add_argument("--bounds", default="interval")
    parser.add_argument("--precision", type=float, default=0.01)
    parser.add_argument("--max-eps", type=float, default=0.32)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--max-failures", type=int, default=1)
    parser.add_argument("--effort", type=float, default=0.5,
                        help="oracle steps aim at proofs within this share of --call-limit "
                        "(0: no cap)")
    parser.add_argument("--thorough", action="store_true",
                        help="also run the oracle methods with --thorough-failures")
    parser.add_argument("--thorough-failures", type=int, default=2)
    parser.add_argument("--scale", type=int, choices=sorted(MODELS_BY_SCALE), default=16,
                        help="16: the 16x24 example classifiers (logit > 0); 64: the papers' "
                        "64x64 DOUBLE-MNIST classifiers (top 2)")
    parser.add_argument("--models", nargs="*", default=None,
                        help="default: the three classifiers of --scale")
    parser.add_argument("--heatmaps", action="store_true")
    parser.add_argument("--output", default=str(RESULTS / "layered.json"))
    parser.add_argument("--report", metavar="FILE", nargs="+",
                        help="only print the Markdown tables of saved runs (JSON files), "
                        "combined, with the per-run rows of Markdown files' tables (.md) "
                        "for the images no JSON file has")
    parser.add_argument("--figures", metavar="JSON",
                        help="only draw, from a saved run, one side-by-side comparison of "
                        "the classifiers per image and method (under --figures-dir)")
    parser.add_argument("--figures-dir", default=str(RESULTS / "layered"))
    args = parser.parse_args()
    if args.report:
        try:
            print(markdown(combine(args.report)), end="")
        except (OSError, ValueError) as e:
            raise SystemExit(f"layered.py --report: {e}") from None
        return
    if args.figures:
        for path in comparisons(json.loads(Path(args.figures).read_text()),
                                Path(args.figures_dir)):
            print(f"wrote {path}")
        return
    args.models = args.models or list(MODELS_BY_SCALE[args.scale])
    options = MaximizeOptions(precision=args.precision, max_eps=args.max_eps,
                              iterations=args.iterations, call_time_limit=args.call_limit,
                              bounds=args.bounds, threads=1, max_failures=args.max_failures,
                              effort=args.effort or None)
    variants = {"naive": ("naive", options), "fixed": ("fixed", options),
                "sensitivity": ("sensitivity", options)}
    if args.thorough:
        more = replace(options, max_failures=args.thorough_failures, effort=None)
        variants.update({"fixed+": ("fixed", more), "sensitivity+": ("sensitivity", more)})
    items = _problems(args)
    rows = []
    print(f"{'model':<10} {'image':>5} {'method':<12} {'size':>7} {'calls':>5} {'verif s':>8} "
          f"{'other s':>7}  eps")
    for model in args.models:
        for item in items:
            problem = _layered(model, item, args.rings, args.scale)
            runs = {name: _run(problem, opts, m) for name, (m, opts) in variants.items()}
            for m, r in runs.items():
                prof = " ".join(f"{k[:3]}:{v['count']}/{v['seconds']:.1f}s"
                                for k, v in sorted(r["profile"].items()))
                print(f"{model:<10} {item['index']:>5} {m:<12} {r['weighted_size']:>7.4f} "
                      f"{r['verifier_calls']:>5} {r['verifier_s']:>8.2f} {r['other_s']:>7.2f}  "
                      f"{np.round(r['eps'], 3).tolist()}  {prof}  {r['stop_reason']}",
                      flush=True)
            rows.append({"model": model, "image": item["index"], "target": item["target"],
                         "perturbed": item["perturbed"], "runs": runs})
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(json.dumps({"args": vars(args), "rows": rows,
                                                     "partial": True}, indent=1))
            if args.heatmaps:
                _heatmaps(problem, item, runs)
    summary = _summary(rows) if rows else {}
    print(json.dumps(summary, indent=1))
    out = {"args": vars(args), "machine": platform.platform(), "rows": rows, "summary": summary}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))
    print(f"saved {args.output}")
    if rows:
        print(markdown(out), end="")


def comparisons(data: dict, folder: Path) -> list[Path]:
    """One PNG per image and method of a saved run: the classifiers' budgets side by side
    (``robustc.runtime.heatmap.save_comparison``)."""
    from robustc.runtime.datasets import double_digits
    from robustc.runtime.heatmap import save_comparison
    from robustc.specs.rings import layer_indices

    scale, rings = data["args"].get("scale", 16), data["args"]["rings"]
    folder.mkdir(parents=True, exist_ok=True)
    images, _, masks = double_digits("test", layout=_layout(scale))
    written = []
    for index in dict.fromkeys(r["image"] for r in data["rows"]):
        rows = [r for r in data["rows"] if r["image"] == index]
        ring_index = layer_indices(masks[index, 0], "chebyshev", rings)
        objects = [(masks[index, 0], f"perturbed {rows[0]['perturbed']}"),
                   (masks[index, 1], f"target {rows[0]['target']}")]
        for method in rows[0]["runs"]:
            panels = [(f"{r['model']}: size {r['runs'][method]['weighted_size']:.3f}",
                       np.array(r["runs"][method]["eps"])) for r in rows]
            name = f"compare_{scale}_dd{index}_{method.replace('+', '_thorough')}.png"
            written.append(save_comparison(folder / name, images[index, 0], ring_index, panels,
                                           objects, title=f"test image {index}: maximal robust "
                                           f"layered neighbourhoods by classifier ({method})"))
    return written


def _heatmaps(problem, item: dict, runs: dict) -> None:
    from robustc.runtime.heatmap import save_heatmap

    folder = RESULTS / "layered"
    folder.mkdir(parents=True, exist_ok=True)
    for method, run in runs.items():
        save_heatmap(folder / f"{problem.name.replace('/', '_')}_{method.rstrip('+')}"
                     f"{'_thorough' if method.endswith('+') else ''}.png",
                     item["x0"].reshape(item["x0"].shape[-2:]), problem.rings, np.array(run["eps"]),
                     [(item["masks"][0], f"perturbed {item['perturbed']}"),
                      (item["masks"][1], f"target {item['target']}")],
                     title=f"{problem.name} {method}: size {run['weighted_size']:.3f}")


if __name__ == "__main__":
    main()
