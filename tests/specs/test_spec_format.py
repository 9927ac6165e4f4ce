"""The formatter: parse(format(ast)) == ast for generated ASTs and for every example."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustc.specs import ast as A
from robustc.specs import format_spec, parse, parse_text
from robustc.specs.grammar import GRAMMAR
from tests.specs.spec_helpers import EXAMPLES

KEYWORDS = set(re.findall(r'"([a-z_][a-z0-9_]*)"', GRAMMAR))
names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda n: n not in KEYWORDS)
variables = st.builds(lambda n, p: n + p, names, st.sampled_from(["", "'", "''"]))
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
paths = st.builds(A.PathRef, texts, st.booleans())
numbers = st.builds(A.Number, st.integers(-10**6, 10**6)
                    | st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
plain_numbers = st.builds(A.Number, st.integers(0, 10**6)
                          | st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
leaves = numbers | st.builds(A.Str, texts) | st.builds(A.ParamRef, names)


def _extend(inner):
    return (st.builds(A.ListExpr, st.lists(inner, max_size=3).map(tuple))
            | st.builds(A.BinOp, st.sampled_from("+-*/"), inner, inner)
            | st.builds(A.Neg, inner.filter(lambda e: not isinstance(e, A.Number))))


exprs = st.recursive(leaves, _extend, max_leaves=6)
options = st.lists(st.builds(A.Option, names, exprs), max_size=2).map(tuple)


def _regions_extend(inner):
    return (st.builds(A.RegionUnion, inner, inner)
            | st.builds(A.RegionDifference, inner, inner)
            | st.builds(A.RegionIntersection, inner, inner))


box_dims = st.lists(st.sampled_from(["rows", "cols", "channels"]), unique=True, max_size=3)
boxes = box_dims.flatmap(lambda axes: st.tuples(*[
    st.builds(A.BoxDim, st.just(a), exprs, exprs) for a in axes]).map(A.Box))
region_leaves = (boxes | st.builds(A.MaskFile, paths) | st.builds(A.RegionRef, names)
                 | st.builds(A.PixelPredicate, names, st.sampled_from([">", ">=", "<", "<="]),
                             exprs))
regions = st.recursive(region_leaves, _regions_extend, max_leaves=4)
rings = st.builds(A.Rings, regions, st.sampled_from(["chebyshev", "manhattan", "euclidean"]),
                  exprs)
linf = st.builds(A.LinfBall, names, exprs, st.none() | regions)
layered = st.builds(A.LayeredNeighbourhood, names, rings, st.none() | exprs)
psets = linf | layered

coefs = st.none() | plain_numbers | st.builds(A.ParamRef, names)
terms = st.builds(A.LinearTerm, st.booleans(), coefs, st.none() | exprs).filter(
    lambda t: t.coef is not None or t.output is not None)
linexprs = st.lists(terms, min_size=1, max_size=3).map(lambda ts: A.LinearExpr(tuple(ts)))
cond_leaves = (st.builds(A.Present, exprs) | st.builds(A.Absent, exprs)
               | st.just(A.Unchanged())
               | st.builds(A.LabelSetIs, st.lists(exprs, max_size=3).map(tuple))
               | st.builds(A.ArgmaxIs, exprs)
               | st.builds(A.LinearConstraint, linexprs,
                           st.sampled_from(["<", "<=", ">", ">=", "=="]), linexprs))


def _conds_extend(inner):
    def junction(kind):
        return st.lists(inner.filter(lambda c: not isinstance(c, kind)), min_size=2,
                        max_size=3).map(lambda cs: kind(tuple(cs)))
    return junction(A.And) | junction(A.Or) | st.builds(A.Not, inner)


conds = st.recursive(cond_leaves, _conds_extend, max_leaves=5)
maybe_net = st.none() | names
decls = st.one_of(
    st.builds(A.ParamDecl, names, exprs),
    st.builds(A.NetworkDecl, names, st.builds(A.OnnxFile, paths)
              | st.builds(A.Compose, names, names)),
    st.builds(A.InputDecl, names,
              st.builds(A.NpyFile, paths)
              | st.builds(A.PngFile, paths, st.sampled_from(["grey", "rgb"]))
              | st.builds(A.InlineValues, exprs),
              st.none() | st.builds(A.Domain, exprs, exprs), st.none() | exprs),
    st.builds(A.LabelsDecl, names, st.lists(texts, max_size=3).map(tuple)),
    st.builds(A.DecodeDecl, names,
              st.just(A.ArgmaxDecoder())
              | st.builds(A.MultiLabelDecoder, st.sampled_from(["logit", "sigmoid"]), exprs)
              | st.builds(A.TopKDecoder, exprs) | st.builds(A.EcocDecoder, paths), names),
    st.builds(A.RegionDecl, names, regions),
)
goals = (st.builds(A.TargetLabels, st.lists(exprs, max_size=3).map(tuple))
         | st.builds(A.TargetVector, exprs) | st.builds(A.FlipLabels, exprs)
         | st.just(A.Untargeted()))
norms = st.sampled_from(["l0", "l1", "l2", "linf"])
opt_exprs = st.none() | exprs
props = st.one_of(
    st.builds(A.VerifyProperty, names, maybe_net, variables, psets, conds),
    st.builds(A.MaximizeProperty, names, maybe_net, layered, conds, opt_exprs,
              st.builds(A.NaiveSearch, options)
              | st.builds(A.OracleSearch, st.sampled_from(["fixed", "sensitivity"]), options)),
    st.builds(A.AttackProperty, names, maybe_net, goals, names,
              st.builds(A.AttackMethod, st.sampled_from(["jma", "mlcw", "pgd"]), options),
              norms, st.none() | psets),
    st.builds(A.PatchProperty, names, maybe_net, exprs, conds,
              st.lists(names, min_size=1, max_size=3).map(tuple), norms,
              st.none() | st.builds(A.AdversarialInput, options)),
    st.builds(A.GlobalProperty, names, names,
              st.builds(A.Noise, st.sampled_from(["normal", "uniform"]), exprs, exprs), exprs,
              st.builds(A.Correctness, opt_exprs, opt_exprs, opt_exprs)
              | st.builds(A.EpsRobustness, opt_exprs, opt_exprs, opt_exprs, opt_exprs)),
)
specs = st.builds(A.Spec, st.lists(decls, max_size=4).map(tuple),
                  st.lists(props, max_size=3).map(tuple))


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(specs)
def test_parse_of_format_is_identity(spec):
    text = format_spec(spec)
    assert parse_text(text) == spec, text


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.rspec")))
def test_examples_round_trip_and_are_canonical(name):
    path = EXAMPLES / name
    spec = parse(path)
    text = format_spec(spec)
    assert parse_text(text) == spec
    assert text == path.read_text(), f"{name} is not in canonical form (run robustc fmt -i)"


def test_format_is_idempotent_and_keeps_comments():
    source = "# top\n\nparam a=1 # why\n# about b\nparam b = - a\n# trailing\n"
    once = format_spec(parse_text(source))
    assert once == "# top\n\n# why\nparam a = 1\n\n# about b\nparam b = -a\n\n# trailing\n"
    assert format_spec(parse_text(once)) == once


def test_format_of_a_resolved_spec_is_valid():
    from robustc.specs import resolve

    spec = parse_text("param c = -2 network n = onnx(\"n\") input x = npy(\"x\") "
                      "verify v: forall z in linf(x, 1): c * y[0] >= c")
    resolved = resolve(spec)
    again = resolve(parse_text(format_spec(resolved)))
    assert again == resolved
