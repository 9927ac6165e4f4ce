"""Global correctness and robustness against a closed-form oracle (tests/global/oracle.py)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import oracle  # noqa: E402

from robustc import specs  # noqa: E402
from robustc.analyses import global_robustness as G  # noqa: E402

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> dict:
    spec = oracle.write(tmp_path_factory.mktemp("oracle"))
    return {t.name: t for t in G.global_tasks(specs.load(spec), verify_samples=8,
                                               verify_time_limit=30.0)}


def _robust_truth(task: G.GlobalTask) -> int:
    """Samples of ``task`` whose ball is robust, computed from the noise directly."""
    z = np.concatenate([G.chunk_noise(task, c) for c in G.plan(task)])
    return int(np.sum(z[:, 0, 0] - task.eps > oracle.A))


def test_clopper_pearson_closed_forms():
    # k = 0 and k = n have closed forms: (alpha/2)^(1/n)
    n, conf = 50, 0.9
    assert G.clopper_pearson(0, n, conf)[1] == pytest.approx(1 - 0.05 ** (1 / n))
    assert G.clopper_pearson(n, n, conf)[0] == pytest.approx(0.05 ** (1 / n))
    # an end is where the binomial tail probability equals alpha / 2
    from scipy.stats import binom

    lo, hi = G.clopper_pearson(17, n, conf)
    assert binom.sf(16, n, lo) == pytest.approx(0.05)
    assert binom.cdf(17, n, hi) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        G.clopper_pearson(3, 2, conf)


def test_decide():
    assert G.decide(0.96, 0.99, 0.95) == G.MET
    assert G.decide(0.90, 0.94, 0.95) == G.NOT_MET
    assert G.decide(0.93, 0.97, 0.95) == G.UNDECIDED


def test_correct_count_is_exact(tasks):
    task = tasks["c"]
    res = G.estimate(task)
    z = np.concatenate([G.chunk_noise(task, c) for c in G.plan(task)])
    assert res.correct == int(np.sum(z[:, 0, 0] > oracle.A))
    assert res.samples == task.samples


def _coverage(task: G.GlobalTask, truth: float, seeds: range) -> tuple[float, float]:
    hits, width = 0, 0.0
    for s in seeds:
        lo, hi = G.estimate(G.with_seed(task, s)).interval
        hits += lo <= truth <= hi
        width += hi - lo
    return hits / len(seeds), width / len(seeds)


def test_correctness_interval_covers_truth_at_stated_rate(tasks):
    task = tasks["c"]   # confidence 0.9, 200 samples
    cover, width = _coverage(task, oracle.P_CORRECT, range(120))
    # 120 runs: a 0.9 rate gives >= 0.82 except with probability < 0.3 %
    assert cover >= 0.82
    assert width < 0.16          # not a vacuous interval
    wrong, _ = _coverage(task, oracle.P_CORRECT + 0.12, range(40))
    assert wrong < 0.5           # the same check rejects a wrong truth


def test_robust_bounds_are_exact_on_the_oracle(tasks):
    task = tasks["r"]
    res = G.estimate(task)
    truth = _robust_truth(task)
    assert res.no_witness == truth          # the searches find every non-robust ball
    assert res.verified == 8 and res.verify_unknown == 0
    plan = G.plan(task)
    z = np.concatenate([G.chunk_noise(task, c) for c in plan])
    chosen = [j for c in plan for j in c.verify]
    assert res.proved == int(np.sum(z[chosen, 0, 0] - task.eps > oracle.A))
    for _sample, z0, z_adv, cls, source in res.witnesses:
        assert np.max(np.abs(z_adv - z0)) <= task.eps + 1e-6       # bounded search
        assert np.all(np.abs(z_adv) <= 1.0 + 1e-6)                  # inside the support
        assert source == "center" or cls == 1


def test_robust_interval_covers_truth_at_stated_rate(tasks):
    task = replace(tasks["r"], verify_samples=4)
    hits_upper, hits = 0, 0
    seeds = range(40)
    for s in seeds:
        res = G.estimate(G.with_seed(task, s))
        hits_upper += res.upper_interval[0] <= oracle.P_ROBUST <= res.upper_interval[1]
        hits += res.interval[0] <= oracle.P_ROBUST <= res.interval[1]
    assert hits_upper / len(seeds) >= 0.75   # 0.9 nominal; >= 0.75 except w.p. < 0.5 %
    assert hits / len(seeds) >= 0.75


def test_processes_give_identical_results(tasks):
    task = replace(tasks["r"], chunk_size=16)
    serial = G.estimate(task).to_json()
    ex = G.ProcessExecutor(2)
    try:
        pooled = G.estimate(task, ex).to_json()
    finally:
        ex.close()
    for d in (serial, pooled):
        d.pop("seconds"), d.pop("workers")
    assert serial == pooled


def test_ray_local_gives_identical_results(tasks):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'robustc[ray]')")
    import ray

    task = replace(tasks["r"], chunk_size=16)
    serial = G.estimate(task).to_json()
    try:
        on_ray = G.estimate(task, G.RayExecutor("local", 2)).to_json()
    finally:
        ray.shutdown()
    for d in (serial, on_ray):
        d.pop("seconds"), d.pop("workers")
    assert serial == on_ray


def test_progress_reports_running_interval(tasks):
    lines = []
    G.estimate(replace(tasks["c"], chunk_size=50), progress=lines.append)
    assert len(lines) == 4 and "200/200 samples" in lines[-1] and "interval [" in lines[-1]


def test_witness_pairs_saved_as_png(tasks, tmp_path):
    from PIL import Image

    task = tasks["r"]
    res = G.estimate(task)
    paths = G.save_pairs(task, res, tmp_path, limit=3)
    pairs = [w for w in res.witnesses if w[4] != "center"]
    assert len(paths) == min(3, len(pairs)) > 0
    img = np.asarray(Image.open(paths[0]))
    # left half G(z), right half G(z'): they differ (z' moved z_1 across a)
    half = (img.shape[1] - 1) // 2
    assert not np.array_equal(img[:, :half], img[:, -half:])
