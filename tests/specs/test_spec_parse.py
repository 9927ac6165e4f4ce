"""Parsing: every construct becomes the right typed node, with its source position."""

from __future__ import annotations

import pytest

from robustc.errors import SpecError
from robustc.specs import ast as A
from robustc.specs import parse, parse_text
from tests.specs.spec_helpers import EXAMPLES

VERIFY = """param eps = 0.03
network net = onnx("m.onnx")
input x = npy("x.npy")
labels d = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
decode net as multilabel(sigmoid > 0.5) over d
region obj9 = mask("m9.npy")
verify keep4: forall x' in layered(x, rings(obj9, chebyshev, 6),
  eps=[0.1,0.05,0.02,0.01,0.01,0,0]): present("4")
"""


def test_flavour_example_parses_to_typed_nodes():
    spec = parse_text(VERIFY, filename="v.rspec")
    prop = spec.properties[0]
    assert isinstance(prop, A.VerifyProperty) and prop.name == "keep4" and prop.network is None
    hood = prop.domain
    assert isinstance(hood, A.LayeredNeighbourhood)
    assert hood.rings == A.Rings(A.RegionRef("obj9"), "chebyshev", A.Number(6))
    assert [n.value for n in hood.eps.items] == [0.1, 0.05, 0.02, 0.01, 0.01, 0, 0]
    assert prop.condition == A.Present(A.Str("4"))
    decode = spec.declarations[4]
    assert decode == A.DecodeDecl("net", A.MultiLabelDecoder("sigmoid", A.Number(0.5)), "d")


def test_positions_point_at_the_text():
    spec = parse_text(VERIFY, filename="v.rspec")
    prop = spec.properties[0]
    assert (prop.pos.file, prop.pos.line, prop.pos.col) == ("v.rspec", 7, 1)
    cond = prop.condition
    line = VERIFY.splitlines()[7]
    assert line[cond.pos.col - 1:cond.pos.end_col - 1] == 'present("4")'
    rings = prop.domain.rings
    line = VERIFY.splitlines()[6]
    assert line[rings.pos.col - 1:rings.pos.end_col - 1] == "rings(obj9, chebyshev, 6)"


def test_every_node_has_a_position():
    from robustc.specs import walk

    spec = parse(EXAMPLES / "double_digits_verify.rspec")
    for node in walk(spec):
        assert node.pos.line >= 1, node


def test_equality_ignores_positions():
    a = parse_text("param e = 1\n\n\nparam f = [1, 2]")
    b = parse_text("param e=1 param f=[1,2]")
    assert a == b
    assert a.declarations[1].pos != b.declarations[1].pos


def test_precedence_and_negative_numbers():
    (decl,) = parse_text("param p = -1 + 2 * -eps / (3 - 1)").declarations
    assert decl.value == A.BinOp("+", A.Number(-1), A.BinOp(
        "/", A.BinOp("*", A.Number(2), A.Neg(A.ParamRef("eps"))),
        A.BinOp("-", A.Number(3), A.Number(1))))


def test_conditions_flatten_and_bind_not_tightest():
    spec = parse_text('network n = onnx("n.onnx") input x = npy("x.npy") '
                      "verify v: forall z in linf(x, 0.1): "
                      'not present(1) and absent(2) and (unchanged and argmax == "3") or '
                      '2 * y[1] - y["2"] + 0.5 <= c')
    cond = spec.properties[0].condition
    assert isinstance(cond, A.Or) and len(cond.operands) == 2
    conj = cond.operands[0]
    assert isinstance(conj, A.And) and len(conj.operands) == 4
    assert isinstance(conj.operands[0], A.Not)
    lin = cond.operands[1]
    assert lin.op == "<=" and [t.negated for t in lin.lhs.terms] == [False, True, False]
    assert lin.rhs.terms == (A.LinearTerm(False, A.ParamRef("c"), None),)


def test_regions_and_sets():
    spec = parse_text('input x = png("a.png", rgb) reshape [1, 3, 4, 4] '
                      'region r = box(rows 0:2, channels 1:3) | mask(external "/m.npy") - '
                      "pixels(x >= 0.3) & q "
                      'verify v: forall z in linf(x, 0.2, inside r): unchanged')
    region = spec.declarations[1].region
    assert isinstance(region, A.RegionDifference)
    assert isinstance(region.left, A.RegionUnion)
    assert region.left.right == A.MaskFile(A.PathRef("/m.npy", True))
    assert region.right == A.RegionIntersection(A.PixelPredicate("x", ">=", A.Number(0.3)),
                                                A.RegionRef("q"))
    assert spec.declarations[0].source.mode == "rgb"
    assert spec.properties[0].domain.region == A.RegionRef("r")


def test_keywords_are_only_reserved_where_expected():
    spec = parse_text("param eps = 1 param labels = 2 param y = eps + labels")
    assert [d.name for d in spec.declarations] == ["eps", "labels", "y"]


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.rspec")))
def test_examples_parse(name):
    spec = parse(EXAMPLES / name)
    assert spec.properties, name


def test_each_property_kind_has_an_example():
    kinds = set()
    for path in EXAMPLES.glob("*.rspec"):
        kinds |= {type(p) for p in parse(path).properties}
    assert kinds == {A.VerifyProperty, A.MaximizeProperty, A.AttackProperty, A.PatchProperty,
                     A.GlobalProperty}


def test_parse_reads_a_file_and_keeps_its_directory(tmp_path):
    path = tmp_path / "s.rspec"
    path.write_text("param a = 1\n")
    spec = parse(str(path))
    assert spec.source_dir == str(tmp_path.resolve())
    assert spec.pos.file == str(path)


def test_missing_spec_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec file"):
        parse(tmp_path / "nope.rspec")


@pytest.mark.parametrize(("text", "line", "col", "words"), [
    ("param eps = ", 1, 13, "a number"),
    ('verify v: forall z in linf(x, 1) present("4")', 1, 34, "expected ':'"),
    ('network n = onnx("a.onnx"\nverify', 2, 1, "expected ')' or ','"),
    ("param e = 3 $", 1, 13, "unexpected character '$'"),
    ("region r = box(rows 0:1", 1, 24, "unexpected end of file"),
    ("verify v on: x", 1, 12, "a name"),
    ('param s = "abc', 1, 11, "unexpected character"),
])
def test_syntax_errors_are_positioned_and_say_what_was_expected(text, line, col, words):
    with pytest.raises(SpecError) as info:
        parse_text(text, filename="bad.rspec")
    (diag,) = info.value.diagnostics
    assert (diag.pos.line, diag.pos.col) == (line, col)
    rendered = str(info.value)
    assert rendered.startswith(f"bad.rspec:{line}:{col}: ")
    assert words in rendered
    source_line = text.split("\n")[line - 1]
    assert rendered.splitlines()[1].strip() == source_line.strip()
    assert rendered.splitlines()[2].index("^") - 4 == col - 1


def test_statement_keywords_are_summarised():
    with pytest.raises(SpecError) as info:
        parse_text("param a = 1 )")
    assert "a new declaration or property" in str(info.value)
