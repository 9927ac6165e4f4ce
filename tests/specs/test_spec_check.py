"""Semantic checks, resolution with overrides, network checks and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from robustc.cli import main
from robustc.errors import SpecError
from robustc.specs import ast as A
from robustc.specs import check, check_networks, load, parse, parse_text, resolve
from tests.specs.spec_helpers import EXAMPLES, tiny_onnx

HEADER = """
network net = onnx("net.onnx")
input x = npy("x.npy")
labels d = ["a", "b", "c"]
decode net as multilabel(logit > 0) over d
region blob = box(rows 1:3, cols 1:3)
"""


def _errors(text: str, **kw) -> list[str]:
    with pytest.raises(SpecError) as info:
        check(parse_text(text, filename="s.rspec"), files=False, **kw)
    return [d.message for d in info.value.diagnostics]


def _workspace(tmp_path, in_shape=(1, 1, 4, 4), n_out=3, layers=1):
    tiny_onnx(tmp_path / "net.onnx", list(in_shape), n_out, layers)
    np.save(tmp_path / "x.npy", np.zeros((4, 4)))
    return tmp_path


def test_semantic_errors_are_collected_together_with_positions():
    text = HEADER + """
verify v1: forall z in layered(x, rings(blob, manhattan, 2), eps=[0.1, 0.2]): present("zz")
verify v2: forall z in linf(x, -0.5): present(7) and absent(nope)
verify v3 on other: forall z in linf(y, 0.1): unchanged
"""
    with pytest.raises(SpecError) as info:
        check(parse_text(text, filename="s.rspec"), files=False)
    diags = info.value.diagnostics
    messages = [d.message for d in diags]
    assert any("eps has 2 budgets but rings(..., 2) has 3 layers" in m for m in messages)
    assert any('unknown label "zz"' in m for m in messages)
    assert any("eps must be >= 0, got -0.5" in m for m in messages)
    assert any("label 7 out of range: there are 3 labels" in m for m in messages)
    assert any("unknown parameter 'nope'" in m for m in messages)
    assert any("unknown network 'other'" in m for m in messages)
    assert any("unknown input 'y'" in m for m in messages)
    eps_diag = next(d for d in diags if "budgets" in d.message)
    line = text.split("\n")[eps_diag.pos.line - 1]
    assert line[eps_diag.pos.col - 1:eps_diag.pos.end_col - 1] == "[0.1, 0.2]"
    assert str(info.value).count("s.rspec:") == len(diags)


def test_unknown_parameter_is_reported_at_its_use():
    with pytest.raises(SpecError) as info:
        check(parse_text(HEADER + "verify v: forall z in linf(x, epz): unchanged",
                         filename="s.rspec"), files=False)
    (diag,) = info.value.diagnostics
    assert diag.message == "unknown parameter 'epz'" and diag.pos.line == 7


@pytest.mark.parametrize(("prop", "message"), [
    ("maximize m: layered(x, rings(blob, chebyshev, 2), eps=[1,1,1]) such that present(0) "
     "method naive", "leave out eps="),
    ("maximize m: layered(x, rings(blob, chebyshev, 2)) such that present(0) weights [1, 2] "
     "method naive", "2 weights for 3 layers"),
    ("maximize m: layered(x, rings(blob, chebyshev, 2)) such that present(0) "
     "method oracle(cutting=fixed, speed=3)", "unknown option 'speed' of oracle"),
    ("attack a: flip 4 labels from x using mlcw norm l2", "cannot flip 4 of 3 labels"),
    ("attack a: target [1, 0] from x using jma norm l2", "2 entries for 3 labels"),
    ('attack a: target {"a", "q"} from x using jma norm l2', 'unknown label "q"'),
    ("attack a: untargeted from x using pgd norm linf within linf(w, 0.1)", "unknown input"),
    ("patch p: layer -1 such that argmax == 0 for x minimize l1", "layer index must be >= 0"),
    ("patch p: layer 0 such that argmax == 0 for x minimize l1 then adversarial(delta=1)",
     "needs a pixel budget"),
    ('global g on net: noise normal(0, 1) class "a" correct(delta=0.1)', "must be compose"),
    ("verify v: forall z in layered(x, rings(blob, chebyshev, 1)): unchanged", "needs eps="),
    ("verify v: forall z in linf(x, 0.1, inside box(rows 3:1)): unchanged", "empty range"),
    ("verify v: forall z in linf(x, 0.1, inside ghost): unchanged", "unknown region 'ghost'"),
    ("verify v: forall z in linf(x, 0.1, inside pixels(w > 0.2)): unchanged",
     "unknown input 'w'"),
])
def test_property_errors(prop, message):
    assert any(message in m for m in _errors(HEADER + prop)), _errors(HEADER + prop)


def test_declaration_errors():
    messages = _errors("""
network a = onnx("a.onnx") network a = onnx("b.onnx")
network c = compose(a, missing)
input x = values([[0, 1], [2]]) in [1, 0]
labels l = ["p", "p"]
decode a as topk(5) over l
decode zz as argmax over nowhere
""")
    expected = ["network 'a' is already declared", "unknown network 'missing'", "ragged",
                "empty domain", "duplicate label names: p", "top-5 needs at least 5 labels",
                "unknown network 'zz'", "unknown label list 'nowhere'"]
    for text in expected:
        assert any(text in m for m in messages), (text, messages)


def test_two_networks_need_on():
    text = 'network a = onnx("a.onnx") network b = onnx("b.onnx") input x = npy("x.npy") ' \
           "verify v: forall z in linf(x, 0.1): y[0] > 0"
    assert any("must say which network" in m for m in _errors(text))


def test_resolve_substitutes_and_folds_with_overrides():
    spec = parse_text("param eps = 0.1 param half = eps / 2 param l = [eps, 2 * eps] "
                      'param t = "a" ' + HEADER + "verify v: forall z in linf(x, half): "
                      "present(t)")
    resolved = resolve(spec, {"eps": "0.5", "t": "b"})
    prop = resolved.properties[0]
    assert prop.domain.eps == A.Number(0.25)
    assert prop.condition == A.Present(A.Str("b"))
    assert resolved.declarations[2].value == A.ListExpr((A.Number(0.5), A.Number(1.0)))
    assert prop.domain.eps.pos.line == spec.properties[0].domain.eps.pos.line
    assert resolve(spec, {"eps": 0.2}).properties[0].domain.eps == A.Number(0.1)


def test_resolve_rejects_unknown_overrides_and_bad_arithmetic():
    spec = parse_text('param a = 1 / 0 param b = "s" * 2')
    with pytest.raises(SpecError) as info:
        resolve(spec, {"zzz": "1"})
    messages = [d.message for d in info.value.diagnostics]
    assert any("--set zzz: no parameter 'zzz'" in m for m in messages)
    assert "division by zero" in messages and "'*' needs two numbers" in messages


def test_files_missing_and_leaving_the_tree(tmp_path):
    (tmp_path / "sub").mkdir()
    spec_path = tmp_path / "sub" / "s.rspec"
    spec_path.write_text('network a = onnx("../a.onnx")\nnetwork b = onnx("nope.onnx")\n'
                         'network c = onnx(external "../a.onnx")\n')
    (tmp_path / "a.onnx").write_text("")
    with pytest.raises(SpecError) as info:
        check(parse(spec_path))
    messages = [d.message for d in info.value.diagnostics]
    assert len(messages) == 2
    assert "leaves the spec's directory" in messages[0] and 'external "../a.onnx"' in messages[0]
    assert messages[1] == f"network file not found: {tmp_path / 'sub' / 'nope.onnx'}"


def test_network_checks_accept_a_consistent_spec(tmp_path):
    _workspace(tmp_path)
    path = tmp_path / "ok.rspec"
    path.write_text(HEADER + "verify v: forall z in linf(x, 0.1, inside blob): y[2] > 0\n"
                    "patch p: layer 1 such that argmax == 0 for x minimize l1\n")
    with pytest.raises(SpecError, match="layer 1 out of range"):
        load(path)
    path.write_text(HEADER + "verify v: forall z in linf(x, 0.1, inside blob): y[2] > 0\n")
    assert load(path).properties[0].name == "v"


def test_network_checks_find_mismatches(tmp_path):
    _workspace(tmp_path, in_shape=(1, 1, 5, 5), n_out=4)
    path = tmp_path / "bad.rspec"
    path.write_text(HEADER + "region far = box(rows 0:9)\n"
                    "verify v on net: forall z in linf(x, 0.1, inside far): y[2] > 0\n"
                    'network raw = onnx("net.onnx")\n'
                    "verify w on raw: forall z in linf(x, 0.1): y[7] > 0\n")
    resolved = check(parse(path))
    with pytest.raises(SpecError) as info:
        check_networks(resolved)
    messages = [d.message for d in info.value.diagnostics]
    assert any("3 labels in 'd' but network 'net' has 4 outputs" in m for m in messages)
    assert any("input 'x' has shape [4, 4] but network 'net' expects [1, 1, 5, 5]" in m
               for m in messages)
    assert any("rows 9 is outside the input" in m for m in messages)
    assert any("output 7 out of range" in m for m in messages)
    load(path, networks=False)  # skippable


def test_reshape_and_png_inputs(tmp_path):
    from PIL import Image

    tiny_onnx(tmp_path / "net.onnx", [1, 48], 2)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    path = tmp_path / "r.rspec"
    path.write_text('network net = onnx("net.onnx")\ninput x = png("a.png", rgb) '
                    "reshape [1, 48]\nverify v: forall z in linf(x, 0.1): y[0] > y[1]\n")
    load(path)
    path.write_text(path.read_text().replace("rgb", "grey"))
    with pytest.raises(SpecError, match=r"cannot reshape \(4, 4\)"):
        load(path)


def _example_files_present(spec_path) -> bool:
    spec = parse(spec_path)
    from robustc.specs import resolve_path, walk

    return all(resolve_path(spec, n).is_file() for n in walk(spec) if isinstance(n, A.PathRef))


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.rspec")))
def test_examples_check_without_networks_or_against_them(name):
    path = EXAMPLES / name
    check(parse(path), files=False)
    if not _example_files_present(path):
        pytest.skip(f"{name}: the example networks/samples are not built yet")
    load(path)


# ----------------------------------------------------------------------------- command line
def test_cli_check_ok_and_errors(tmp_path, capsys):
    _workspace(tmp_path)
    path = tmp_path / "c.rspec"
    path.write_text("param eps = 0.1\n" + HEADER
                    + "verify v: forall z in linf(x, eps): present(\"a\")\n")
    assert main(["check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["check", str(path), "--set", "eps=-1"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:8:" in err and "eps must be >= 0, got -1" in err and "^" in err
    assert "Traceback" not in err
    path.write_text("verify (")
    assert main(["check", str(path), "--no-network"]) == 2
    assert f"{path}:1:8: unexpected '('" in capsys.readouterr().err


def test_cli_fmt(tmp_path, capsys):
    path = tmp_path / "f.rspec"
    path.write_text("# head\n\nparam   a=1   # one\nparam b=[1,2]\n")
    assert main(["fmt", str(path)]) == 0
    assert capsys.readouterr().out == "# head\n\n# one\nparam a = 1\nparam b = [1, 2]\n"
    assert main(["fmt", "-i", str(path)]) == 0
    assert path.read_text().startswith("# head\n\n# one\nparam a = 1")
