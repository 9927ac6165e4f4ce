"""Campaign throughput: ACAS Xu's VNN-COMP instance list run by ``robustc verify FILE.csv``
with one worker and with ``--workers N`` (and ``--ray local``) in the same run.

Each configuration is one ``python -m robustc.cli verify`` process (wall time from its start
to its exit: Python start-up, imports and spawning the workers included) writing its answers
to a results file; the answers are compared instance by instance and the throughput ratio
(one worker's wall time over N workers') is printed. Instances that end on the time limit
may differ between configurations (a busy worker reaches the limit sooner): such
differences are listed apart from those between decided answers, which must not exist.

    PYTHONPATH=. python benchmarks/campaign.py [--limit N] [--timeout-cap S] [--workers 2]
        [--ray]

The load average of the machine is recorded before and after each configuration, and the
throughput the machine gives N processes is measured before and after (N copies of a
pure-Python loop against one): on a machine that other work keeps busy the ratio cannot
exceed that figure. Saves JSON under
``benchmarks/results/campaign_acasxu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACASXU = ROOT.parent / "shared" / "benchmarks" / "vnncomp2021" / "benchmarks" / "acasxu"
DECIDED = ("sat", "unsat")


def subset_csv(folder: Path, limit: int | None) -> tuple[Path, int]:
    """The first ``limit`` rows of ACAS Xu's list, with absolute paths, in ``folder``."""
    from robustc.verify.vnncomp import read_instances

    rows = read_instances(ACASXU / "acasxu_instances.csv")[:limit]
    path = folder / "acasxu_subset.csv"
    path.write_text("".join(f"{r.onnx},{r.vnnlib},{r.timeout:g}\n" for r in rows))
    return path, len(rows)


def verify_run(args: list[str], results: Path, label: str) -> dict:
    """``robustc verify ARGS --quiet --output RESULTS`` in a child (one thread): its argv
    (after the interpreter), wall time, load averages before and after, and the records of
    the results log; exits naming ``label`` unless the exit code is a verdict's."""
    argv = [sys.executable, "-m", "robustc.cli", "verify", args[0], "--quiet", "--output",
            str(results), *args[1:]]
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1, 3):
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    records = [json.loads(line) for line in results.read_text().splitlines()[1:]]
    return {"argv": argv[3:], "wall_s": wall, "load_before": load_before,
            "load_after": os.getloadavg(), "records": records}


def run_config(csv: Path, extra: list[str], cap: float | None, folder: Path,
               label: str) -> dict:
    """One ``robustc verify`` run; returns wall time, load averages and the answers."""
    run = verify_run([str(csv), *extra] + (["--timeout", str(cap)] if cap else []),
                     folder / f"{label}.jsonl", label)
    records = run["records"]
    return {"label": label, "argv": run["argv"], "wall_s": run["wall_s"],
            "load_before": run["load_before"], "load_after": run["load_after"],
            "answers": {r["name"]: r["answer"] for r in records},
            "times": {r["name"]: r["time_s"] for r in records},
            "median_instance_s": statistics.median(r["time_s"] for r in records)}


SPIN = "sum(i * i for i in range(20_000_000))"


def machine_ratio(workers: int) -> dict:
    """What the machine gives ``workers`` processes now: the same pure-Python loop run once
    alone and then ``workers`` times at once; the throughput ratio is the most any
    executor can reach (1.0 when other work keeps every core busy)."""
    def spin(n: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start

    alone, together = spin(1), spin(workers)
    return {"alone_s": alone, "together_s": together, "ratio": workers * alone / together}


def compare(base: dict, other: dict) -> dict:
    """Instances whose answers differ: between decided answers, and involving a time-out."""
    decided, timing = [], []
    for name, answer in base["answers"].items():
        theirs = other["answers"].get(name)
        if theirs != answer:
            (decided if answer in DECIDED and theirs in DECIDED else timing).append(
                (name, answer, theirs))
    return {"decided_differ": decided, "timeout_differ": timing,
            "throughput_ratio": base["wall_s"] / other["wall_s"]}


DATASET_SPEC = """# {n} double-digit test images (robustc.runtime.datasets, {size}): digit a and
# four rings around it may change, each ring by its own budget (the main example's budgets times a
# scale); the label of digit b must stay present.
network plain = onnx("{net}")
input x = dataset(npy("images.npy"), labels="labels.txt") in [0, 1]
labels digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
decode plain as {decoder} over digits
region digit_a = mask("masks/{{i}}.npy")
""" + "".join(f"""
verify keep_b_{k} on plain:
    forall x' in layered(x, rings(digit_a, chebyshev, 4), eps=[{', '.join(
        f'{e * s:.4g}' for e in (0.05, 0.04, 0.03, 0.02, 0.01))}]):
        present(x.label)
""" for k, s in enumerate((0.2, 0.6, 1.0, 1.4)))


#: ``--dataset-network``: the network, its decoder and the data layout. ``mlc_plain``: the
#: 16x24 multi-label network; ``dd64_plain``: the README main example's undefended 64x64
#: network of the papers' architecture (top-2).
DATASET_NETWORKS = {"mlc_plain": ("multilabel(logit > 0)", "SMALL"),
                    "dd64_plain": ("topk(2)", "LARGE")}


def dataset_run(n: int, workers: int, timeout: float, plot: Path,
                network: str = "mlc_plain") -> dict:
    """``robustc verify`` over ``n`` double-digit test images at four budget scales on
    ``--workers``, with ``--plot`` (the certified-accuracy curve); returns the summary."""
    import numpy as np

    from robustc.runtime import datasets

    decoder, layout_name = DATASET_NETWORKS[network]
    layout = getattr(datasets, layout_name)
    folder = ROOT / "benchmarks" / "results" / f"campaign_dataset_{network}"
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    images, _, masks = datasets.double_digits("test", layout=layout)
    classes = datasets.double_digits_info("test", layout=layout).classes
    np.save(folder / "images.npy", images[:n, None].astype(np.float32))  # (n, 1, 1, H, W)
    for i in range(n):
        np.save(folder / "masks" / f"{i}.npy", masks[i, 0])
    (folder / "labels.txt").write_text("".join(f"{int(c)}\n" for c in classes[:n, 1]))
    import shutil

    net = f"{network}.onnx"  # a copy: spec paths stay inside the spec's folder
    shutil.copyfile(ROOT / "examples" / "models" / net, folder / net)
    spec = folder / "dataset.rspec"
    spec.write_text(DATASET_SPEC.format(n=n, net=net, decoder=decoder,
                                        size="x".join(map(str, layout.canvas))))
    results = folder / "results.jsonl"
    results.unlink(missing_ok=True)
    run = verify_run([str(spec), "--workers", str(workers), "--timeout", str(timeout),
                      "--plot", str(plot)], results, "data-set run")
    wall, load_before, records = run["wall_s"], run["load_before"], run["records"]
    from robustc.analyses.campaign import accuracy_points, summary_rows

    curve = accuracy_points(records)
    for eps, frac, count in curve:
        print(f"eps {eps:.4g}: verified {frac:.3f} of {count}")
    return {"images": n, "workers": workers, "timeout": timeout, "wall_s": wall,
            "load_before": load_before, "load_after": run["load_after"], "curve": curve,
            "summary": summary_rows(records), "plot": str(plot)}


def main(argv: list[str] | None = None) -> int:
    """Run the configurations; prints a table; saves JSON; returns 1 when decided answers
    differ between configurations."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, help="first N instances (default: all 186)")
    p.add_argument("--timeout-cap", type=float, metavar="S",
                   help="run each instance at min(its listed timeout, S) (verify --timeout)")
    p.add_argument("--workers", type=int, default=2, help="the parallel configuration")
    p.add_argument("--ray", action="store_true", help="also run with --ray local")
    p.add_argument("--output", help="JSON path (default benchmarks/results/campaign_acasxu.json)")
    p.add_argument("--dataset", type=int, metavar="N",
                   help="instead: N double-digit test images at four budgets with "
                        "--workers, plotting the certified-accuracy curve to --plot")
    p.add_argument("--dataset-timeout", type=float, default=5.0, metavar="S")
    p.add_argument("--dataset-network", default="mlc_plain", choices=sorted(DATASET_NETWORKS),
                   help="mlc_plain (16x24, default) or dd64_plain (the README example's "
                        "64x64 top-2 network)")
    p.add_argument("--plot", default=str(ROOT / "docs" / "campaigns_accuracy.png"))
    args = p.parse_args(argv)
    if args.dataset:
        from robustc.files import write_json

        summary = dataset_run(args.dataset, args.workers, args.dataset_timeout,
                              Path(args.plot), args.dataset_network)
        out = Path(args.output or ROOT / "benchmarks" / "results" /
                   f"campaign_dataset_{args.dataset_network}.json")
        write_json(out, summary)
        print(f"{summary['wall_s']:.1f} s wall; saved {out} and {args.plot}")
        return 0
    if not ACASXU.is_dir():
        print(f"benchmark folder {ACASXU} is absent; nothing to run")
        return 0
    calibration = machine_ratio(args.workers)
    print(f"machine now: {args.workers} copies of a pure-Python loop give "
          f"{calibration['ratio']:.2f}x the throughput of one (load "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv, n = subset_csv(folder, args.limit)
        configs = [("workers1", []), (f"workers{args.workers}", ["--workers",
                                                                 str(args.workers)])]
        if args.ray:
            configs.append((f"ray_local{args.workers}", ["--ray", "local", "--workers",
                                                         str(args.workers)]))
        runs = []
        for label, extra in configs:
            runs.append(run_config(csv, extra, args.timeout_cap, folder, label))
            r = runs[-1]
            print(f"{label:14} {n} instances: {r['wall_s']:8.1f} s wall, median instance "
                  f"{r['median_instance_s']:.2f} s, load {r['load_before'][0]:.1f} -> "
                  f"{r['load_after'][0]:.1f}", flush=True)
    comparisons = {r["label"]: compare(runs[0], r) for r in runs[1:]}
    for label, c in comparisons.items():
        print(f"{label}: throughput {c['throughput_ratio']:.2f}x of one worker; decided "
              f"answers that differ: {len(c['decided_differ'])}; differences involving a "
              f"time-out: {len(c['timeout_differ'])} {c['timeout_differ'][:5]}")
    counts = {a: sum(v == a for v in runs[0]["answers"].values())
              for a in sorted(set(runs[0]["answers"].values()))}
    print(f"answers (one worker): {counts}")
    out = Path(args.output or ROOT / "benchmarks" / "results" / "campaign_acasxu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    from robustc.files import write_json

    calibration_after = machine_ratio(args.workers)
    print(f"machine after: {calibration_after['ratio']:.2f}x")
    write_json(out, {"instances": n, "timeout_cap": args.timeout_cap,
                     "machine_ratio_before": calibration, "machine_ratio_after":
                     calibration_after,
                     "cpu_count": os.cpu_count(), "runs": runs, "comparisons": comparisons})
    print(f"saved {out}")
    return 1 if any(c["decided_differ"] for c in comparisons.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
