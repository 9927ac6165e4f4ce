"""Global estimates with generators robustc's IR cannot take: the sampling side runs the ONNX
files by forward passes (onnxruntime), checked against onnxruntime sessions built here."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from robustc import specs
from robustc.analyses import global_robustness as G
from robustc.errors import SpecError

pytest.importorskip("torch")

A = 0.3          # the class boundary in noise space: C(G(z)) = "pos" iff z_1 > A
LATENT = 3


def _model(path: Path, nodes: list, inits: dict, in_shape: list, out_shape: list,
           opset: int = 20) -> None:
    graph = helper.make_graph(
        nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.int64 if k == "shape" else np.float32), k)
         for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)


def write_monotone(tmp: Path, last_op: str = "Sin") -> None:
    """gen.onnx: z [1, 3] -> Elu -> LeakyRelu(0.1) -> Tanh -> x0.5 + 0.5 -> ``last_op`` of
    (x - 0.5) / 4, + 0.5 -> [1, 1, 2, 2] (each step increasing in z_1, so the class boundary
    stays at z_1 = A); cls.onnx: Flatten, Gemm (x_1 - G(A)_1, 0) -> Softmax."""
    rng = np.random.default_rng(0)
    w = np.zeros((LATENT, 4))
    w[0, 0] = 1.0
    w[1:, 1:] = rng.normal(size=(LATENT - 1, 3))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h0"]),
             helper.make_node("Elu", ["h0"], ["h1"], alpha=1.0),
             helper.make_node("LeakyRelu", ["h1"], ["h2"], alpha=0.1),
             helper.make_node("Tanh", ["h2"], ["h3"]),
             helper.make_node("Mul", ["h3", "half"], ["h4"]),
             helper.make_node("Add", ["h4", "half"], ["h5"]),
             helper.make_node("Sub", ["h5", "half"], ["h6"]),
             helper.make_node("Mul", ["h6", "quarter"], ["h7"]),
             helper.make_node(last_op, ["h7"], ["h8"]),
             helper.make_node("Add", ["h8", "half"], ["h9"]),
             helper.make_node("Reshape", ["h9", "shape"], ["y"])]
    _model(tmp / "gen.onnx", nodes, {"w": w, "half": 0.5, "quarter": 0.25,
                                     "shape": np.array([-1, 1, 2, 2])}, [1, LATENT],
           [1, 1, 2, 2])
    # the class boundary: G(z)_1 at z_1 = A
    ga = 0.5 + np.sin(0.25 * (0.5 * np.tanh(np.where(A > 0, A, np.expm1(A))) + 0.5 - 0.5)) \
        if last_op == "Sin" else None
    cw = np.zeros((4, 2))
    cw[0, 0] = 1.0
    _model(tmp / "cls.onnx", [helper.make_node("Flatten", ["x"], ["f"]),
                              helper.make_node("Gemm", ["f", "cw", "cb"], ["l"]),
                              helper.make_node("Softmax", ["l"], ["y"], axis=1)],
           {"cw": cw, "cb": np.array([-ga, 0.0])}, [1, 1, 2, 2], [1, 2])


def write_gelu(tmp: Path) -> None:
    """gen.onnx: z [1, 3] -> Gemm(16) Gelu -> Gemm(4) Sigmoid -> [1, 4]; cls.onnx [1, 4] ->
    Gemm(3) Elu -> Gemm(3) (three classes, logits)."""
    rng = np.random.default_rng(1)
    _model(tmp / "gen.onnx", [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"]),
                              helper.make_node("Gelu", ["h"], ["g"]),
                              helper.make_node("Gemm", ["g", "w1", "b1"], ["o"]),
                              helper.make_node("Sigmoid", ["o"], ["y"])],
           {"w0": rng.normal(size=(LATENT, 16)), "b0": rng.normal(size=16),
            "w1": rng.normal(size=(16, 4)), "b1": rng.normal(size=4)}, [1, LATENT], [1, 4])
    _model(tmp / "cls.onnx", [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"]),
                              helper.make_node("Elu", ["h"], ["e"]),
                              helper.make_node("Gemm", ["e", "w1", "b1"], ["y"])],
           {"w0": rng.normal(size=(4, 3)), "b0": rng.normal(size=3),
            "w1": rng.normal(size=(3, 3)), "b1": np.array([0.5, 0.0, 0.0])}, [1, 4], [1, 3])


SPEC = """
network cls = onnx("cls.onnx")
network gen = onnx("gen.onnx")
network comp = compose(cls, gen)
labels names = [{labels}]
decode cls as argmax over names

global c on comp:
    noise normal(0, 1)
    class "{label}"
    correct(delta=0.5, confidence=0.9, samples=300)

global r on comp:
    noise uniform(-1, 1)
    class "{label}"
    robust(eps=0.2, delta=0.5, confidence=0.9, samples=64)
"""


def _tasks(tmp: Path, labels: str, label: str, **options) -> dict:
    (tmp / "spec.rspec").write_text(SPEC.format(labels=labels, label=label))
    return {t.name: t for t in G.global_tasks(specs.load(tmp / "spec.rspec"), **options)}


def _ort_classes(tmp: Path, z: np.ndarray) -> np.ndarray:
    """Independently: the class of each noise row by onnxruntime, one sample at a time, on
    the generator then the classifier (its Softmax output; argmax, ties as -1)."""
    gen = ort.InferenceSession(str(tmp / "gen.onnx"), providers=["CPUExecutionProvider"])
    cls = ort.InferenceSession(str(tmp / "cls.onnx"), providers=["CPUExecutionProvider"])
    out = []
    for row in z.astype(np.float32):
        img = gen.run(None, {"x": row.reshape(1, LATENT)})[0]
        y = cls.run(None, {"x": img.reshape(cls.get_inputs()[0].shape)})[0].reshape(-1)
        out.append(int(np.argmax(y)) if np.sum(y == y.max()) == 1 else -1)
    return np.array(out)


def _noise(task: G.GlobalTask) -> np.ndarray:
    """The documented noise scheme, written out: chunk i from default_rng([seed, 0, i])."""
    rows = []
    for i, start in enumerate(range(0, task.samples, task.chunk)):
        n = min(task.chunk, task.samples - start)
        rng = np.random.default_rng([task.seed, 0, i])
        rows.append(task.noise.a + task.noise.b * rng.standard_normal((n, 1, LATENT))
                    if task.noise.kind == "normal" else
                    rng.uniform(task.noise.a, task.noise.b, (n, 1, LATENT)))
    return np.concatenate(rows).reshape(task.samples, LATENT)


@pytest.fixture(scope="module")
def monotone(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("monotone")
    write_monotone(tmp)
    return tmp, _tasks(tmp, '"pos", "neg"', "pos", verify_samples=8)


@pytest.fixture(scope="module")
def gelu(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("gelu")
    write_gelu(tmp)
    return tmp, _tasks(tmp, '"a", "b", "c"', "a", verify_samples=8)


def test_ir_refusal_keeps_the_reason(monotone):
    _, tasks = monotone
    for task in tasks.values():
        assert task.graph is None and "Sin node 'h8'" in task.ir_reason   # the IR has no Sin
        assert task.noise_shape == (1, LATENT) and task.n_labels == 2
        assert G.forward_runner(task) == "onnxruntime"


@pytest.mark.parametrize("seed", [0, 7])
def test_correct_count_equals_onnxruntime(monotone, gelu, seed):
    for tmp, tasks in (monotone, gelu):
        task = G.with_seed(tasks["c"], seed)
        res = G.estimate(task)
        classes = _ort_classes(tmp, _noise(task))
        assert res.correct == int(np.sum(classes == task.label))
        # onnxruntime for the Sin generator; Gelu: whichever runner robustc's IR allows
        assert res.forward == G.forward_runner(task) and res.samples == task.samples
        assert res.interval == G.clopper_pearson(res.correct, task.samples, task.confidence)


def test_correct_count_on_the_closed_form(monotone):
    _, tasks = monotone
    task = tasks["c"]
    assert G.estimate(task).correct == int(np.sum(_noise(task)[:, 0] > A))


def test_robust_upper_bound_black_box_only(monotone):
    tmp, tasks = monotone
    task = tasks["r"]
    res = G.estimate(task)
    z = _noise(task)
    truth = int(np.sum(z[:, 0] - task.eps > A))      # balls that are robust
    assert res.searches == ("black-box",)
    # sound: every robust ball stays witness-free; the search misses at most a few others
    assert truth <= res.no_witness <= truth + 3
    assert res.verified == 0 and res.proved == 0
    assert "Sin" in res.verify_unavailable and "unavailable" in G.summary(res)
    assert res.interval[0] == 0.0
    assert res.interval[1] == G.clopper_pearson(res.no_witness, task.samples, 0.9)[1]
    for sample, z0, z_adv, cls, source in res.witnesses:
        assert np.max(np.abs(z_adv - z0)) <= task.eps + 1e-9
        assert np.all(np.abs(z_adv) <= 1.0)
        replayed = _ort_classes(tmp, z_adv.reshape(1, LATENT))[0]
        assert replayed != task.label and (source == "center" or replayed == cls)
        assert np.array_equal(z0.reshape(-1), z[sample])


def test_gelu_generator_robust_witnesses_replay(gelu, tmp_path):
    tmp, tasks = gelu
    task = tasks["r"]
    res = G.estimate(task)
    assert res.no_witness <= res.correct
    assert 0 < len(res.witnesses) < task.samples   # the property is neither trivial nor void
    for _, _, z_adv, cls, source in res.witnesses:
        replayed = _ort_classes(tmp, z_adv.reshape(1, LATENT))[0]
        assert replayed != task.label and (source == "center" or replayed == cls)
    pairs = G.save_pairs(task, res, tmp_path, limit=2)
    assert len(pairs) == min(2, sum(w[4] != "center" for w in res.witnesses))


def test_executor_independent(monotone):
    _, tasks = monotone
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


def test_size_mismatch_names_both_tensors(tmp_path):
    write_monotone(tmp_path)
    cw = np.zeros((5, 2))
    _model(tmp_path / "cls.onnx", [helper.make_node("Gemm", ["x", "cw", "cb"], ["y"])],
           {"cw": cw, "cb": np.zeros(2)}, [1, 5], [1, 2])
    with pytest.raises(SpecError) as err:
        _tasks(tmp_path, '"pos", "neg"', "pos")
    msg = str(err.value)   # the spec checker's message (it reads the ONNX shapes)
    assert "'gen' outputs (1, 1, 2, 2) but 'cls' expects (1, 5)" in msg
    assert "spec.rspec:4:" in msg   # the compose declaration


def test_unknown_latent_dimension_is_an_error(tmp_path):
    write_monotone(tmp_path)
    model = onnx.load(tmp_path / "gen.onnx")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "latent"
    onnx.save(model, tmp_path / "gen.onnx")
    with pytest.raises(SpecError, match=r"generator's input 'x' in gen.onnx has the shape "
                                        r"\[1, 'latent'\]"):
        _tasks(tmp_path, '"pos", "neg"', "pos")


def test_missing_generator_file(tmp_path):
    write_monotone(tmp_path)
    (tmp_path / "gen.onnx").unlink()
    with pytest.raises(SpecError, match="gen.onnx"):
        _tasks(tmp_path, '"pos", "neg"', "pos")


def test_cli_notes_the_onnxruntime_path(monotone, capsys):
    from robustc.cli.main import main

    tmp, _ = monotone
    code = main(["global", str(tmp / "spec.rspec"), "--quiet", "--json"])
    captured = capsys.readouterr()
    assert code in (1, 3)     # not met / undecided: the lower end is 0 without a verifier
    notes = [line for line in captured.err.splitlines() if line.startswith("note:")]
    assert len(notes) == 2 and all("Sin node 'h8'" in n and "onnxruntime" in n for n in notes)
    assert "no verified lower bound" in notes[1] and "no verified" not in notes[0]
    results = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["forward"] for r in results] == ["onnxruntime", "onnxruntime"]
    assert results[1]["searches"] == ["black-box"] and "Sin" in results[1]["verify_unavailable"]
