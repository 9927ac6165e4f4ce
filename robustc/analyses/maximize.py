"""Maximal robust layered neighbourhoods: the verifier + optimiser + CEGIS loop.

A layered neighbourhood of an image ``x0`` perturbs the pixels of ring ``d`` around the
perturbed object by at most ``eps_d`` (Mour & Drachsler-Cohen, "Maximal Robust
Layer-Neighborhoods", Apr. 2023, section 2; May 2023, section 2). :func:`maximize` searches
for budgets ``eps`` maximising the weighted size ``w . eps`` while the condition (say
``present("7")``) holds on the whole neighbourhood. Three methods:

* ``naive`` (May 2023, section 3, the baseline): layer 0 first, a binary search of each
  ``eps_d`` over the multiples of ``precision`` in ``[0, max_eps]``, the earlier layers fixed
  at their result and the later ones at 0; one verifier call per step, about
  ``log2(max_eps / precision)`` calls per layer. Because robust sets are nested (a smaller
  box of a robust box is robust), it returns the lexicographic maximum on that lattice.
* ``oracle`` with ``fixed`` or ``sensitivity`` cutting weights (May 2023, section 3, "The
  optimizer" and "The CEGIS component"). From the last proved vector ``eps*``:

  1. *weakest points*: inputs of the neighbourhood ``I(eps*)`` that minimise the margin of
     the condition (maximise the violation objective), found by the verifier's falsifier
     (PGD from several starts; optionally seeded by a MILP, see :func:`weakest_points`);
  2. *robustness level* ``RL(eps) = min margin over I(eps)``, known at ``eps*`` from the
     weakest points; its gradient comes from their position in the box (envelope theorem):
     a weakest point ``x*`` sits on the faces of the box it is pushed against, so
     ``d RL / d eps_d = sum over pixels p of layer d of  dm/dx_p(x*) * sign(x*_p - x0_p)``,
     where a pixel clipped by the input domain (its face does not move with ``eps_d``) or
     not on a face counts 0; averaged over the weakest points, it is <= 0 in practice;
  3. *optimiser step*: the ascent direction of ``w . eps + lambda * RL(eps)`` (both terms
     normalised to a maximum of 1, ``lambda = 1/2``), clipped at 0, so the layers the
     weakest points are most sensitive to grow at half the rate of the others. The step
     length is the smaller of an adaptive trust step (x1.5 after a full step was proved,
     /2 after a proved cut or a failure down to ``eps*``) and the first-order step that
     spends 80 % of the margin: ``0.8 RL(eps*) / |grad RL . direction|``;
  4. *verifier*: the candidate is checked; *robust* makes it the new ``eps*``;
  5. *CEGIS* on anything else (``not_robust``, ``unknown``, a time limit: only ``robust``
     counts): ``eps' = eps (.) cw + eps* (.) (1 - cw)`` and back to 4, until robust or
     until no layer differs from ``eps*`` by more than ``precision``. Fixed weights
     ``cw = (r/(r+1), (r-1)/(r+1), ..., 0)`` keep most of the growth near the object and
     none in the outermost ring; sensitivity weights come from the vanilla gradient
     (Simonyan et al.) ``|dm/dx|`` at ``x0`` averaged per layer and mapped linearly onto
     the same range, the most sensitive layer to 0 (cut back fully) and the least to
     ``r/(r+1)``: the May 2023 formula (``sw_i < sw_j`` iff layer i is more sensitive).

  The loop stops when no layer can grow by more than ``precision`` (or the trust step
  falls below it), after ``iterations`` verifier calls, after ``max_failures`` refused
  optimiser steps (the CEGIS cuts of the last one still run: a refusal is usually an
  ``unknown`` that costs the whole call time limit, the dominant cost of the loop), or
  when ``timeout`` is spent.

Verifier queries per oracle iteration: one :func:`robustc.verify.verify` call on the
candidate (PGD, bounds, one MILP per violation case; early-stopping decision; at most
``1 + max_cuts`` with the cuts) plus the weakest-point search on a newly proved vector. By
default that search is the falsifier's projected gradient descent on the margin from
``x0`` and ``weakest - 1`` random corners of the box: no solver query (its time counts as
verifier time). With ``weakest_milp`` it first solves one MILP in optimisation mode per
*selected* margin atom under ``weakest_time_limit`` (a limit leaves the incumbent, which is
only guidance, never a proof), counted as a verifier call, and the descents start from its
maximiser and perturbed copies of it. The papers worry that MaRVeL's scheme, one query per
competing class, becomes ``|C|^2`` queries per iteration for multi-label classifiers.
robustc avoids it: in the threshold form (``present(t)``: ``y_t > threshold``) the violation
objective is one linear atom, so one MILP (or one batched descent) gives the weakest point;
in the top-k form (``y_t`` among the k largest) and for conjunctions, the descent minimises
the condition's margin (for top-k, the k-th largest atom margin) directly, and the MILP
variant ranks the atoms by their interval lower bound over the box and solves only the
``weakest_atoms`` most threatened ones (default 1).

The returned vector is re-verified by the complete verifier at the end; if that does not
prove it, the last vector that was proved before it is returned (the all-zero vector, the
unperturbed input, is proved first, so one always exists).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from robustc.errors import Error
from robustc.files import json_text
from robustc.ir import Graph, logits
from robustc.ir.property import AtLeast, Box, Condition, Linear, Property, dnf, negate

NAIVE, FIXED, SENSITIVITY = "naive", "fixed", "sensitivity"
METHODS = (NAIVE, FIXED, SENSITIVITY)
RL_WEIGHT = 0.5          # lambda: the robustness-level term against the size term
MARGIN_SPEND = 0.8       # a first-order step spends this share of the weakest margin
STEP_GROW, STEP_SHRINK = 1.5, 0.5


@dataclass(frozen=True, eq=False)
class LayeredProblem:
    """A maximize property ready to search: network, image, rings, condition, weights.

    ``x0`` has the network's input shape; ``rings`` is the (H, W) ring index of every
    pixel (-1 outside every layer); ``chw`` is the (C, H, W) view of ``x0`` that the rings
    index; ``condition`` is over the logits. Raises ``Error`` on inconsistent shapes.
    """

    name: str
    graph: Graph
    onnx_paths: tuple[str, ...]
    x0: np.ndarray
    rings: np.ndarray
    condition: Condition
    weights: np.ndarray
    chw: tuple[int, int, int]
    domain: tuple[float, float] = (0.0, 1.0)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if tuple(self.rings.shape) != tuple(self.chw[1:]):
            raise Error(f"rings of shape {list(self.rings.shape)} do not match the image "
                        f"{list(self.chw)}")
        if int(np.prod(self.chw)) != self.x0.size:
            raise Error(f"image {list(self.chw)} does not match the input {list(self.x0.shape)}")
        if int(self.rings.max(initial=-1)) >= len(self.weights):
            raise Error(f"{len(self.weights)} weights for rings up to {self.rings.max()}")

    @property
    def layers(self) -> int:
        """The number of layers (rings 0..r; one weight each; a ring may be empty)."""
        return len(self.weights)

    def budget(self, eps: np.ndarray) -> np.ndarray:
        """Per-value budgets of the input (``x0``'s shape) for per-layer ``eps``."""
        eps = np.asarray(eps, dtype=np.float64)
        pixel = np.where(self.rings >= 0, eps[np.clip(self.rings, 0, None)], 0.0)
        return np.broadcast_to(pixel, self.chw).reshape(self.x0.shape)

    def layer_map(self) -> np.ndarray:
        """The layer of every input value (``x0``'s shape; -1 where never perturbed)."""
        return np.broadcast_to(self.rings, self.chw).reshape(self.x0.shape)

    def box(self, eps: np.ndarray) -> Box:
        """The neighbourhood's input box, clipped to the input domain."""
        b = self.budget(eps)
        lo, hi = self.domain
        return Box(np.maximum(self.x0 - b, lo), np.minimum(self.x0 + b, hi))

    def size(self, eps: np.ndarray) -> float:
        """The weighted size ``w . eps``."""
        return float(np.dot(self.weights, eps))

    def caps(self, max_eps: float) -> np.ndarray:
        """Per layer, the budget beyond which the box no longer grows (at most ``max_eps``)."""
        lo, hi = self.domain
        room = np.maximum(self.x0 - lo, hi - self.x0).reshape(self.chw).max(axis=0)
        caps = np.array([room[self.rings == d].max(initial=0.0) for d in range(self.layers)])
        return np.minimum(caps, max_eps)

    def verify_problem(self, eps: np.ndarray):
        """The :class:`robustc.ir.problem.Problem` "the condition holds on I(eps)"."""
        from robustc.verify import Problem

        prop = Property(self.name, (self.box(eps),), self.condition,
                        {**self.meta, "center": self.x0})
        return Problem(self.name, self.graph, self.onnx_paths, prop,
                       self.meta.get("network", ""))


@dataclass(frozen=True)
class MaximizeOptions:
    """How to search (see the module docstring).

    ``iterations`` caps the oracle loop's verifier calls (candidates and cuts);
    ``max_failures`` the oracle loop's optimiser steps the verifier may refuse (each
    refusal costs up to ``call_time_limit``; the CEGIS cuts of the last one still run, then
    the search stops; None: no cap); ``max_calls`` caps all verifier calls of any
    method; ``timeout`` the whole search; ``call_time_limit`` each verifier call (an
    unknown counts as not robust). ``effort`` caps the optimiser's step so that the next
    proof is predicted to take at most that share of ``call_time_limit`` (None: no cap; see
    :func:`_effort_step`). ``weakest_milp`` adds the MILP maximiser of the
    violation objective to the weakest points (off by default: see :func:`weakest_points`).
    """

    method: str = FIXED
    precision: float = 1e-3
    max_eps: float = 1.0
    iterations: int = 50
    step: float = 0.02
    timeout: float | None = None
    call_time_limit: float = 5.0
    bounds: str = "symbolic"
    attack_steps: int = 20
    attack_restarts: int = 4
    max_cuts: int = 3
    max_failures: int | None = 2
    effort: float | None = 0.5
    weakest_milp: bool = False
    weakest_time_limit: float = 0.5
    weakest: int = 6
    weakest_atoms: int = 1
    max_calls: int | None = None
    solver: str = "highs"
    threads: int | None = 1
    attack: bool = True
    seed: int = 0
    progress: Callable[[str], None] | None = None


@dataclass
class MaximizeResult:
    """A certified layered neighbourhood and what it cost.

    ``eps`` was proved robust by the complete verifier (``certified``); ``verifier_calls``
    counts every verifier query (decisions and weakest-point MILPs), ``verifier_s`` their
    time, ``other_s`` the rest (optimiser, gradients, bookkeeping).
    """

    name: str
    method: str
    eps: np.ndarray
    weights: np.ndarray
    weighted_size: float
    certified: bool
    verifier_calls: int
    verifier_s: float
    other_s: float
    stop_reason: str
    cutting_weights: np.ndarray | None = None
    history: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """A JSON-ready dict (lists and numbers only)."""
        return {"name": self.name, "method": self.method, "eps": self.eps.tolist(),
                "weights": self.weights.tolist(), "weighted_size": self.weighted_size,
                "certified": self.certified, "verifier_calls": self.verifier_calls,
                "verifier_s": round(self.verifier_s, 4), "other_s": round(self.other_s, 4),
                "stop_reason": self.stop_reason,
                "cutting_weights": None if self.cutting_weights is None
                else self.cutting_weights.tolist(),
                "history": self.history, "final_verification": self.final}

    def dumps(self) -> str:
        """The strict JSON text of :meth:`to_json` (:func:`robustc.files.json_text`)."""
        return json_text(self.to_json(), indent=1)


class _Budget(Error):
    """Raised inside a search when its call or time budget is spent."""


class Oracle:
    """The verifier as the search sees it: counts calls and the time spent in them."""

    def __init__(self, problem: LayeredProblem, options: MaximizeOptions):
        self.problem, self.options = problem, options
        self.calls, self.verifier_s = 0, 0.0
        self.start = time.perf_counter()
        self.history: list[dict] = []
        self.last = None  # the last verify Result
        self._module = None

    def _charge(self) -> None:
        o = self.options
        if o.max_calls is not None and self.calls >= o.max_calls:
            raise _Budget("verifier call budget spent")
        if o.timeout is not None and time.perf_counter() - self.start >= o.timeout:
            raise _Budget("time budget spent")

    def _time_limit(self, limit: float) -> float:
        if self.options.timeout is None:
            return limit
        left = self.options.timeout - (time.perf_counter() - self.start)
        return max(0.05, min(limit, left))

    def check(self, eps: np.ndarray, limit: float | None = None, bounds: str | None = None):
        """Verify ``I(eps)``; returns the :class:`robustc.verify.Result` (raises _Budget)."""
        from robustc.verify import VerifyOptions, verify

        self._charge()
        o = self.options
        vo = VerifyOptions(solver=o.solver, time_limit=self._time_limit(
            limit or o.call_time_limit), threads=o.threads, seed=o.seed, attack=o.attack,
            attack_steps=o.attack_steps, attack_restarts=o.attack_restarts,
            bounds=bounds or o.bounds)
        t = time.perf_counter()
        result = verify(self.problem.verify_problem(eps), vo)
        spent = time.perf_counter() - t
        self.last = result
        self.calls += 1
        self.verifier_s += spent
        self.history.append({"call": self.calls, "kind": "verify",
                             "eps": [round(float(e), 6) for e in eps],
                             "verdict": result.verdict, "time_s": round(spent, 4),
                             "size": self.problem.size(eps)})
        self.say(f"call {self.calls}: {result.verdict:<10} size {self.problem.size(eps):.4f} "
                 f"eps [{', '.join(f'{e:.4f}' for e in eps)}] ({spent:.2f} s)")
        return result

    def robust(self, eps: np.ndarray) -> bool:
        """Whether the verifier proves ``I(eps)`` robust (anything else counts as no)."""
        from robustc.verify import ROBUST

        return self.check(eps).verdict == ROBUST

    def weakest(self, eps: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Weakest points of ``I(eps)`` and their margins (see :func:`weakest_points`)."""
        self._charge()
        t = time.perf_counter()
        points, queries = weakest_points(self.problem, eps, self.options, self.module())
        spent = time.perf_counter() - t
        self.calls += queries
        self.verifier_s += spent
        self.history.append({"call": self.calls, "kind": "weakest", "queries": queries,
                             "time_s": round(spent, 4),
                             "margins": [round(m, 6) for _, m in points]})
        return points

    def module(self):
        """The PyTorch module of the logits (built once)."""
        if self._module is None:
            from robustc.runtime.torch_module import to_torch

            self._module = to_torch(self.problem.graph, device="cpu", logits=True)
        return self._module

    def say(self, message: str) -> None:
        if self.options.progress:
            self.options.progress(message)


# -- weakest points and gradients ------------------------------------------------------

def margin_atoms(condition: Condition) -> list[Linear]:
    """The linear margins whose minimum over a box decides the condition.

    Every violation case of the condition's DNF contributes the negation of its linear
    atoms (for a single-atom case: that atom's margin); a top-k case contributes its
    competitors (``y_t - y_j`` for every ``j``).
    """
    atoms = []
    for case in dnf(negate(condition)):
        for atom in case:
            if isinstance(atom, Linear):
                atoms.append(negate(atom))
            elif isinstance(atom, AtLeast):
                atoms.extend(negate(a) for a in atom.atoms)
    return atoms


def weakest_points(problem: LayeredProblem, eps: np.ndarray, options: MaximizeOptions,
                   module=None) -> tuple[list[tuple[np.ndarray, float]], int]:
    """Several inputs of ``I(eps)`` that (locally) minimise the condition's margin.

    By default they come from the verifier's falsifier alone: projected gradient descent on
    the margin from ``x0`` and from ``options.weakest - 1`` random corners of the box (no
    solver query). With ``options.weakest_milp`` the most threatened margin atoms (lowest
    interval lower bound over the box; ``options.weakest_atoms`` of them) are each first
    minimised by one MILP in optimisation mode under ``options.weakest_time_limit`` (the
    incumbent is kept at a limit), and the descents start at that maximiser and at copies
    of it with a random tenth of its free coordinates moved to the opposite face. On the
    example classifiers the two agree (on 12 boxes: weakest margins within 0.07 logits,
    ascent directions within 0.08 per layer) while the MILP costs about ten times the
    descents' time; hence the default. Returns ``(points with their margins, sorted by
    margin; the number of solver queries)``.
    """
    from robustc.backends import solver_module
    from robustc.backends.milp.encode import encode
    from robustc.backends.solve import SolveOptions
    from robustc.compiler.bounds import compute_bounds

    box = problem.box(eps)
    if not options.weakest_milp:
        return sorted(_descend(problem, box, [], options, module), key=lambda p: p[1]), 0
    graph, _ = logits(problem.graph)
    bounds = compute_bounds(graph, box.lower, box.upper, "interval")
    out = graph.output.name
    atoms = sorted(margin_atoms(problem.condition),
                   key=lambda a: _atom_lower(a, bounds.lower[out], bounds.upper[out]))
    starts, queries = [], 0
    for atom in atoms[: max(1, options.weakest_atoms)]:
        if box.perturbed == 0:
            break
        model = encode(graph, bounds.lower, bounds.upper, box, [], objective=atom)
        sol = solver_module(options.solver).solve(model, SolveOptions(
            time_limit=options.weakest_time_limit, threads=options.threads, seed=options.seed))
        queries += 1
        if sol.solution is not None:
            starts.append(model.input_values(sol.solution).reshape(box.lower.shape))
    starts = starts or [problem.x0.copy()]
    points = _descend(problem, box, starts, options, module)
    return sorted(points, key=lambda p: p[1]), queries


def _atom_lower(atom: Linear, lo: np.ndarray, hi: np.ndarray) -> float:
    pos, neg = np.maximum(atom.coeffs, 0), np.minimum(atom.coeffs, 0)
    return float(pos @ lo.ravel() + neg @ hi.ravel() + atom.const)


def _descend(problem: LayeredProblem, box: Box, starts: list[np.ndarray],
             options: MaximizeOptions, module, steps: int = 20) -> list[tuple[np.ndarray, float]]:
    """Polish the starting points and their flipped copies by PGD on the margin.

    Without starting points: ``x0`` and ``options.weakest - 1`` random corners of the box.
    """
    import torch

    from robustc.runtime.falsify import margin_torch

    rng = np.random.default_rng(options.seed)
    free = box.upper > box.lower
    batch = list(starts)
    if not free.any():  # a single point (eps = 0): nothing to descend
        steps, batch = 0, [box.lower.copy()]
    elif not starts:
        batch = [np.clip(problem.x0, box.lower, box.upper)]
        for _ in range(max(0, options.weakest - 1)):
            batch.append(np.where(rng.random(box.lower.shape) < 0.5, box.lower, box.upper))
    for i in range(max(0, options.weakest - len(batch)) if steps else 0):
        x = starts[i % len(starts)].copy()
        flip = free & (rng.random(x.shape) < 0.1)
        x[flip] = np.where(x[flip] > (box.lower[flip] + box.upper[flip]) / 2,
                           box.lower[flip], box.upper[flip])
        batch.append(x)
    lo = torch.as_tensor(box.lower, dtype=torch.float32)
    hi = torch.as_tensor(box.upper, dtype=torch.float32)
    x = torch.as_tensor(np.stack(batch), dtype=torch.float32)
    step = (hi - lo) / 10
    for _ in range(steps):
        x.requires_grad_(True)
        m = margin_torch(problem.condition, module(x).reshape(len(batch), -1))
        (grad,) = torch.autograd.grad(m.sum(), x)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x - step * grad.sign(), lo), hi)
    with torch.no_grad():
        m = margin_torch(problem.condition, module(x).reshape(len(batch), -1))
    pts = [(x[i].numpy().astype(np.float64), float(m[i])) for i in range(len(batch))]
    return _distinct(pts)


def _distinct(points: list[tuple[np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
    kept: list[tuple[np.ndarray, float]] = []
    for x, m in points:
        if all(np.max(np.abs(x - y)) > 1e-6 for y, _ in kept):
            kept.append((x, m))
    return kept


def margin_gradients(problem: LayeredProblem, points: np.ndarray, module) -> np.ndarray:
    """``d margin / d x`` at each point (shape ``(B,) + x0.shape``), via PyTorch."""
    import torch

    from robustc.runtime.falsify import margin_torch

    x = torch.as_tensor(np.asarray(points), dtype=torch.float32).requires_grad_(True)
    m = margin_torch(problem.condition, module(x).reshape(len(points), -1))
    (grad,) = torch.autograd.grad(m.sum(), x)
    return grad.numpy().astype(np.float64)


def rl_gradient(problem: LayeredProblem, eps: np.ndarray,
                points: list[tuple[np.ndarray, float]], module) -> np.ndarray:
    """``d RL / d eps_d`` estimated from the weakest points (module docstring, step 2)."""
    xs = np.stack([x for x, _ in points])
    grads = margin_gradients(problem, xs, module)
    box = problem.box(eps)
    budget = problem.budget(eps)
    lo_dom, hi_dom = problem.domain
    up = np.isclose(xs, box.upper) & (problem.x0 + budget < hi_dom) & (budget > 0)
    down = np.isclose(xs, box.lower) & (problem.x0 - budget > lo_dom) & (budget > 0)
    moves = grads * (up.astype(float) - down.astype(float))
    # A pixel with no budget yet: growing it lets the weakest point move against the
    # gradient, unless the domain stops it (one-sided derivative -|g|).
    closed = (budget == 0) & (problem.layer_map() >= 0)
    room = np.where(grads > 0, problem.x0 > lo_dom, problem.x0 < hi_dom)
    moves = np.where(closed, -np.abs(grads) * room, moves).mean(axis=0)
    per_pixel = moves.reshape(problem.chw).sum(axis=0)
    return np.array([per_pixel[problem.rings == d].sum() for d in range(problem.layers)])


def fixed_cutting_weights(layers: int) -> np.ndarray:
    """``(r/(r+1), (r-1)/(r+1), ..., 0)`` for ``r + 1`` layers (May 2023, section 3)."""
    r = layers - 1
    return np.array([(r - d) / (r + 1) for d in range(layers)])


def layer_sensitivity(problem: LayeredProblem, module) -> np.ndarray:
    """Vanilla-gradient sensitivity: mean ``|d margin / d x|`` at ``x0`` per layer."""
    grad = np.abs(margin_gradients(problem, problem.x0[None], module)[0])
    per_pixel = grad.reshape(problem.chw).mean(axis=0)
    return np.array([per_pixel[problem.rings == d].mean() if np.any(problem.rings == d)
                     else 0.0 for d in range(problem.layers)])


def sensitivity_cutting_weights(sensitivity: np.ndarray) -> np.ndarray:
    """Cutting weights from per-layer sensitivities: the most sensitive layer 0, the least
    ``r/(r+1)``, linear in between (fixed weights when all layers are equally sensitive)."""
    layers = len(sensitivity)
    top = (layers - 1) / layers
    span = float(sensitivity.max() - sensitivity.min())
    if span <= 0:
        return fixed_cutting_weights(layers)
    return top * (sensitivity.max() - sensitivity) / span


# -- the searches ----------------------------------------------------------------------

def maximize(problem: LayeredProblem, options: MaximizeOptions | None = None
             ) -> MaximizeResult:
    """Search a maximal robust layered neighbourhood of ``problem`` with ``options.method``.

    Returns a :class:`MaximizeResult` whose ``eps`` the complete verifier proved robust.
    Raises ``Error`` if the condition cannot be proved on the unperturbed input itself
    (there is then no robust neighbourhood to start from) or for an unknown method.
    """
    options = options or MaximizeOptions()
    if options.method not in METHODS:
        raise Error(f"unknown maximize method {options.method!r} (one of {', '.join(METHODS)})")
    start = time.perf_counter()
    oracle = Oracle(problem, replace(options, max_calls=None, timeout=None))
    zero = np.zeros(problem.layers)
    first = oracle.check(zero)
    if first.verdict != "robust":
        raise Error(f"{problem.name}: the condition is not proved on the unperturbed input "
                    f"({first.verdict}: {first.reason})")
    oracle.options = options
    proved = [zero]
    cutting = None
    try:
        if options.method == NAIVE:
            reason = _naive(problem, oracle, proved)
        else:
            cutting = _cutting_weights(problem, oracle)
            reason = _oracle_search(problem, oracle, proved, cutting)
    except _Budget as exc:
        reason = str(exc)
    eps, final = _certify(problem, oracle, proved)
    total = time.perf_counter() - start
    return MaximizeResult(problem.name, options.method, eps, problem.weights,
                          problem.size(eps), final.get("verdict") == "robust", oracle.calls,
                          oracle.verifier_s, total - oracle.verifier_s, reason, cutting,
                          oracle.history, final)


def _cutting_weights(problem: LayeredProblem, oracle: Oracle) -> np.ndarray:
    if oracle.options.method == FIXED:
        return fixed_cutting_weights(problem.layers)
    return sensitivity_cutting_weights(layer_sensitivity(problem, oracle.module()))


def _naive(problem: LayeredProblem, oracle: Oracle, proved: list[np.ndarray]) -> str:
    """Layer by layer, binary search over multiples of ``precision`` (module docstring)."""
    o = oracle.options
    caps = problem.caps(o.max_eps)
    eps = proved[-1].copy()
    for d in range(problem.layers):
        lo, hi = 0, int(np.floor(caps[d] / o.precision + 1e-9))
        if hi * o.precision < caps[d] - 1e-12:
            hi += 1  # the cap itself (a full-domain box) is the last candidate
        while lo < hi:
            mid = (lo + hi + 1) // 2
            trial = eps.copy()
            trial[d] = min(mid * o.precision, caps[d])
            if oracle.robust(trial):
                lo, eps = mid, trial
                proved.append(trial)
            else:
                hi = mid - 1
    return "every layer searched"


def _oracle_search(problem: LayeredProblem, oracle: Oracle, proved: list[np.ndarray],
                   cutting: np.ndarray) -> str:
    """The verifier + optimiser + CEGIS loop (module docstring, steps 1-5)."""
    o = oracle.options
    caps = problem.caps(o.max_eps)
    trust = o.step
    checks = failures = 0
    last = None
    effort = {id(proved[-1]): effort_seconds(oracle.last)}  # of each proved vector
    capped = False
    while checks < o.iterations:
        if o.max_failures is not None and failures >= o.max_failures:
            return "failure budget spent"
        best = proved[-1]
        if best is not last:  # new weakest points only for a newly proved vector
            points, last = oracle.weakest(best), best
            direction, reach = _ascent(problem, best, points, oracle.module())
        length = min(trust, reach)
        trial = np.minimum(best + length * direction, caps)
        if np.max(trial - best) <= o.precision:
            return "no layer can grow by more than the precision"
        accepted = False
        for cut in range(o.max_cuts + 1):
            checks += 1
            if oracle.robust(trial):
                proved.append(trial)
                effort[id(trial)] = effort_seconds(oracle.last)
                accepted = True
                # a full step grows the next one; after a cut the boundary is near
                moved = _reach(trial, best, direction)
                trust = moved * (STEP_GROW if cut == 0 else STEP_SHRINK)
                if o.effort is not None:
                    limit = _effort_step(effort[id(best)], effort[id(trial)], moved,
                                         o.effort * o.call_time_limit)
                    capped = limit < trust
                    trust = min(trust, limit)
                break
            if cut == 0:
                failures += 1  # a refused step; its cuts still run
            trial = cutting * trial + (1.0 - cutting) * best
            if np.max(trial - best) <= o.precision or checks >= o.iterations:
                break
        if not accepted:  # the last (unchecked) cut bounds the next step
            trust = _reach(trial, best, direction) * STEP_SHRINK
        if trust < o.precision:
            return ("the verifier's effort reached its share of the call time limit"
                    if capped else "the step fell below the precision")
    return "iteration budget spent"


def effort_seconds(result) -> float:
    """The verifier's effort on a proof: its time less the attack's (at least 10 ms)."""
    if result is None:
        return 0.01
    return max(0.01, float(result.time_s) - float(result.stats.get("attack_s", 0.0)))


def _effort_step(before: float, after: float, moved: float, target: float) -> float:
    """The step after which the next proof is predicted to take ``target`` seconds.

    A MILP's time grows about exponentially with the box near the limit of what it can
    prove, so the effort is extrapolated log-linearly along the step: ``after`` seconds
    after moving ``moved`` from a vector proved in ``before`` seconds. Returns 0 when
    ``after`` already exceeds ``target``, inf when the effort did not grow.
    """
    if after >= target:
        return 0.0
    if after <= before or moved <= 0:
        return np.inf
    rate = np.log(after / before) / moved
    return float(np.log(target / after) / rate)


def _reach(trial: np.ndarray, best: np.ndarray, direction: np.ndarray) -> float:
    """How far along ``direction`` (max entry 1) ``trial`` got from ``best``."""
    return float(np.max(trial - best))


def _ascent(problem: LayeredProblem, eps: np.ndarray, points, module
            ) -> tuple[np.ndarray, float]:
    """The ascent direction (max entry 1) and the first-order step that spends
    ``MARGIN_SPEND`` of the weakest margin (inf when the margin does not decrease)."""
    grad = rl_gradient(problem, eps, points, module)
    size = problem.weights / max(float(np.max(np.abs(problem.weights))), 1e-12)
    scale = float(np.max(np.abs(grad)))
    rl = grad / scale if scale > 0 else np.zeros_like(grad)
    direction = np.maximum(size + RL_WEIGHT * rl, 0.0)
    if direction.max() <= 0:
        direction = np.maximum(size, 0.0)
    direction = direction / max(float(direction.max()), 1e-12)
    slope = float(grad @ direction)
    margin = min(m for _, m in points)
    if slope >= 0 or margin <= 0:
        return direction, np.inf if margin > 0 else 0.0
    return direction, MARGIN_SPEND * margin / -slope


def _certify(problem: LayeredProblem, oracle: Oracle, proved: list[np.ndarray]
             ) -> tuple[np.ndarray, dict]:
    """Re-verify the best proved vector; fall back to earlier ones if it is not proved."""
    o = oracle.options
    oracle.options = replace(o, max_calls=None, timeout=None)
    best_first = sorted(range(len(proved)), key=lambda i: problem.size(proved[i]),
                        reverse=True)
    for i in best_first:
        result = oracle.check(proved[i], limit=max(o.call_time_limit, 1.0) * 2)
        if result.verdict == "robust":
            oracle.options = o
            return proved[i], result.to_json()
    oracle.options = o
    raise Error(f"{problem.name}: no vector could be re-verified, not even the unperturbed "
                f"input")


# -- from a spec -----------------------------------------------------------------------

def layered_problem(ctx, prop) -> LayeredProblem:
    """The :class:`LayeredProblem` of a ``maximize`` property (``ctx``: a SpecContext).

    Raises a positioned ``SpecError`` for anything that does not fit the network.
    """
    from robustc.compiler.spec_lower import ConditionLowering, ring_indices
    from robustc.specs.rings import as_chw

    network = ctx.network(prop.network, prop)
    hood = prop.neighbourhood
    x0 = ctx.input_for(hood.input, network.graph, hood)
    rings = ring_indices(ctx, hood)
    layers = int(hood.rings.count.value) + 1
    if prop.weights is None:
        weights = np.ones(layers)
    else:
        weights = np.array([float(e.value) for e in prop.weights.items])
        if len(weights) != layers:
            raise ctx.fail(prop.weights, f"{len(weights)} weights for {layers} layers")
    lowering = ConditionLowering(ctx, network, x0)
    condition = lowering.lower(prop.condition)
    chw = as_chw(ctx.raw_input(hood.input, hood)).shape
    region = ctx.mask(hood.rings.region, hood.input, hood).any(axis=0)
    meta = {"network": network.name, "labels": lowering.labels, "region": region,
            "reference_set": [lowering.name(t) for t in lowering.reference_set()]}
    return LayeredProblem(prop.name, network.graph, network.paths, x0, rings, condition,
                          weights, tuple(chw), ctx.domain(hood.input), meta)


def options_for(prop, base: MaximizeOptions) -> MaximizeOptions:
    """``base`` updated with the property's method and its options."""
    from robustc.specs import ast as A

    method = NAIVE if isinstance(prop.method, A.NaiveSearch) else prop.method.cutting
    given = {opt.name: opt.value.value for opt in prop.method.options}
    fields = {k: float(v) for k, v in given.items()
              if k in ("precision", "max_eps", "step", "timeout")}
    if "iterations" in given:
        fields["iterations"] = int(given["iterations"])
    return replace(base, method=method, **fields)


def maximize_spec(spec, names: list[str] | None = None,
                  options: MaximizeOptions | None = None) -> list[tuple[LayeredProblem,
                                                                        MaximizeResult]]:
    """Run every ``maximize`` property of a resolved spec (or those in ``names``).

    Raises ``SpecError`` for an unknown property name or a property that does not fit.
    """
    from robustc.compiler.spec_lower import SpecContext, select_properties
    from robustc.specs import ast as A

    ctx = SpecContext(spec)
    props = select_properties(spec, A.MaximizeProperty, "maximize", names)
    base = options or MaximizeOptions()
    runs = []
    for prop in props:
        problem = layered_problem(ctx, prop)
        runs.append((problem, maximize(problem, options_for(prop, base))))
    return runs
