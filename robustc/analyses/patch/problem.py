"""``patch`` properties: lowering a spec's patch to
:func:`~robustc.analyses.patch.algorithms.solve_patch` (and
:func:`~robustc.analyses.patch.algorithms.aigent` for ``then adversarial(...)``), writing the
patched network as a new ONNX file, the table of changed weights and a JSON report.

The patched layer is mapped back to the ONNX file by value: the Gemm or MatMul node whose
weight initializer equals the IR layer's weight (as is or transposed) before patching. A
layer the standard passes changed (folded batch norm, merged layers) cannot be mapped and is
an error. Every patched ONNX file is run with onnxruntime on every given input, and every
adversarial input is replayed on the original file, before anything is reported; one that
does not satisfy the condition is a :class:`~robustc.errors.ReplayError`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustc.compiler.spec_lower import (
    ConditionLowering,
    Network,
    SpecContext,
)
from robustc.errors import IRError, ModelError, ReplayError
from robustc.files import check_output_dir, write_json, write_text, write_with
from robustc.ir import Graph
from robustc.ir.property import holds
from robustc.runtime.images import save_png
from robustc.specs import ast as A

ADVERSARIAL_OPTIONS = {"pixels", "delta", "relax"}
CHANGED = 1e-9  # smaller solver values are round-off, not changes (the ONNX file keeps them)


@dataclass
class PatchProblem:
    """A lowered patch property: the logit graph, the layer index, inputs and condition."""

    name: str
    network: Network
    graph: Graph
    k: int
    xs: list[np.ndarray]
    condition: object
    norm: str
    adversarial: dict | None
    domains: list[tuple[float, float]]


@dataclass
class PatchOutcome:
    """What one patch property produced (paths are None where nothing was written)."""

    problem: PatchProblem
    result: object
    onnx_path: Path | None = None
    adversarial: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """A patch was found and, when asked, an adversarial input for every input."""
        adv_ok = all(a["found"] for a in self.adversarial)
        return bool(self.result.found) and adv_ok


def _number(ctx: SpecContext, expr, where: A.Node) -> float:
    if isinstance(expr, A.Neg):
        return -_number(ctx, expr.operand, where)
    if not isinstance(expr, A.Number):
        raise ctx.fail(where, "expected a number")
    return float(expr.value)


def _adversarial_options(ctx: SpecContext, adv: A.AdversarialInput | None) -> dict | None:
    if adv is None:
        return None
    options = {o.name: o.value.value if isinstance(o.value, A.Str) else _number(ctx, o.value, o)
               for o in adv.options}
    unknown = sorted(set(options) - ADVERSARIAL_OPTIONS)
    if unknown:
        raise ctx.fail(adv, f"unknown adversarial option(s) {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(ADVERSARIAL_OPTIONS))})")
    return options


def lower_patch(ctx: SpecContext, prop: A.PatchProperty) -> PatchProblem:
    """Lower ``prop``; raises a positioned SpecError for a bad layer, input or condition."""
    from robustc.backends.patch.encode import layer_node

    net = ctx.network(prop.network, prop)
    if len(net.paths) != 1:
        raise ctx.fail(prop, f"network '{net.name}' is a composition: patch one ONNX network")
    xs = [ctx.input_for(name, net.graph, prop) for name in prop.inputs]
    lowering = ConditionLowering(ctx, net, xs[0])
    condition = lowering.lower(prop.condition)
    k = int(_number(ctx, prop.layer, prop.layer))
    try:
        layer_node(lowering.logit_graph, k)
    except IRError as exc:
        raise ctx.fail(prop.layer, str(exc)) from None
    return PatchProblem(prop.name, net, lowering.logit_graph, k, xs, condition, prop.norm,
                        _adversarial_options(ctx, prop.adversarial),
                        [ctx.domain(name) for name in prop.inputs])


# -- the ONNX file --------------------------------------------------------------------

def _initializer_map(model) -> dict:
    return {init.name: init for init in model.graph.initializer}


def _node_weight(node, inits: dict) -> tuple[str, np.ndarray, bool] | None:
    """``(initializer name, IR-layout weight, transposed)`` of a Gemm/MatMul node, or None."""
    from onnx import numpy_helper

    if node.op_type not in ("Gemm", "MatMul") or node.input[1] not in inits:
        return None
    raw = numpy_helper.to_array(inits[node.input[1]])
    attrs = {a.name: a for a in node.attribute}
    if node.op_type == "Gemm" and ("transA" in attrs and attrs["transA"].i):
        return None
    trans_b = node.op_type == "Gemm" and "transB" in attrs and bool(attrs["transB"].i)
    return node.input[1], (raw if trans_b else raw.T), not trans_b


def find_layer(model, weight: np.ndarray) -> tuple[object, str, bool]:
    """The ONNX node, weight initializer name and layout of the layer with ``weight``.

    Raises ``ModelError`` when no Gemm/MatMul node or more than one has this weight.
    """
    inits = _initializer_map(model)
    found = []
    for node in model.graph.node:
        entry = _node_weight(node, inits)
        if entry is not None and entry[1].shape == weight.shape and \
                np.allclose(entry[1], weight, rtol=1e-6, atol=1e-7):
            found.append((node, entry[0], entry[2]))
    if len(found) != 1:
        why = "no" if not found else f"{len(found)}"
        raise ModelError(f"cannot map the patched layer back to the ONNX file: {why} Gemm/"
                         f"MatMul node(s) with its weights {list(weight.shape)} (a layer "
                         "changed by the import passes cannot be written back)")
    return found[0]


def _set_initializer(inits: dict, name: str, values: np.ndarray) -> None:
    from onnx import numpy_helper

    old = numpy_helper.to_array(inits[name])
    inits[name].CopyFrom(numpy_helper.from_array(values.astype(old.dtype).reshape(old.shape),
                                                 name))


def write_patched_onnx(path: str, weight: np.ndarray, result, out_path: Path) -> Path:
    """Copy the ONNX file at ``path`` with the patch applied to the layer whose weight is
    ``weight`` (IR layout, before patching); returns ``out_path``. Raises ``ModelError``."""
    import onnx

    model = onnx.load(path)
    node, name, transposed = find_layer(model, weight)
    inits = _initializer_map(model)
    new = np.asarray(weight, np.float64) + result.dw
    _set_initializer(inits, name, new.T if transposed else new)
    if np.any(result.db != 0):
        if node.op_type != "Gemm" or len(node.input) < 3 or node.input[2] not in inits:
            raise ModelError(f"the patched layer's ONNX node {node.name!r} has no bias "
                             "initializer to write the bias change to")
        old = onnx.numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
        _set_initializer(inits, node.input[2], old.reshape(-1) + result.db)
    check_output_dir(out_path.parent)
    write_with(out_path, lambda tmp: onnx.save(model, str(tmp)))
    return out_path


def check_onnx(path: str, xs: list[np.ndarray], condition) -> list[np.ndarray]:
    """The onnxruntime logits of every input; raises ``ReplayError`` unless each one
    satisfies ``condition``."""
    from robustc.runtime.replay import run_onnx

    outs = []
    for i, x in enumerate(xs):
        _, z = run_onnx((path,), np.asarray(x, np.float32))
        z = np.asarray(z, np.float64).reshape(1, -1)
        if not holds(condition, z)[0]:
            raise ReplayError(f"{path}: onnxruntime says input {i} does not satisfy the "
                              f"condition (logits {np.round(z[0], 4).tolist()})")
        outs.append(z[0])
    return outs


# -- running and reporting -----------------------------------------------------------

def change_rows(weight: np.ndarray, bias: np.ndarray | None, result) -> list[dict]:
    """One row per changed weight (column ``bias`` for a bias): row, column, old, new,
    delta; changes below ``CHANGED`` in absolute value are left out."""
    rows = []
    for r, c in zip(*np.nonzero(np.abs(result.dw) > CHANGED), strict=True):
        old = float(weight[r, c])
        rows.append({"row": int(r), "column": int(c), "old": old,
                     "new": old + float(result.dw[r, c]), "delta": float(result.dw[r, c])})
    for r in np.flatnonzero(np.abs(result.db) > CHANGED):
        old = 0.0 if bias is None else float(np.ravel(bias)[r])
        rows.append({"row": int(r), "column": "bias", "old": old,
                     "new": old + float(result.db[r]), "delta": float(result.db[r])})
    return rows


def _write_table(rows: list[dict], path: Path) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=["row", "column", "old", "new", "delta"])
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def _image(x: np.ndarray) -> np.ndarray:
    """A flat input seen as one square grey image where it can be (else one row)."""
    if x.ndim >= 3:
        return x.reshape(x.shape[-3:]) if x.ndim > 3 else x
    side = math.isqrt(x.size)
    return x.reshape(1, side, side) if side * side == x.size else x.reshape(1, 1, x.size)


def run_adversarial(problem: PatchProblem, time_limit: float) -> list[dict]:
    """AIGENT on every input; each adversarial input is replayed on the original ONNX file
    (a claimed one that fails the condition there raises ``ReplayError``)."""
    from robustc.analyses.patch.algorithms import aigent

    opts, found = problem.adversarial, []
    pixels = None if "pixels" not in opts else int(opts["pixels"])
    for i, (x, domain) in enumerate(zip(problem.xs, problem.domains, strict=True)):
        res = aigent(problem.graph, x, problem.condition, max_delta=opts.get("delta", 0.5),
                     pixels=pixels, domain=domain, norm=problem.norm, time_limit=time_limit,
                     relax=opts.get("relax", "marks"))
        entry = {"index": i, "found": res.x_adv is not None, "status": res.status,
                 "time_s": res.time_s, "x_adv": res.x_adv}
        if res.x_adv is not None:
            x32 = np.clip(res.x_adv, *domain).astype(np.float32)
            check_onnx(problem.network.paths[0], [x32], problem.condition)
            entry.update(x_adv=x32, pixels=int(np.count_nonzero(x32 != x.astype(np.float32))),
                         linf=float(np.abs(x32 - x).max()))
        found.append(entry)
    return found


def run_problem(problem: PatchProblem, out_dir: Path, time_limit: float) -> PatchOutcome:
    """Solve the patch, write and check the patched ONNX file, then (when asked) AIGENT."""
    from robustc.analyses.patch.algorithms import solve_patch
    from robustc.backends.patch.encode import layer_node

    result = solve_patch(problem.graph, problem.k, problem.xs, problem.condition,
                         norm=problem.norm, time_limit=time_limit)
    outcome = PatchOutcome(problem, result)
    if result.found:
        weight = np.asarray(layer_node(problem.graph, problem.k).weight, np.float64)
        path = write_patched_onnx(problem.network.paths[0], weight, result,
                                  out_dir / f"{problem.name}.onnx")
        check_onnx(str(path), problem.xs, problem.condition)
        outcome.onnx_path = path
    if problem.adversarial is not None:
        outcome.adversarial = run_adversarial(problem, time_limit)
    return outcome


def write_report(outcome: PatchOutcome, out_dir: Path) -> dict:
    """Write ``<name>_changes.csv``, ``<name>_adv.npy`` + PNGs (when found) and
    ``<name>.json``; returns the JSON data."""
    from robustc.backends.patch.encode import layer_node

    p, res = outcome.problem, outcome.result
    node = layer_node(p.graph, p.k)
    rows = change_rows(np.asarray(node.weight), node.bias, res) if res.found else []
    data = {"property": p.name, "network": p.network.name, "layer": p.k, "node": res.layer,
            "norm": p.norm, "status": res.status, "found": res.found,
            "objective": res.objective, "optimal": res.optimal, "time_s": res.time_s,
            "onnx": None if outcome.onnx_path is None else str(outcome.onnx_path),
            "replayed": outcome.onnx_path is not None, "changed": len(rows), "changes": rows}
    if res.found:
        data["table"] = str(out_dir / f"{p.name}_changes.csv")
        _write_table(rows, out_dir / f"{p.name}_changes.csv")
    if p.adversarial is not None:
        data["adversarial"] = _write_adversarial(outcome, out_dir)
    write_json(out_dir / f"{p.name}.json", data)
    return data


def _write_adversarial(outcome: PatchOutcome, out_dir: Path) -> dict:
    p = outcome.problem
    entries = [{k: v for k, v in a.items() if k != "x_adv"} for a in outcome.adversarial]
    found = [a for a in outcome.adversarial if a["found"]]
    data = {"options": {"relax": "marks", **p.adversarial}, "inputs": entries}
    if found:
        stack = np.stack([a["x_adv"] for a in found])
        write_with(out_dir / f"{p.name}_adv.npy", lambda tmp: np.save(tmp, stack))
        data["npy"] = str(out_dir / f"{p.name}_adv.npy")
        for a in found:
            png_path = out_dir / f"{p.name}_adv_{a['index']}.png"
            save_png(_image(a["x_adv"]), png_path)
            a_entry = entries[a["index"]]
            a_entry["png"] = str(png_path)
    return data





