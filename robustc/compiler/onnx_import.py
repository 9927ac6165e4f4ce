"""ONNX import: an ``.onnx`` file to a verified IR :class:`~robustc.ir.Graph`.

One lowering function per ONNX op type, in the table :data:`LOWERINGS`. Each reads its
attributes through :class:`Attrs`, which raises for any attribute the function did not
consume (unless it is at its default), so no attribute is ever ignored silently. Nodes whose
inputs are all constants are folded with the ONNX reference evaluator; ``Shape`` of a tensor
is folded from its static shape. Every unsupported node is collected and reported in one
:class:`~robustc.errors.UnsupportedOperator` error.

Supported opsets: 7 to 21 (opset 8 is what the VNN-COMP ACAS Xu networks use).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from robustc.compiler.onnx_context import Attrs, Importer, Unsupported
from robustc.compiler.onnx_ops import LOWERINGS
from robustc.errors import IRError, ModelError, UnsupportedOperator
from robustc.files.limits import check_file_size
from robustc.ir import Activation, Graph, Identity, Input, OutputMap
from robustc.specs.netcheck import nan_initializers


def _read_model(path: str | os.PathLike):
    import onnx

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"network file not found: {os.path.abspath(path)}")
    try:
        model = onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...: all mean "corrupt"
        raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{path}: the ONNX model has an empty graph")
    return model


def _input_shapes(imp: Importer, input_shape) -> None:
    """Store the initializers (NaN in one is a ``ModelError``) and create IR inputs; a
    symbolic leading dimension becomes 1 (the batch), others fail."""
    from onnx import numpy_helper

    for init in imp.model.graph.initializer:
        try:
            imp.consts[init.name] = numpy_helper.to_array(init)
        except (KeyError, TypeError, ValueError) as exc:  # a bad type, shape or data size
            raise ModelError(f"{imp.path}: initializer {init.name!r} is corrupt "
                             f"({type(exc).__name__}: {exc})") from None
    bad = nan_initializers(imp.consts.items())
    if bad:
        raise ModelError(f"{imp.path}: NaN weights in initializer(s) {', '.join(bad)}: no "
                         f"verdict can be computed on them")
    graph_inputs = [i for i in imp.model.graph.input if i.name not in imp.consts]
    if not graph_inputs:
        raise ModelError(f"{imp.path}: the network has no non-constant input")
    for k, inp in enumerate(graph_inputs):
        dims = _static_dims(imp, inp, input_shape if k == 0 else None)
        name = imp.fresh(inp.name)
        imp.nodes[name] = Input(name, (), dims)
        imp.values[inp.name] = name


def _static_dims(imp: Importer, inp, override) -> tuple[int, ...]:
    ttype = inp.type.tensor_type
    if not ttype.HasField("shape"):
        if override is None:
            raise ModelError(f"{imp.path}: input {inp.name!r} has no shape; pass input_shape")
        return tuple(int(d) for d in override)
    dims = []
    for axis, d in enumerate(ttype.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif axis == 0:
            dims.append(1)  # the batch dimension: robustc verifies one input at a time
        elif override is None:
            label = d.dim_param or "?"
            raise ModelError(f"{imp.path}: input {inp.name!r} has a dynamic dimension "
                             f"{label!r} at axis {axis} that cannot be fixed; pass input_shape")
    if override is not None:
        if len(override) != len(ttype.shape.dim):
            raise ModelError(f"{imp.path}: input_shape {list(override)} has rank "
                             f"{len(override)}, input {inp.name!r} has rank {len(dims)}")
        return tuple(int(d) for d in override)
    return tuple(dims)


def _fold(imp: Importer, node) -> None:
    """Evaluate a node whose inputs are all constants (ONNX reference evaluator)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    feeds = {n: imp.consts[n] for n in node.input if n}
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype),
                                            v.shape) for n, v in feeds.items()]
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", imp.opset)])
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:
        raise Unsupported(f"constant folding failed: {type(exc).__name__}: {exc}") from None
    for name, value in zip([o for o in node.output if o], results, strict=True):
        imp.consts[name] = np.asarray(value)


#: Memory per byte of an ONNX file while it is read and imported (the protobuf, the
#: arrays, the IR), for the ``--memory`` pre-check (robustc.files.limits); measured: the
#: 2.0 MB mnist-net_256x6.onnx raised the peak RSS by 9.5 MB.
ONNX_READ_OVERHEAD = 5.0


def load_onnx(path: str | os.PathLike, *, input_shape=None, name: str | None = None) -> Graph:
    """Import an ONNX file into a verified IR graph.

    ``input_shape`` fixes the shape of the (first) input when the file leaves it dynamic.
    Raises ``ModelError`` (missing/corrupt file, bad opset, dynamic shapes, NaN or infinite
    weights, biases or constants) or
    ``UnsupportedOperator`` listing every node robustc cannot lower.
    """
    check_file_size(path, "ONNX network", ONNX_READ_OVERHEAD)
    model = _read_model(path)
    imp = Importer(model, os.fspath(path))
    _input_shapes(imp, input_shape)
    problems: list[tuple[str, str, str]] = []
    poisoned: set[str] = set()
    for node in model.graph.node:
        _import_node(imp, node, LOWERINGS, problems, poisoned)
    outputs = _outputs(imp, problems, poisoned)
    _hidden_output_maps(imp, problems, outputs)
    if problems:
        lines = "\n".join(f"  - {op} node {nm!r}: {detail}" for op, nm, detail in problems)
        raise UnsupportedOperator(f"{imp.path}: {len(problems)} unsupported node(s):\n{lines}",
                                  problems)
    graph_name = name or model.graph.name or os.path.splitext(os.path.basename(imp.path))[0]
    inputs = tuple(imp.values[i.name] for i in model.graph.input if i.name in imp.values
                   and i.name not in imp.consts)
    graph = Graph(tuple(imp.nodes.values()), inputs, outputs, graph_name)
    _refuse_non_finite_parameters(graph, imp.path)
    return graph.replace_nodes(graph.nodes).verify()


#: The array fields of IR nodes that hold a network's parameters.
PARAMETER_FIELDS = ("weight", "bias", "scale", "shift", "value")


def _refuse_non_finite_parameters(graph: Graph, path: str) -> None:
    """Raise ``ModelError`` naming every node whose weights, biases or constants hold NaN or
    an infinity (after lowering, so an infinite Clip bound, which becomes a ReLU, passes)."""
    bad = []
    for node in graph.nodes:
        for field in PARAMETER_FIELDS:
            value = getattr(node, field, None)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" \
                    and not np.isfinite(value).all():
                count = int((~np.isfinite(value)).sum())
                bad.append(f"{node.op} {node.name!r} {field} ({count} of {value.size})")
    if bad:
        raise ModelError(f"{path}: non-finite (NaN or infinite) parameters in "
                         f"{_listing(bad)}: no verdict can be computed on them")


def _listing(items: list[str], shown: int = 5) -> str:
    """The first ``shown`` items joined, and how many more there are."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _import_node(imp: Importer, node, table: dict[str, Callable], problems: list,
                 poisoned: set[str]) -> None:
    label = node.name or (node.output[0] if node.output else node.op_type)
    if node.domain not in ("", "ai.onnx"):
        problems.append((node.op_type, label, f"custom domain {node.domain!r}"))
        poisoned.update(node.output)
        return
    if any(i in poisoned for i in node.input):
        poisoned.update(node.output)
        if node.op_type not in table:
            problems.append((node.op_type, label, "operator not supported"))
        return
    undefined = [i for i in node.input if i and i not in imp.values and i not in imp.consts]
    if undefined:  # a malformed graph: no node, input or initializer makes these
        problems.append((node.op_type, label, f"input(s) {undefined} are not defined before "
                                              f"this node"))
        poisoned.update(node.output)
        return
    try:
        if all(imp.is_const(i) for i in node.input) and node.op_type not in ("Shape",):
            _fold(imp, node)
            return
        lower = table.get(node.op_type)
        if lower is None:
            raise Unsupported("operator not supported")
        attrs = Attrs(node)
        outs = lower(imp, node, attrs)
        leftover = attrs.unused()
        if leftover:
            raise Unsupported(f"attribute(s) {leftover} not supported")
        for onnx_name, ir_name in zip(node.output, outs, strict=False):
            if onnx_name and ir_name is not None:
                imp.values[onnx_name] = ir_name
    except (Unsupported, IRError) as exc:
        problems.append((node.op_type, label, str(exc)))
        poisoned.update(node.output)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        # A node whose attributes or tensors do not fit each other (a corrupt file): named
        # with the others, never a traceback. On a valid model it would be a robustc bug.
        problems.append((node.op_type, label, f"malformed: its attributes or tensors do not "
                                              f"fit ({type(exc).__name__}: {exc}); if the "
                                              f"model is valid, please report a robustc bug"))
        poisoned.update(node.output)


def _outputs(imp: Importer, problems: list, poisoned: set[str]) -> tuple[str, ...]:
    names = []
    for out in imp.model.graph.output:
        if out.name in poisoned:
            continue
        if out.name not in imp.values:
            problems.append(("Output", out.name, "the graph output is a constant"))
            continue
        names.append(imp.values[out.name])
    return tuple(names)


def _hidden_output_maps(imp: Importer, problems: list, outputs: tuple[str, ...]) -> None:
    """A Sigmoid or Tanh that feeds a hidden layer becomes a smooth :class:`Activation`
    (bounded by its relaxation; output maps stay for the property translation); a Softmax
    is supported only as an output activation. One that is also a graph output is refused:
    properties are checked on the tensor before a trailing map (see
    :func:`robustc.runtime.replay.logits_name`), which would not be the IR's output."""
    for name in reversed(list(imp.nodes)):  # consumers first: a chain of maps converts
        node = imp.nodes[name]
        for src in node.inputs:
            cur = imp.nodes[src]
            if not isinstance(cur, OutputMap) or isinstance(node, OutputMap):
                continue
            if cur.kind in ("sigmoid", "tanh"):
                imp.nodes[src] = Activation(cur.name, cur.inputs, cur.shape, kind=cur.kind,
                                            note=cur.note)
            elif not any(p[1] == cur.name for p in problems):
                problems.append((cur.kind.capitalize(), cur.name,
                                 "used as a hidden activation (a softmax is supported only "
                                 "as the output activation)"))
    for name in outputs:  # the replay strips every trailing Sigmoid/Tanh/Softmax/Identity
        cur = imp.nodes[name]
        while isinstance(cur, OutputMap | Identity):
            cur = imp.nodes[cur.inputs[0]]
        if isinstance(cur, Activation) and cur.kind in ("sigmoid", "tanh"):
            problems.append((cur.kind.capitalize(), cur.name,
                             "ends the graph (alone or before output activations) and also "
                             "feeds a hidden layer: not supported (properties read the "
                             "tensor before a trailing output activation)"))
