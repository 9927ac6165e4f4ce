"""``--strategy``: each forced strategy decides soundly (its verdicts agree with the MILP's
where it decides), says why where it cannot, and an unknown name is an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robustc.cli import main
from robustc.ir import evaluate
from robustc.ir.property import Box, Property, output_gt
from robustc.verify import ERROR, NOT_ROBUST, ROBUST, UNKNOWN, Problem, VerifyOptions, verify
from tests.verify.nets import conv_onnx, mlp_onnx, save_and_load

COMPLETE = ("auto", "milp", "input-split")


def _problems(tmp_path, onnx_model, name):
    rng = np.random.default_rng(7)
    path = tmp_path / f"{name}.onnx"
    graph = save_and_load(onnx_model, path)
    x = rng.uniform(0, 1, graph.input.shape)
    y = evaluate(graph, x).ravel()
    top = int(np.argmax(y))
    out = {}
    for eps in (0.002, 0.5):
        cond = output_gt(y.size, top, int(np.argsort(y)[-2]))
        prop = Property("p", (Box(x - eps, x + eps),), cond)
        out[eps] = Problem(f"{name}{eps}", graph, (str(path),), prop)
    return out


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_forced_strategies_agree_with_the_milp(tmp_path, kind):
    rng = np.random.default_rng(3)
    model = mlp_onnx(rng, [3, 12, 12, 3]) if kind == "mlp" else conv_onnx(rng)
    for problem in _problems(tmp_path, model, kind).values():
        truth = verify(problem, VerifyOptions(attack=False, strategy="milp", threads=1))
        assert truth.verdict in (ROBUST, NOT_ROBUST)
        for strategy in ("auto", "attack", "bounds", "input-split", "relu-split"):
            got = verify(problem, VerifyOptions(attack=False, strategy=strategy, threads=1,
                                                time_limit=120))
            assert got.verdict in (truth.verdict, UNKNOWN), (strategy, got.reason)
            if strategy in COMPLETE:
                assert got.verdict == truth.verdict, (strategy, got.reason)
            if got.verdict == UNKNOWN:
                assert got.reason
        if truth.verdict == ROBUST and kind == "cnn":
            forced = verify(problem, VerifyOptions(attack=False, strategy="relu-split"))
            assert forced.verdict in (ROBUST, UNKNOWN)


def test_the_relu_split_decides_a_maxpool_network_on_its_graph(tmp_path):
    from robustc.ir import MaxPool

    problems = _problems(tmp_path, conv_onnx(np.random.default_rng(3)), "cnn")
    assert any(isinstance(n, MaxPool) for n in problems[0.5].graph.nodes)
    for problem in problems.values():
        truth = verify(problem, VerifyOptions(attack=False, strategy="milp", threads=1))
        got = verify(problem, VerifyOptions(attack=False, strategy="relu-split", threads=1))
        assert got.verdict == truth.verdict, got.reason
        assert got.stats.get("relu_split_domains", 0) >= 1  # the graph search ran
        assert "queries" not in got.stats or got.stats["queries"] == 0  # no MILP


def test_an_unknown_strategy_is_an_error_and_the_cli_takes_the_option(tmp_path, capsys):
    problems = _problems(tmp_path, mlp_onnx(np.random.default_rng(3), [3, 6, 3]), "m")
    got = verify(problems[0.002], VerifyOptions(strategy="guess"))
    assert got.verdict == ERROR and "unknown strategy 'guess'" in got.reason
    spec = Path(__file__).resolve().parents[2] / "examples" / "double_digits_verify.rspec"
    code = main(["verify", str(spec), "-p", "keep_seven", "--strategy", "bounds"])
    out = capsys.readouterr().out
    assert code == 0 and "keep_seven: ROBUST" in out


def test_a_device_that_is_not_there_is_a_clear_error(tmp_path, capsys):
    import torch

    problems = _problems(tmp_path, mlp_onnx(np.random.default_rng(3), [3, 6, 3]), "m")
    got = verify(problems[0.002], VerifyOptions(device="tpu"))
    assert got.verdict == ERROR and "unknown device 'tpu'" in got.reason
    if not torch.cuda.is_available():
        got = verify(problems[0.002], VerifyOptions(device="cuda"))
        assert got.verdict == ERROR and "sees no CUDA device" in got.reason
    cpu = verify(problems[0.5], VerifyOptions(device="cpu", strategy="relu-split"))
    assert cpu.verdict == verify(problems[0.5], VerifyOptions(strategy="milp")).verdict
    spec = Path(__file__).resolve().parents[2] / "examples" / "double_digits_verify.rspec"
    code = main(["verify", str(spec), "-p", "keep_seven", "--device", "cpu"])
    assert code == 0 and "keep_seven: ROBUST" in capsys.readouterr().out


def test_the_milps_after_the_graph_search_get_time_by_what_the_probe_saw(tmp_path):
    """After a probe that ran out of its budget, the MILPs after the graph search get
    ``milp_share_live`` where its last MILP had solved its root relaxation and every case
    is one linear atom, none where it had not or where a case is more (top-2 of 3 labels:
    two atoms at once), and ``milp_share`` where the probe did not run out."""
    from robustc.ir.property import dnf, in_top_k, negate
    from robustc.verify.relu_split.strategy import _milp_share
    from robustc.verify.run import Run

    problem = _problems(tmp_path, conv_onnx(np.random.default_rng(3)), "cnn")[0.5]
    options = VerifyOptions(threads=1)
    run = Run(problem, options)
    split = options.relu_split
    single = dnf(negate(problem.prop.condition))
    top2 = dnf(negate(in_top_k(problem.graph.output.size, 0, 2)))
    assert all(len(case) == 1 for case in single) and len(single) > 0
    assert any(len(case) > 1 for case in top2)
    for exhausted, live, cases, want in [
            (False, False, single, split.milp_share), (False, False, top2, split.milp_share),
            (True, True, single, split.milp_share_live), (True, False, single, 0.0),
            (True, True, top2, 0.0)]:
        run.stats.update(milp_probe_exhausted=exhausted, milp_probe_live=live)
        assert _milp_share(run, cases) == want, (exhausted, live)
    assert split.milp_share < split.milp_share_live < 1.0


def test_a_milp_stopped_after_its_root_reports_a_sound_dual_bound(tmp_path):
    """The dual bound the probe's liveness rests on (Run.milp_dual_bound): from a MILP
    stopped by a node limit, finite and below the margin of every sampled and attacked
    point of the box (the case's atom); a case the MILP proves has one above MARGIN_TOL."""
    from robustc.backends.milp.encode import MARGIN_TOL
    from robustc.compiler.bounds import compute_bounds
    from robustc.ir.property import dnf, margin, negate
    from robustc.runtime.falsify import pgd_falsify
    from robustc.verify.milp import decide_case
    from robustc.verify.run import Run

    problems = _problems(tmp_path, conv_onnx(np.random.default_rng(3)), "cnn")
    solved = 0
    for eps, problem in problems.items():
        run = Run(problem, VerifyOptions(threads=1, node_limit=1, attack=False))
        (box,) = problem.prop.boxes
        bounds = compute_bounds(run.graph, box.lower, box.upper, "symbolic")
        rng = np.random.default_rng(0)
        xs = rng.uniform(box.lower, box.upper, (2000, *box.lower.shape))
        x_adv, _ = pgd_falsify(run.graph, box, problem.prop.condition, steps=50, restarts=4,
                               seed=0)
        points = np.concatenate([xs, x_adv[None]])
        ys = np.stack([evaluate(run.graph, x).ravel() for x in points])
        for case in dnf(negate(problem.prop.condition)):
            run.milp_dual_bound = None
            verdict = decide_case(run, box, bounds, case)
            if run.milp_dual_bound is None:  # the bounds alone refuted it: no MILP ran
                assert verdict == np.inf
                continue
            solved += 1
            atom = negate(case[0])
            sampled = margin(atom, ys).min()
            assert run.milp_dual_bound <= sampled + 1e-6, (eps, run.milp_dual_bound, sampled)
            if verdict == np.inf:
                assert run.milp_dual_bound > MARGIN_TOL
    assert solved > 0  # the wide box's cases reach the MILP
