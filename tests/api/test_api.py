"""The embedding API (robustc.api, docs/api.md) and ``python -m robustc``.

Oracles: the parser (the builder must make the AST the parser makes from the same text),
the spec files (same problems and verdicts), PyTorch's own forward pass (a counterexample
found on the export must fool the module) and the ``robustc`` command itself.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import robustc
from robustc import api, specs
from robustc.compiler.spec_lower import verify_problems
from robustc.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _line() -> int:
    return sys._getframe(1).f_lineno


def test_import_robustc_stays_light():
    code = ("import sys, robustc\nnames = robustc.load_spec, robustc.SpecBuilder, robustc.api\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'highspy', 'gurobipy', 'z3', 'onnxruntime'})\nprint('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        robustc.nothing  # noqa: B018


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300,
                          env=ENV, cwd=ROOT)


@pytest.mark.parametrize("args", [["--version"], ["check", "examples/dd_dataset_verify.rspec"],
                                  ["check", "examples/missing.rspec"]])
def test_python_m_robustc_works_like_robustc(args):
    module = _run("-m", "robustc", *args)
    command = _run("-c", "import sys\nfrom robustc.cli.main import main\nsys.exit(main())",
                   *args)
    assert (module.returncode, module.stdout, module.stderr) == \
        (command.returncode, command.stdout, command.stderr)
    assert module.returncode == (2 if "missing" in args[-1] else 0)


DD = f"""
network plain = onnx(external "{EX}/models/mlc_plain.onnx")
input x = npy(external "{EX}/samples/dd_0.npy") in [0, 1]
labels digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
decode plain as multilabel(logit > 0) over digits
region eight = mask(external "{EX}/samples/dd_0_mask_a.npy")
region corner = box(rows 0:8, cols 0:8) | pixels(x > 0.3) & eight
verify keep on plain:
    forall x' in layered(x, rings(eight, chebyshev, 4), eps=[0.05, 0.04, 0.03, 0.02, 0.01]):
        present("7") and not absent(8)
verify lin on plain:
    forall x' in linf(x, 0.01, inside corner - eight):
        unchanged or labels == {{"7", "8"}} or y[7] - 2 * y[5] >= -1 or argmax == "7"
maximize wide on plain:
    layered(x, rings(eight, manhattan, 2)) such that present("7")
    weights [1, 2, 3]
    method oracle(cutting=sensitivity, iterations=5)
attack to on plain:
    target {{"3", "7"}} from x
    using jma(max_iter=20) norm l2
    within linf(x, 0.1)
"""


def _dd_builder() -> robustc.SpecBuilder:
    b = robustc.SpecBuilder()
    b.network("plain", EX / "models/mlc_plain.onnx")
    b.input("x", EX / "samples/dd_0.npy", domain=(0, 1))
    b.labels("digits", [str(d) for d in range(10)])
    b.decode("plain", api.multilabel(0), "digits")
    b.region("eight", api.mask(EX / "samples/dd_0_mask_a.npy"))
    b.region("corner", api.union(api.box(rows=(0, 8), cols=(0, 8)),
                                 api.intersection(api.pixels("x", ">", 0.3), "eight")))
    b.verify("keep", api.layered("x", api.rings("eight", "chebyshev", 4),
                                 eps=[0.05, 0.04, 0.03, 0.02, 0.01]),
             api.all_of(api.present("7"), api.not_(api.absent(8))), network="plain")
    b.verify("lin", api.linf("x", 0.01, inside=api.difference("corner", "eight")),
             api.any_of(api.unchanged(), api.label_set("7", "8"),
                        api.linear({7: 1, 5: -2}, ">=", -1), api.argmax_is("7")),
             network="plain")
    b.maximize("wide", api.layered("x", api.rings("eight", "manhattan", 2)), api.present("7"),
               network="plain", weights=[1, 2, 3], method="oracle", cutting="sensitivity",
               iterations=5)
    b.attack("to", api.target("3", "7"), "x", method="jma", norm="l2", network="plain",
             within=api.linf("x", 0.1), max_iter=20)
    return b


def test_the_builder_makes_the_ast_the_parser_makes():
    with _dd_builder() as b:
        assert b.spec() == specs.parse_text(DD)
        assert specs.format_spec(b.spec()) == specs.format_spec(specs.parse_text(DD))


def test_built_spec_lowers_like_the_spec_file():
    with _dd_builder() as b:
        got = verify_problems(b.build())
    want = verify_problems(specs.check(specs.parse_text(DD)))
    for a, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.prop.boxes[0].lower, w.prop.boxes[0].lower)
        np.testing.assert_array_equal(a.prop.boxes[0].upper, w.prop.boxes[0].upper)
        assert pickle.dumps(a.prop.condition) == pickle.dumps(w.prop.condition)


def test_arrays_in_memory_and_a_data_set():
    """Arrays saved by the builder: the same problems as examples/dd_dataset_verify.rspec."""
    stems = [f"dd_{i}" for i in range(6)]
    images = np.concatenate([np.load(EX / "samples" / f"{s}.npy") for s in stems])
    masks = np.stack([np.load(EX / "samples" / f"{s}_mask_a.npy") for s in stems])
    with robustc.SpecBuilder() as b:
        b.network("plain", EX / "models/mlc_plain.onnx")
        b.dataset("x", images, labels=[7, 0, 7, 6, 6, 2], domain=(0, 1))
        b.labels("digits", [str(d) for d in range(10)])
        b.decode("plain", api.multilabel(0.0), "digits")
        b.region("digit_a", api.masks(masks))
        b.verify("keep_b", api.layered("x", api.rings("digit_a", "chebyshev", 4),
                                       eps=[0.05, 0.04, 0.03, 0.02, 0.01]),
                 api.present(api.data_label("x")))
        got = verify_problems(b.build())
    want = verify_problems(robustc.load_spec(EX / "dd_dataset_verify.rspec"))
    assert [p.name for p in got] == [p.name for p in want]
    for a, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.prop.boxes[0].lower, w.prop.boxes[0].lower)
        np.testing.assert_array_equal(a.prop.boxes[0].upper, w.prop.boxes[0].upper)
        assert pickle.dumps(a.prop.condition) == pickle.dumps(w.prop.condition)


@pytest.fixture(scope="module")
def tiny():
    import torch

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6), torch.nn.ReLU(),
                              torch.nn.Linear(6, 3))
    x0 = torch.rand(1, 1, 4, 4)
    return net, x0, int(net(x0).argmax())


def test_a_torch_module_is_exported_and_its_counterexamples_fool_it(tiny):
    import torch

    net, x0, label = tiny
    with robustc.SpecBuilder() as b:
        b.network("net", net, example_input=x0)
        b.input("x", x0.numpy())
        b.verify("small", api.linf("x", 1e-4), api.argmax_is(label))
        b.verify("large", api.linf("x", 1.0), api.argmax_is(label))
        small, large = api.verify(b, time_limit=60)
        assert (b.folder / "net.onnx").is_file()
    assert small.verdict == "robust"
    assert large.verdict == "not_robust"
    cex = torch.as_tensor(np.asarray(large.counterexample.input, dtype=np.float32))
    with torch.no_grad():
        assert int(net(cex.reshape(1, 1, 4, 4)).argmax()) != label


def test_a_model_proto_in_memory_maximize_and_attack(tiny):
    import onnx
    import torch

    net, x0, label = tiny
    with robustc.SpecBuilder() as first:
        first.network("net", net, example_input=x0)
        proto = onnx.load(str(first.folder / "net.onnx"))
    with robustc.SpecBuilder() as b:
        b.network("net", proto)
        b.input("x", x0.numpy())
        b.labels("classes", ["a", "b", "c"])
        b.decode("net", api.argmax(), "classes")
        b.region("centre", api.box(rows=(1, 3), cols=(1, 3)))
        b.maximize("wide", api.layered("x", api.rings("centre", "chebyshev", 1)),
                   api.unchanged(), precision=0.01, max_eps=0.5)
        b.attack("any", api.untargeted(), "x", method="pgd", norm="linf",
                 within=api.linf("x", 1.0), steps=20)
        (result,) = api.maximize(b, timeout=30)
        (report,) = api.attack(b)
    assert result.certified and len(result.eps) == 2
    with torch.no_grad():  # the attack's image, replayed: its class differs where it claims
        out = net(torch.as_tensor(report.x_adv, dtype=torch.float32).reshape(-1, 1, 4, 4))
    assert bool(report.success[0]) == (int(out.argmax()) != label)


def test_a_module_without_an_example_input(tiny):
    with robustc.SpecBuilder() as b, pytest.raises(SpecError) as info:
        line = _line() + 1
        b.network("net", tiny[0])
    assert f"test_api.py:{line}:1: network 'net': a torch.nn.Module needs example_input=" \
        in str(info.value)


def test_an_example_input_the_module_cannot_take(tiny):
    import torch

    with robustc.SpecBuilder() as b, pytest.raises(SpecError) as info:
        b.network("net", tiny[0], example_input=torch.zeros(1, 5))
    assert "network 'net': torch.onnx.export failed with an example input of shape [1, 5]" \
        in str(info.value)


def test_not_a_model():
    with robustc.SpecBuilder() as b, pytest.raises(SpecError, match="expected an ONNX path, "
                                                   "an onnx.ModelProto or a torch.nn.Module"):
        b.network("net", 42)


def test_an_input_of_the_wrong_shape_and_checker_errors_point_at_the_calls(tiny):
    net, x0, _ = tiny
    with robustc.SpecBuilder() as b:
        b.network("net", net, example_input=x0)
        b.input("x", np.zeros((1, 1, 4, 5)))
        line = _line() + 1
        b.verify("k", api.linf("x", 0.1), api.argmax_is(0))
        with pytest.raises(SpecError) as info:
            b.build()
        assert f"test_api.py:{line}:1: input 'x' has shape [1, 1, 4, 5] but network 'net' " \
               f"expects [1, 1, 4, 4]" in str(info.value)
        line = _line() + 1
        b.verify("neg", api.linf("x", -1), api.argmax_is(0))
        with pytest.raises(SpecError, match=f"test_api.py:{line}:1: eps must be >= 0"):
            b.build(networks=False)


def test_load_spec_selects_elements():
    spec = robustc.load_spec(EX / "dd_dataset_verify.rspec", select=["dd_2"], limit=1)
    assert [p.name for p in spec.properties] == ["keep_b[2]"]
    with pytest.raises(SpecError, match="no such element"):
        robustc.load_spec(EX / "dd_dataset_verify.rspec", select=["6"])
