"""Issue 23 (hardening): bad input gets a clear robustc error naming the file, line or option
and exit code 2, never a verdict computed on garbage. Every test runs the real CLI
(:func:`robustc.cli.main`) on a real bad file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from robustc.cli import main
from robustc.cli.common import EXIT_ERROR
from tests.verify.nets import mlp_onnx

SPEC = """network n = onnx("{net}")
input x = npy("{x}") in [0, 1] reshape [1, 4]
region r = mask("{mask}")
verify p on n:
    forall x' in linf(x, 0.1{inside}):
        argmax == 0
"""


def write_net(folder: Path, name: str = "net.onnx", poison: tuple | None = None) -> Path:
    """A 4 -> 6 -> 3 ReLU network; ``poison = (initializer index, flat index, value)``."""
    model = mlp_onnx(np.random.default_rng(0), [4, 6, 3])
    if poison is not None:
        k, i, value = poison
        init = model.graph.initializer[k]
        array = numpy_helper.to_array(init).copy()
        array.flat[i] = value
        init.CopyFrom(numpy_helper.from_array(array, init.name))
    onnx.save(model, str(folder / name))
    return folder / name


def write_spec(folder: Path, *, x=None, mask=None, net: str = "net.onnx",
               inside: bool = False) -> Path:
    """A verify spec on ``net`` with input ``x`` (1, 2, 2) and region mask ``mask``."""
    np.save(folder / "x.npy", np.full((1, 2, 2), 0.5) if x is None else np.asarray(x))
    np.save(folder / "mask.npy", np.ones((1, 2, 2)) if mask is None else np.asarray(mask))
    if not (folder / net).exists():
        write_net(folder, net)
    spec = folder / "p.rspec"
    spec.write_text(SPEC.format(net=net, x="x.npy", mask="mask.npy",
                                inside=", inside r" if inside else ""))
    return spec


def run(argv: list, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("value, words", [(np.nan, "1 NaN value(s)"),
                                          (np.inf, "1 infinite value(s)")])
@pytest.mark.parametrize("command", ["check", "verify"])
def test_non_finite_input_values_are_an_error_naming_the_input(tmp_path, capsys, value, words,
                                                                command):
    x = np.full((1, 2, 2), 0.5)
    x[0, 1, 0] = value
    code, err = run([command, write_spec(tmp_path, x=x)], capsys)
    assert code == EXIT_ERROR
    assert f"p.rspec:2:11: input 'x' holds {words}, the first at index [0, 1, 0]" in err
    assert "ROBUST" not in err


@pytest.mark.parametrize("command", ["check", "verify"])
def test_nan_in_a_mask_is_an_error_naming_the_mask(tmp_path, capsys, command):
    mask = np.ones((1, 2, 2))
    mask[0, 0, 1] = np.nan
    code, err = run([command, write_spec(tmp_path, mask=mask, inside=True)], capsys)
    assert code == EXIT_ERROR
    assert "p.rspec:3:17:" in err and "1 NaN value(s), the first at index [0, 0, 1]" in err


EMPTY_REGION = ("p.rspec:5:38: the region is empty on input 'x' (it selects none of its 4 "
                "values): no value may change, so a verdict is about the unperturbed input "
                "alone")


def test_check_warns_about_an_empty_region(tmp_path, capsys):
    spec = write_spec(tmp_path, mask=np.zeros((1, 2, 2)), inside=True)
    code, out = main(["check", str(spec)]), capsys.readouterr()
    assert code == 0 and "p.rspec: ok" in out.out
    assert "warning: " in out.err and EMPTY_REGION in out.err


def test_verify_on_an_empty_region_names_the_one_input_not_a_set(tmp_path, capsys):
    """The verdict stands (it is true of the unperturbed input), but it is neither worded
    nor reported as a proof about a neighbourhood."""
    spec = write_spec(tmp_path, mask=np.zeros((1, 2, 2)), inside=True)
    spec.write_text(spec.read_text().replace("argmax == 0", "argmax == 2"))
    code, out = main(["verify", str(spec)]), capsys.readouterr()
    assert code == 0
    assert "robustc: warning: " in out.err and EMPTY_REGION in out.err
    assert "p: ROBUST: y2 in top-1 holds for the unperturbed input, the only one in the set " \
           "(no input value may change)" in out.out
    assert "every input" not in out.out
    code, out = main(["verify", str(spec), "--json"]), capsys.readouterr()
    (warning,) = json.loads(out.out)["warnings"]
    assert warning.endswith(EMPTY_REGION)


@pytest.mark.parametrize("command", ["check", "verify"])
def test_nan_weights_are_an_error_naming_the_initializer(tmp_path, capsys, command):
    write_net(tmp_path, "nan.onnx", poison=(0, 3, np.nan))
    code, err = run([command, write_spec(tmp_path, net="nan.onnx")], capsys)
    assert code == EXIT_ERROR
    assert "nan.onnx: NaN weights in initializer(s) 'W0' (1 of 24)" in err


def test_an_infinite_bias_is_an_error_naming_the_node(tmp_path, capsys):
    write_net(tmp_path, "inf.onnx", poison=(1, 0, np.inf))
    code, err = run(["verify", write_spec(tmp_path, net="inf.onnx")], capsys)
    assert code == EXIT_ERROR
    assert "inf.onnx: non-finite (NaN or infinite) parameters in dense" in err
    assert "bias (1 of 6)" in err


VNNLIB = "".join(f"(declare-const X_{i} Real)\n" for i in range(4)) + \
    "".join(f"(declare-const Y_{j} Real)\n" for j in range(3))


def vnnlib_verify(tmp_path: Path, body: str, capsys) -> tuple[int, str]:
    path = tmp_path / "q.vnnlib"
    path.write_text(VNNLIB + body)
    return run(["verify", path, "--network", write_net(tmp_path), "--no-attack"], capsys)


def test_vnnlib_lower_above_upper_is_an_empty_set_error(tmp_path, capsys):
    body = "(assert (>= X_0 0.6))\n(assert (<= X_0 0.4))\n" + "".join(
        f"(assert (>= X_{i} 0)) (assert (<= X_{i} 1))\n" for i in range(1, 4)) + \
        "(assert (>= Y_1 Y_0))\n"
    code, err = vnnlib_verify(tmp_path, body, capsys)
    assert code == EXIT_ERROR
    assert "q.vnnlib: the input set is empty: X_0 has lower bound 0.6 above its upper " \
           "bound 0.4 (lines 8, 9)" in err


def test_vnnlib_number_that_overflows_is_an_error_with_its_position(tmp_path, capsys):
    body = "".join(f"(assert (>= X_{i} 0)) (assert (<= X_{i} 1))\n" for i in range(4)) + \
        "(assert (>= Y_1 1e999))\n"
    code, err = vnnlib_verify(tmp_path, body, capsys)
    assert code == EXIT_ERROR
    assert "q.vnnlib:12:17: number 1e999 is out of range" in err


@pytest.mark.parametrize("bound, verdict, words", [
    (1e6, "ROBUST", "holds for every input in the set"),
    (-1e6, "NOT ROBUST", "fails; counterexample")])
def test_vnnlib_verdict_names_the_vnnlib_property(tmp_path, capsys, bound, verdict, words):
    """A VNN-LIB file states the unsafe outputs: the verdict line names the file's property
    instead of the bare negation's label ("not holds for every input")."""
    import onnxruntime as ort

    body = "".join(f"(assert (>= X_{i} 0)) (assert (<= X_{i} 1))\n" for i in range(4)) + \
        f"(assert (>= Y_0 {bound}))\n"
    path = tmp_path / "q.vnnlib"
    path.write_text(VNNLIB + body)
    net = write_net(tmp_path)
    sess = ort.InferenceSession(str(net))
    y0 = sess.run(None, {sess.get_inputs()[0].name: np.full((1, 4), 0.5, np.float32)})[0][0, 0]
    assert (y0 >= bound) == (verdict == "NOT ROBUST")  # the oracle: the centre's output
    code = main(["verify", str(path), "--network", str(net)])
    out = capsys.readouterr().out
    assert f"q: {verdict}: the VNN-LIB property (no output in its unsafe set) {words}" in out
    assert code == (0 if verdict == "ROBUST" else 1)
    assert "not holds" not in out and "not fails" not in out


def test_replay_never_counts_nan_logits_as_a_violation(tmp_path):
    """Defence in depth behind the checks above: NaN fails every comparison, so a witness
    whose logits are NaN must not pass as a counterexample."""
    from robustc.ir.property import Box, in_top_k
    from robustc.runtime.replay import replay

    net = write_net(tmp_path, "nan.onnx", poison=(0, 0, np.nan))
    box = Box(np.zeros((1, 4)), np.ones((1, 4)))
    result = replay((str(net),), np.full((1, 4), 0.5), box, in_top_k(3, 0, 1))
    assert np.isnan(result.logits).all() and not result.violated


def test_nan_in_an_ecoc_codebook_is_an_error_naming_it(tmp_path, capsys):
    write_net(tmp_path)
    book = np.ones((2, 3))
    book[1, 2] = np.nan
    np.save(tmp_path / "book.npy", book)
    spec = tmp_path / "e.rspec"
    spec.write_text('network n = onnx("net.onnx")\nlabels two = ["a", "b"]\n'
                    'decode n as ecoc("book.npy") over two\n')
    code, err = run(["check", spec], capsys)
    assert code == EXIT_ERROR
    assert "e.rspec:3:18: codebook holds 1 NaN value(s), the first at index [1, 2]" in err
