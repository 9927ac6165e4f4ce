"""``attack`` properties: lowering a spec's attack to a runtime attack, running it, replaying
every claimed success on the ONNX file(s), and writing images and a JSON report.

The decoder declared for the network picks the encoding (``multilabel`` -> :class:`MultiLabel`,
``argmax`` -> :class:`OneHot`, ``topk(k)`` -> :class:`TopK`, ``ecoc`` -> :class:`Ecoc`). The
input may hold one image (the network's input shape) or a batch (a leading axis). ``flip k
labels`` targets, per image, the k labels closest to the threshold (multilabel), or under
``topk(k)`` swaps the k/2 weakest present labels for the k/2 strongest absent ones (a top-k
target always names k labels, so k is even). A target equal to an image's current label set
is refused. torch is imported only when an attack runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustc.compiler.spec_lower import (
    Network,
    SpecContext,
    input_box,
    logit_threshold,
    spec_number,
)
from robustc.files import check_output_dir, write_json, write_with
from robustc.runtime.images import save_png
from robustc.specs import ast as A
from robustc.specs.checker import resolve_path


@dataclass
class AttackProblem:
    """A lowered attack: inputs ``x0`` ``(B, *input_shape)``, targets ``(B, L)``, box, and
    the width of the input's domain (``value_range``: PSNR's peak and SSIM's constants
    read it; a ``within`` set narrows the box, not the images' range)."""

    name: str
    network: Network
    decoder: A.Node
    codebook: np.ndarray | None
    x0: np.ndarray
    target: np.ndarray
    source: np.ndarray
    untargeted: bool
    method: str
    options: dict
    lower: np.ndarray
    upper: np.ndarray
    labels: list[str] | None = None
    value_range: float = 1.0


@dataclass
class AttackReport:
    """The outcome of one attack property: the replayed verdict per image and the metrics."""

    problem: AttackProblem
    x_adv: np.ndarray
    decoded: np.ndarray          # replayed on onnxruntime, (B, L)
    success: np.ndarray          # replayed success, (B,)
    claimed: np.ndarray          # the attack's own claim on the torch module, (B,)
    metrics: dict = field(default_factory=dict)


def lower_attack(ctx: SpecContext, prop: A.AttackProperty) -> AttackProblem:
    """Lower ``prop``; raises a positioned SpecError for what attacks cannot do."""
    net = ctx.network(prop.network, prop)
    decoder, labels = ctx.decoder(net.name)
    codebook = None
    if isinstance(decoder, A.EcocDecoder):
        codebook = np.load(resolve_path(ctx.spec, decoder.codebook)).astype(np.float32)
    x0 = _inputs(ctx, prop, net)
    lower, upper = _box(ctx, prop, net, x0)
    options = {o.name: o.value.value if isinstance(o.value, A.Str) else spec_number(o.value)
               for o in prop.method.options}
    if prop.method.kind in ("jma", "mlcw") and prop.norm != "l2":
        raise ctx.fail(prop, f"{prop.method.kind} minimises the l2 norm; write 'norm l2'")
    if prop.method.kind == "pgd" and prop.norm not in ("l2", "linf"):
        raise ctx.fail(prop, "pgd runs in an l2 or linf ball")
    problem = AttackProblem(prop.name, net, decoder, codebook, x0, np.zeros(0), np.zeros(0),
                            isinstance(prop.goal, A.Untargeted), prop.method.kind, options,
                            lower, upper, labels)
    lo, hi = ctx.domain(prop.input)
    problem.value_range = hi - lo
    problem.source, logits = decode_onnx(problem, x0)
    problem.target = _targets(ctx, prop, problem, logits)
    if not problem.untargeted:
        same = np.flatnonzero((problem.target == problem.source).all(axis=1))
        if len(same):
            names = problem.labels or [str(i) for i in range(problem.source.shape[1])]
            which = f"image {int(same[0])}'s" if len(problem.source) > 1 else "the input's"
            raise ctx.fail(prop.goal, f"the target equals {which} current label set "
                                      f"{_names(problem.source[same[0]], names)}: nothing to "
                                      "attack (use 'untargeted' to leave the label set)")
    return problem


def _inputs(ctx: SpecContext, prop: A.AttackProperty, net: Network) -> np.ndarray:
    raw = ctx.raw_input(prop.input, prop)
    shape = tuple(net.graph.input.shape)
    size = int(np.prod(shape))
    if raw.size == 0 or raw.size % size:
        raise ctx.fail(prop, f"input '{prop.input}' has {raw.size} values, not a multiple of "
                             f"network '{net.name}''s {list(shape)}")
    return raw.reshape((raw.size // size,) + shape).astype(np.float32)


#: How far an input value may lie outside its domain ``in [lo, hi]`` (float32 rounding of
#: stored images) before the attack refuses it.
DOMAIN_TOL = 1e-6


def _box(ctx, prop, net, x0) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = ctx.domain(prop.input)
    outside = (x0 < lo - DOMAIN_TOL) | (x0 > hi + DOMAIN_TOL)
    if outside.any():  # the attack would start from a clipped copy: another image
        image = int(np.flatnonzero(outside.reshape(len(x0), -1).any(axis=1))[0])
        which = f"image {image} of " if len(x0) > 1 else ""
        raise ctx.fail(prop, f"{which}input '{prop.input}' has values in "
                             f"[{float(x0.min()):.6g}, {float(x0.max()):.6g}], outside its "
                             f"domain [{lo:g}, {hi:g}] ({int(outside.sum())} value(s)); "
                             "declare the domain with 'in [lo, hi]'")
    lower, upper = np.full_like(x0, lo), np.full_like(x0, hi)
    if prop.within is not None:
        if len(x0) != 1:
            raise ctx.fail(prop.within, "'within' needs a single input image")
        box, _ = input_box(ctx, prop.within, net.graph)
        lower = np.maximum(lower, box.lower.reshape(x0.shape))
        upper = np.minimum(upper, box.upper.reshape(x0.shape))
    return lower.astype(np.float32), upper.astype(np.float32)


def _targets(ctx, prop, problem: AttackProblem, logits: np.ndarray) -> np.ndarray:
    goal, source = prop.goal, problem.source
    n_labels = source.shape[1]
    if isinstance(goal, A.Untargeted):
        return source.copy()
    if isinstance(goal, A.FlipLabels) and isinstance(problem.decoder, A.TopKDecoder):
        return _flip_top_k(ctx, goal, problem, logits)
    if isinstance(goal, A.FlipLabels):
        if not isinstance(problem.decoder, A.MultiLabelDecoder):
            raise ctx.fail(goal, "'flip k labels' needs a multilabel or topk decoder")
        threshold = logit_threshold(problem.decoder)
        closest = np.argsort(np.abs(logits - threshold), axis=1, kind="stable")
        target = source.copy()
        rows = np.arange(len(target))[:, None]
        k = int(spec_number(goal.count))
        target[rows, closest[:, :k]] ^= True
        return target
    if isinstance(goal, A.TargetLabels):
        vector = np.zeros(n_labels, bool)
        for item in goal.labels:
            vector[_label(ctx, problem, item)] = True
    else:
        vector = np.array([spec_number(v) for v in goal.vector.items]) != 0
        if vector.size != n_labels:
            raise ctx.fail(goal, f"target vector has {vector.size} entries for {n_labels} labels")
    if isinstance(problem.decoder, A.TopKDecoder):
        k = _top_k(problem.decoder)
        if vector.sum() != k:
            raise ctx.fail(goal, f"a top-{k} target names exactly {k} labels, this one "
                                 f"{int(vector.sum())}")
    elif not isinstance(problem.decoder, A.MultiLabelDecoder) and vector.sum() != 1:
        raise ctx.fail(goal, "an argmax or ECOC target names exactly one class")
    return np.repeat(vector[None], len(source), axis=0)


def _top_k(decoder: A.TopKDecoder) -> int:
    return int(spec_number(decoder.k))


def _flip_top_k(ctx, goal: A.FlipLabels, problem: AttackProblem,
                logits: np.ndarray) -> np.ndarray:
    """``flip m labels`` under top-k decoding: a target keeps k labels, so m is even; the
    m/2 weakest present labels leave and the m/2 strongest absent ones enter (the nearest
    top-k set with m changed entries)."""
    k, n_labels = _top_k(problem.decoder), problem.source.shape[1]
    m = int(spec_number(goal.count))
    most = 2 * min(k, n_labels - k)
    if m % 2 or not 2 <= m <= most:
        raise ctx.fail(goal, f"under top-{k} decoding a target keeps {k} of {n_labels} labels, "
                             f"so 'flip m labels' needs an even m from 2 to {most}, got {m}")
    target = problem.source.copy()
    for row, z in zip(target, logits, strict=True):
        present, absent = np.flatnonzero(row), np.flatnonzero(~row)
        row[present[np.argsort(z[present], kind="stable")[: m // 2]]] = False
        row[absent[np.argsort(-z[absent], kind="stable")[: m // 2]]] = True
    return target


def _label(ctx, problem, item) -> int:
    if isinstance(item, A.Str):
        if problem.labels is None or item.value not in problem.labels:
            raise ctx.fail(item, f"unknown label {item.value!r}")
        return problem.labels.index(item.value)
    return int(item.value)


def decode_onnx(problem: AttackProblem, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decoded label vectors ``(B, L)`` and logits ``(B, n)`` of ``x`` by onnxruntime."""
    from robustc.runtime.replay import run_onnx

    outs = [run_onnx(problem.network.paths, xi[None].astype(np.float32)) for xi in x]
    logits = np.stack([np.asarray(z, np.float64).reshape(-1) for _, z in outs])
    outputs = np.stack([np.asarray(o, np.float64).reshape(-1) for o, _ in outs])
    d = problem.decoder
    if isinstance(d, A.MultiLabelDecoder):
        return logits > logit_threshold(d), logits
    if isinstance(d, A.EcocDecoder):
        cls = np.argmax(outputs @ problem.codebook.T.astype(np.float64), axis=1)
        return np.eye(problem.codebook.shape[0], dtype=bool)[cls], logits
    if isinstance(d, A.TopKDecoder):
        top = np.argsort(-logits, axis=1, kind="stable")[:, : _top_k(d)]
        decoded = np.zeros(logits.shape, dtype=bool)
        np.put_along_axis(decoded, top, True, axis=1)
        return decoded, logits
    return np.eye(logits.shape[1], dtype=bool)[np.argmax(logits, axis=1)], logits


def make_encoding(problem: AttackProblem):
    """The runtime encoding of the problem's decoder."""
    from robustc.runtime.attacks import Ecoc, MultiLabel, OneHot, TopK

    n = int(np.prod(problem.network.graph.output.shape))
    if isinstance(problem.decoder, A.MultiLabelDecoder):
        return MultiLabel(n, logit_threshold(problem.decoder))
    if isinstance(problem.decoder, A.EcocDecoder):
        return Ecoc(problem.codebook)
    if isinstance(problem.decoder, A.TopKDecoder):
        return TopK(n, _top_k(problem.decoder))
    return OneHot(n)


def make_attack(problem: AttackProblem, norm: str = "l2"):
    """The attack object with the spec's options (integers where the field is one)."""
    from robustc.runtime.attacks import ATTACKS
    from robustc.runtime.attacks.jma import PRESETS

    cls = ATTACKS[problem.method]
    kwargs = {k: (int(v) if k in ("max_iter", "steps", "restarts", "binary_steps") else v)
              for k, v in problem.options.items()}
    if problem.method == "pgd":
        kwargs["norm"] = norm
    if problem.method == "jma":  # a preset's settings, then the options written beside it
        kwargs = {**PRESETS[kwargs.pop("preset", "search")], **kwargs}
    return cls(**kwargs)


def run_problem(problem: AttackProblem, attack, device: str | None = None,
                threads: int | None = None) -> AttackReport:
    """Run ``attack`` on ``problem`` with ``threads`` PyTorch threads (None: PyTorch's
    default); replay every image on onnxruntime before it counts."""
    import torch

    from robustc.runtime.attacks import Victim
    from robustc.runtime.attacks.metrics import summarize
    from robustc.runtime.torch_module import to_torch, torch_threads

    module = to_torch(problem.network.graph, device=device, logits=True)
    dev = next(iter(module.buffers())).device
    victim = Victim(module, make_encoding(problem), torch.tensor(problem.lower, device=dev),
                    torch.tensor(problem.upper, device=dev))
    with torch_threads(threads):
        result = attack.run(victim, torch.tensor(problem.x0), torch.tensor(problem.target),
                            problem.untargeted)
    x_adv = np.clip(result.x_adv.astype(np.float32), problem.lower, problem.upper)
    decoded, _ = decode_onnx(problem, x_adv)
    metrics = summarize(problem.x0, x_adv, decoded, problem.target, result.iterations,
                        result.seconds, problem.untargeted, problem.value_range,
                        result.updates)
    same = (decoded == problem.target).all(axis=1)
    success = ~same if problem.untargeted else same
    metrics["claimed_not_replayed"] = int((result.success & ~success).sum())
    return AttackReport(problem, x_adv, decoded, success, result.success, metrics)


def write_report(report: AttackReport, out_dir: str | Path) -> dict:
    """Write ``<name>_adv.npy``, one PNG per image and ``<name>.json`` (each all or nothing,
    :mod:`robustc.files`); returns the JSON. Per image, ``success`` is the verdict of the
    onnxruntime replay and ``claimed`` the attack's own claim on the PyTorch module. Raises
    ``OutputError`` on a write failure."""
    out = check_output_dir(out_dir)
    p = report.problem
    write_with(out / f"{p.name}_adv.npy", lambda tmp: np.save(tmp, report.x_adv))
    for i, image in enumerate(report.x_adv):
        save_png(image, out / f"{p.name}_{i}.png")
    names = p.labels or [str(i) for i in range(p.target.shape[1])]
    data = {"property": p.name, "network": p.network.name, "method": p.method,
            "options": p.options, "untargeted": p.untargeted, "replayed_on": "onnxruntime",
            "metrics": report.metrics,
            "images": [{"index": i, "success": bool(report.success[i]),
                        "claimed": bool(report.claimed[i]),
                        "source": _names(p.source[i], names),
                        "target": _names(p.target[i], names),
                        "decoded": _names(report.decoded[i], names)}
                       for i in range(len(p.x0))]}
    write_json(out / f"{p.name}.json", data)
    return data


def _names(bits: np.ndarray, names: list[str]) -> list[str]:
    return [names[i] for i in np.flatnonzero(bits)]


def summary_line(report: AttackReport, seconds: float) -> str:
    """One line for a person: how many images reached the goal on onnxruntime (and how many
    claimed successes the replay refused), the label change of a single image, ASR, MSE,
    iterations and time."""
    p, m = report.problem, report.metrics
    goal = "left their label vector" if p.untargeted else "reached the target"
    line = (f"{p.name}: {p.method} on {p.network.name}: {int(report.success.sum())} of "
            f"{len(p.x0)} image(s) {goal}, replayed on onnxruntime")
    if m.get("claimed_not_replayed"):
        line += f" ({m['claimed_not_replayed']} claimed success(es) failed the replay)"
    if len(p.x0) == 1:
        names = p.labels or [str(i) for i in range(p.target.shape[1])]
        line += f"; labels {_names(p.source[0], names)} -> {_names(report.decoded[0], names)}"
    return (f"{line}; ASR {m['asr']:.3f}, MSE {m['mse']:.4g}, {m['iterations_mean']:.1f} it, "
            f"{seconds:.1f} s")
