"""Global correctness and (eps, delta)-robustness over a generative model.

A ``global`` property names a composed network ``compose(classifier, generator)``, a noise
distribution and a class ``c`` (see docs/global.md):

* ``correct``: p = P_z(C(G(z)) = c). Noise is sampled, ``C(G(z))`` evaluated in batches by
  forward passes (:func:`forward_logits`: the PyTorch module of the IR composition, or
  onnxruntime on the chain of ONNX files when robustc cannot import or compose the
  networks, so any generator onnxruntime runs can be sampled), and p gets an exact
  (Clopper-Pearson) interval at the declared confidence.
* ``robust``: p = P_z(for all z' with |z' - z|_inf <= eps: C(G(z')) = c). Each sampled noise
  gets a local check in noise space: a bounded search (white-box then black-box,
  :mod:`robustc.runtime.noise_search`; black-box alone without the IR composition, whose
  PyTorch module gives the gradients) looks for a z' of another class; the fraction of noises
  *without* such a witness is an upper bound on p. The complete verifier
  (:func:`robustc.verify.verify`) on the composed network decides the ball of a random
  subsample of the noises; the fraction *proved* robust is a lower bound on p. Each bound
  gets its own Clopper-Pearson interval; the reported interval for p is
  [lower end for the proved fraction, upper end for the witness-free fraction]. Each end is
  wrong with probability at most (1 - confidence) / 2, so the pair holds jointly with
  probability at least the confidence. An ``unknown`` from the verifier counts as not proved.

Verdicts: ``met`` when the interval's lower end is >= 1 - delta, ``not_met`` when its upper
end is < 1 - delta, ``undecided`` otherwise.

Reproducibility: the samples are cut into fixed chunks; chunk ``i`` draws its noise from
``numpy.random.default_rng([seed, 0, i])`` and seeds its searches from ``[seed, 1, i]``; the
verifier subsample is drawn once from ``[seed, 2]``. Workers (local processes or Ray tasks)
run whole chunks and the results are combined in chunk order, so the numbers do not depend
on the executor. The one exception is the verifier's wall-clock time limit: a check that
ends ``unknown`` on a slow worker could be decided on a fast one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from robustc.analyses.campaign import (  # noqa: F401 - global's executors, re-exported
    ProcessExecutor,
    RayExecutor,
    SerialExecutor,
    make_executor,
)
from robustc.compiler.spec_lower import SpecContext, select_properties
from robustc.errors import Error, SpecError
from robustc.files import check_output_dir
from robustc.ir import Graph
from robustc.ir import property as P
from robustc.specs import ast as A
from robustc.specs.checker import resolve_path

MET, NOT_MET, UNDECIDED = "met", "not_met", "undecided"
CORRECT, ROBUST = "correct", "robust"


# -- statistics --------------------------------------------------------------------------

def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The exact two-sided Clopper-Pearson interval for a binomial proportion, k of n.

    Each end is exceeded with probability at most ``(1 - confidence) / 2``. Raises
    ``ValueError`` when ``k`` is not in ``[0, n]`` or ``confidence`` not in ``(0, 1)``.
    """
    from scipy.stats import beta

    if not 0 <= k <= n or not 0.0 < confidence < 1.0:
        raise ValueError(f"clopper_pearson: need 0 <= k <= n and 0 < confidence < 1 "
                         f"(k={k}, n={n}, confidence={confidence})")
    if n == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def decide(lo: float, hi: float, target: float) -> str:
    """``met`` if ``lo >= target``, ``not_met`` if ``hi < target``, else ``undecided``."""
    if lo >= target:
        return MET
    return NOT_MET if hi < target else UNDECIDED


# -- lowering ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Noise:
    """The generator's noise: ``normal(mean, std)`` or ``uniform(lo, hi)``, i.i.d. per value."""

    kind: str
    a: float
    b: float

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """A float64 array of ``shape`` drawn from this distribution."""
        if self.kind == "normal":
            return self.a + self.b * rng.standard_normal(shape)
        return rng.uniform(self.a, self.b, shape)

    @property
    def support(self) -> tuple[float, float] | None:
        """``(lo, hi)`` for a uniform noise; None (unbounded) for a normal one."""
        return (self.a, self.b) if self.kind == "uniform" else None


@dataclass(frozen=True)
class GlobalTask:
    """One ``global`` property, lowered: everything a worker needs to run a chunk."""

    name: str
    criterion: str                  # CORRECT or ROBUST
    graph: Graph | None             # the composed network (IR); None: see ir_reason
    onnx_paths: tuple[str, ...]     # generator file(s) then classifier file(s)
    label: int
    label_name: str
    n_labels: int
    noise: Noise
    delta: float
    confidence: float
    samples: int
    eps: float = 0.0
    seed: int = 0
    verify_samples: int = 0         # size of the verifier subsample (robust only)
    verify_time_limit: float = 60.0
    # A node limit (deterministic) rather than the time limit (a safety net) should end a
    # hard check, so verdicts do not depend on how busy a worker is.
    verify_node_limit: int | None = 2000
    search_steps: int = 20
    chunk_size: int = 0             # 0: default (4096 for correct, 32 for robust)
    generator: Graph | None = None  # the generator alone (IR; None when it cannot be imported)
    # Sampling needs no IR: the noise's shape comes from the generator's ONNX input and the
    # forward passes run the ONNX files (see forward_logits).
    noise_shape: tuple[int, ...] = ()
    generator_paths: tuple[str, ...] = ()   # the first files of onnx_paths: the generator
    ir_reason: str = ""             # why graph is None (no white-box search, no verifier)

    @property
    def chunk(self) -> int:
        """The number of samples per chunk."""
        return self.chunk_size or (4096 if self.criterion == CORRECT else 32)


def _number(ctx: SpecContext, expr, where: A.Node, what: str) -> float:
    if expr is None:
        raise ctx.fail(where, f"{what} is required")
    if not isinstance(expr, A.Number):
        raise ctx.fail(expr, f"{what} must be a number")
    return float(expr.value)


def _label(ctx: SpecContext, prop: A.GlobalProperty, decl: A.NetworkDecl, n: int
           ) -> tuple[int, str]:
    _, names = ctx.decoder(decl.source.outer)
    value = prop.label.value if isinstance(prop.label, A.Number | A.Str) else None
    if isinstance(value, str) and names is not None and value in names:
        return names.index(value), value
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        if 0 <= int(value) < n:
            return int(value), names[int(value)] if names else str(value)
    raise ctx.fail(prop.label, f"class {value!r} is not one of the classifier's {n} classes")


def _chain(ctx: SpecContext, decl: A.NetworkDecl) -> tuple[list[tuple[str, A.NetworkDecl]],
                                                            int]:
    """The ONNX files of a (possibly nested) composition in the order they run, each with
    the declaration that names it, and how many of them make the generator."""
    if not isinstance(decl.source, A.Compose):
        return [(str(resolve_path(ctx.spec, decl.source.path)), decl)], 1
    parts = []
    for name in (decl.source.inner, decl.source.outer):
        sub = ctx._decl("NetworkDecl", name)
        if sub is None:
            raise ctx.fail(decl, f"unknown network '{name}'")
        parts.append(_chain(ctx, sub)[0])
    return parts[0] + parts[1], len(parts[0])


def _check_chain(ctx: SpecContext, decl: A.NetworkDecl,
                 files: list[tuple[str, A.NetworkDecl]]) -> tuple[tuple[int, ...], int]:
    """Read the files' input/output shapes with onnx (no IR): the noise shape (the first
    file's input, batch 1) and the number of classes (the last file's output size).

    Raises a positioned SpecError when a file cannot be read, the generator's input has an
    unknown dimension, or a file's output size differs from the next file's input size."""
    from robustc.runtime.onnx_chain import OnnxInfo, onnx_info

    infos = []
    for path, where in files:
        try:
            infos.append(onnx_info(path))
        except Error as exc:
            raise ctx.fail(where.source if isinstance(where.source, A.OnnxFile) else where,
                           str(exc)) from None
    first, where = infos[0], files[0][1]
    shape = tuple(first.input_shape)
    if len(shape) > 1 and not isinstance(shape[0], int):
        shape = (1, *shape[1:])
    if OnnxInfo.size(shape) is None:
        raise ctx.fail(where, f"the generator's input '{first.input_name}' in "
                              f"{Path(first.path).name} has the shape {list(first.input_shape)}: "
                              "the noise needs a fixed size for every dimension but the batch")
    for k in range(len(infos) - 1):
        (a, a_decl), (b, b_decl) = (infos[k], files[k][1]), (infos[k + 1], files[k + 1][1])
        na, nb = OnnxInfo.size(a.output_shape), OnnxInfo.size(b.input_shape)
        if na is not None and nb is not None and na != nb:
            raise ctx.fail(decl, f"cannot compose: '{a_decl.name}' ({Path(a.path).name}) outputs "
                                 f"'{a.output_name}' of shape {list(a.output_shape)} ({na} "
                                 f"values), '{b_decl.name}' ({Path(b.path).name}) takes "
                                 f"'{b.input_name}' of shape {list(b.input_shape)} ({nb} values)")
    n = OnnxInfo.size(infos[-1].output_shape)
    if n is None:
        raise ctx.fail(files[-1][1], f"the classifier's output '{infos[-1].output_name}' has "
                                     f"the shape {list(infos[-1].output_shape)}: the number of "
                                     "classes must be fixed")
    return tuple(int(d) for d in shape), n


def lower_global(ctx: SpecContext, prop: A.GlobalProperty, seed: int = 0,
                 verify_samples: int | None = None, verify_time_limit: float = 60.0,
                 verify_node_limit: int | None = 2000) -> GlobalTask:
    """The :class:`GlobalTask` of one ``global`` property; raises a positioned SpecError.

    ``verify_samples`` (robust only) defaults to all samples. The shapes are read from the
    ONNX files; the IR composition (for the white-box search and the verifier) is tried,
    and when robustc cannot import or compose the networks the task keeps ``graph=None``
    and the reason: sampling runs the ONNX files whatever ops they hold.
    """
    decl = ctx._decl("NetworkDecl", prop.network)
    if decl is None or not isinstance(decl.source, A.Compose):
        raise ctx.fail(prop, f"'{prop.network}' must be declared as compose(classifier, "
                             "generator)")
    files, n_gen = _chain(ctx, decl)
    noise_shape, n = _check_chain(ctx, decl, files)
    graph = generator = None
    reason = ""
    try:
        graph = ctx.network(prop.network, prop).graph
        generator = ctx.network(decl.source.inner, decl).graph
    except SpecError as exc:
        reason = " ".join((exc.diagnostics[0].message if exc.diagnostics else str(exc)).split())
    if graph is not None:
        noise_shape = tuple(graph.input.shape)
    label, label_name = _label(ctx, prop, decl, n)
    noise = Noise(prop.noise.kind, _number(ctx, prop.noise.a, prop.noise, "noise"),
                  _number(ctx, prop.noise.b, prop.noise, "noise"))
    crit = prop.criterion
    robust = isinstance(crit, A.EpsRobustness)
    samples = int(_number(ctx, crit.samples, crit, "samples")) if crit.samples else 1000
    confidence = _number(ctx, crit.confidence, crit, "confidence") if crit.confidence else 0.95
    paths = tuple(p for p, _ in files)
    return GlobalTask(
        name=prop.name, criterion=ROBUST if robust else CORRECT, graph=graph,
        onnx_paths=paths, label=label, label_name=label_name, n_labels=n,
        noise=noise, delta=_number(ctx, crit.delta, crit, "delta"), confidence=confidence,
        samples=samples, eps=_number(ctx, crit.eps, crit, "eps") if robust else 0.0,
        seed=seed, verify_samples=(samples if verify_samples is None
                                   else min(verify_samples, samples)) if robust else 0,
        verify_time_limit=verify_time_limit, verify_node_limit=verify_node_limit,
        generator=generator, noise_shape=noise_shape, generator_paths=paths[:n_gen],
        ir_reason=reason)


def global_tasks(spec: A.Spec, names: list[str] | None = None, **options) -> list[GlobalTask]:
    """The tasks of the ``global`` properties of a resolved spec (or those in ``names``).

    ``options`` go to :func:`lower_global`. Raises ``SpecError`` for an unknown name.
    """
    ctx = SpecContext(spec)
    props = select_properties(spec, A.GlobalProperty, "global", names)
    return [lower_global(ctx, p, **options) for p in props]


# -- chunks (run by workers) -------------------------------------------------------------

@dataclass(frozen=True)
class Chunk:
    """Samples ``start:stop`` of a task; ``verify`` lists those (absolute indices) that get
    a verifier check."""

    index: int
    start: int
    stop: int
    verify: tuple[int, ...] = ()


@dataclass
class ChunkResult:
    """Counts for one chunk (see :class:`GlobalResult` for their meaning)."""

    index: int
    n: int
    correct: int = 0
    no_witness: int = 0
    verified: int = 0
    proved: int = 0
    verify_unknown: int = 0
    verifier_witnesses: int = 0
    witnesses: list = field(default_factory=list)   # (sample, z, z', class of z', source)
    seconds: float = 0.0


def plan(task: GlobalTask) -> list[Chunk]:
    """The fixed chunks of ``task`` (they depend on the task and its seed only)."""
    chosen = np.zeros(task.samples, dtype=bool)
    if task.criterion == ROBUST and task.verify_samples:
        rng = np.random.default_rng([task.seed, 2])
        chosen[rng.choice(task.samples, task.verify_samples, replace=False)] = True
    chunks = []
    for i, start in enumerate(range(0, task.samples, task.chunk)):
        stop = min(start + task.chunk, task.samples)
        chunks.append(Chunk(i, start, stop, tuple(int(j) for j in
                                                  np.flatnonzero(chosen[start:stop]) + start)))
    return chunks


def chunk_noise(task: GlobalTask, chunk: Chunk) -> np.ndarray:
    """The noises of ``chunk``: shape ``(stop - start, *input_shape)``, float64."""
    rng = np.random.default_rng([task.seed, 0, chunk.index])
    shape = task.noise_shape or tuple(task.graph.input.shape)
    return task.noise.sample(rng, (chunk.stop - chunk.start, *shape))


_MODULES: dict = {}


def _module(task: GlobalTask, device: str | None = None):
    """The task's logits module on ``device`` (default: CUDA if present), built once per
    process."""
    from robustc.runtime.torch_module import to_torch

    key = (task.name, task.onnx_paths, device)
    if key not in _MODULES:
        _MODULES[key] = to_torch(task.graph, device=device, logits=True)
    return _MODULES[key]


def _onnx_chain(paths: tuple[str, ...], logits: bool = True):
    """An onnxruntime chain over ``paths`` (one intra-op thread), built once per process
    and file version (a rewritten file gets a new chain)."""
    import os

    from robustc.runtime.onnx_chain import OnnxChain

    key = ("onnx", paths, logits,
           tuple(os.path.getmtime(p) if os.path.exists(p) else None for p in paths))
    if key not in _MODULES:
        _MODULES[key] = OnnxChain(paths, logits=logits)
    return _MODULES[key]


def forward_runner(task: GlobalTask) -> str:
    """What runs the forward passes of ``task``: ``"torch"`` (the PyTorch module of the IR
    composition: CUDA when present) when robustc could compose the networks, otherwise
    ``"onnxruntime"`` (the chain of ONNX files, any op onnxruntime runs)."""
    return "torch" if task.graph is not None else "onnxruntime"


def forward_logits(task: GlobalTask, z: np.ndarray, device: str | None = None) -> np.ndarray:
    """The classifier's logits on ``G(z)`` for a batch of noises ``z``: float32 values as
    float64, shape ``(len(z), n_labels)``, by :func:`forward_runner`'s runner."""
    if task.graph is None:
        return _onnx_chain(task.onnx_paths)(z).reshape(len(z), -1)
    import torch

    module = _module(task, device)
    dev = next(iter(module.buffers())).device
    with torch.no_grad():
        y = module(torch.as_tensor(z, dtype=torch.float32, device=dev)).reshape(len(z), -1)
    return y.cpu().double().numpy()


class _ChainModule:
    """The onnxruntime chain as the forward-only module the black-box search calls
    (a batch of noises as a torch tensor -> logits as a torch tensor)."""

    def __init__(self, task: GlobalTask):
        self.task = task

    def __call__(self, z):
        import torch

        logits = forward_logits(self.task, z.detach().cpu().numpy())
        return torch.as_tensor(logits, dtype=torch.float32)


def searches(task: GlobalTask) -> tuple[str, ...]:
    """The local searches a robust check runs: the white-box (gradient) search needs the
    PyTorch module of the IR composition, the black-box search only forward passes."""
    return ("white-box", "black-box") if task.graph is not None else ("black-box",)


def run_chunk(task: GlobalTask, chunk: Chunk) -> ChunkResult:
    """Run one chunk: classify its noises (correct) or check their balls (robust).

    Uses one torch thread, so that results do not depend on the worker's thread count.
    """
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    z = chunk_noise(task, chunk)
    y = forward_logits(task, z, "cpu" if task.criterion == ROBUST else None)
    # strict argmax: a tie with another class counts as incorrect
    ok = (np.argmax(y, axis=1) == task.label) & (np.sort(y, axis=1)[:, -2] < y[:, task.label])
    result = ChunkResult(chunk.index, len(z), correct=int(ok.sum()))
    if task.criterion == ROBUST:
        _robust_checks(task, chunk, z, ok, result)
    result.seconds = time.perf_counter() - t0
    return result


def _robust_checks(task: GlobalTask, chunk: Chunk, z: np.ndarray, ok: np.ndarray,
                   result: ChunkResult) -> None:
    """Searches on every ball of the chunk, the verifier on the chosen ones."""
    from robustc.runtime.noise_search import black_box_search, white_box_search

    module = _module(task, "cpu") if task.graph is not None else _ChainModule(task)
    seed = int(np.random.default_rng([task.seed, 1, chunk.index]).integers(2**31))
    kw = {"support": task.noise.support, "steps": task.search_steps, "seed": seed}
    found = []
    if task.graph is not None:
        zw, mw = white_box_search(module, z, task.label, task.eps, **kw)
        found.append((zw, mw, "white-box"))
    zb, mb = black_box_search(module, z, task.label, task.eps, **kw)
    found.append((zb, mb, "black-box"))
    witness = np.zeros(len(z), dtype=bool)
    for i in range(len(z)):
        if not ok[i]:
            witness[i] = True
            result.witnesses.append((chunk.start + i, z[i], z[i], None, "center"))
            continue
        for cand, m, source in ((zs[i], ms[i], src) for zs, ms, src in found):
            if m <= 0 and (cls := _replayed_class(task, cand)) != task.label:
                witness[i] = True
                result.witnesses.append((chunk.start + i, z[i], cand, cls, source))
                break
    for j in chunk.verify if task.graph is not None else ():  # no IR: no verifier
        i = j - chunk.start
        found = _verify_one(task, z[i], bool(witness[i]), result)
        if found is not None:   # the verifier found a witness the searches missed
            witness[i] = True
            result.witnesses.append((j, z[i], found, _replayed_class(task, found), "verifier"))
    result.no_witness = int((~witness).sum())


def _replayed_class(task: GlobalTask, z: np.ndarray) -> int | None:
    """The class onnxruntime gives ``z`` on the chain of ONNX files (None on a tie)."""
    from robustc.runtime.replay import run_onnx

    _, logits = run_onnx(task.onnx_paths, z.astype(np.float32)[None])
    logits = logits.reshape(-1)
    top = int(np.argmax(logits))
    return None if np.sum(logits == logits[top]) > 1 else top


def _verify_one(task: GlobalTask, z: np.ndarray, has_witness: bool,
                result: ChunkResult) -> np.ndarray | None:
    """The complete verifier on the ball around ``z`` (skipped when a witness exists: not
    proved). Returns the verifier's replayed counterexample, if it found one."""
    from robustc.ir import Activation
    from robustc.runtime.noise_search import ball
    from robustc.verify import NOT_ROBUST, ROBUST, Problem, VerifyOptions, verify
    from robustc.verify.relu_split.options import ReluSplitOptions

    result.verified += 1
    if has_witness:
        return None
    lo, hi = ball(z, task.eps, task.noise.support)
    prop = P.Property(task.name, (P.Box(lo, hi),), P.in_top_k(task.n_labels, task.label, 1),
                      {"center": z})
    # Smooth activations (a generator's Tanh/Sigmoid output, ELU, ...): the MILP refuses
    # them, so what the bounds leave open goes to the graph branch and bound whatever the
    # number of unstable ReLUs; it bounds them by their relaxations (unknown where too loose).
    smooth = any(isinstance(n, Activation) for n in task.graph.nodes)
    res = verify(Problem(task.name, task.graph, task.onnx_paths, prop),
                 VerifyOptions(time_limit=task.verify_time_limit,
                               node_limit=task.verify_node_limit, attack=False, threads=1,
                               seed=task.seed,
                               relu_split=ReluSplitOptions(min_unstable=0) if smooth
                               else ReluSplitOptions()))
    if res.verdict == ROBUST:
        result.proved += 1
    elif res.verdict == NOT_ROBUST and res.counterexample is not None:
        result.verifier_witnesses += 1
        return res.counterexample.input.reshape(z.shape)
    else:
        result.verify_unknown += 1
    return None


# -- executors: robustc.analyses.campaign (shared with verify, maximize and attack) -----

# -- estimates ---------------------------------------------------------------------------

@dataclass
class GlobalResult:
    """The estimate for one ``global`` property.

    ``correct``: samples whose noise is classified ``c``. For ``robust``: ``no_witness``:
    samples for which no search (nor the verifier) found a noise of another class in the
    ball (upper bound); ``proved``: of the ``verified`` subsample, balls the verifier proved
    (lower bound); ``interval``: the interval for p (see the module docstring).
    """

    name: str
    criterion: str
    label: str
    samples: int
    confidence: float
    target: float
    seed: int
    interval: tuple[float, float]
    verdict: str
    correct: int
    eps: float = 0.0
    no_witness: int = 0
    verified: int = 0
    proved: int = 0
    verify_unknown: int = 0
    upper_interval: tuple[float, float] | None = None
    lower_interval: tuple[float, float] | None = None
    witnesses: list = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    forward: str = "torch"          # forward_runner: "torch" or "onnxruntime"
    searches: tuple[str, ...] = ()  # the local searches run (robust)
    verify_unavailable: str = ""    # why no verifier check ran (robust; "" when they ran)

    def to_json(self) -> dict:
        """A JSON-ready dict (witness noises as lists)."""
        out = {k: v for k, v in self.__dict__.items() if k != "witnesses"}
        out["witnesses"] = [{"sample": s, "z": z.tolist(), "z_adv": za.tolist(), "class": c,
                             "source": src} for s, z, za, c, src in self.witnesses]
        return out


def combine(task: GlobalTask, results: Iterable[ChunkResult]) -> GlobalResult:
    """The :class:`GlobalResult` from chunk results (in chunk order, whatever their order)."""
    rs = sorted(results, key=lambda r: r.index)
    total = lambda name: sum(getattr(r, name) for r in rs)  # noqa: E731
    n, conf, target = total("n"), task.confidence, 1.0 - task.delta
    res = GlobalResult(task.name, task.criterion, task.label_name, n, conf, target, task.seed,
                       clopper_pearson(total("correct"), n, conf), UNDECIDED, total("correct"),
                       eps=task.eps, seconds=sum(r.seconds for r in rs),
                       witnesses=[w for r in rs for w in r.witnesses])
    res.forward = forward_runner(task)
    if task.criterion == ROBUST:
        res.searches = searches(task)
        if task.graph is None and task.verify_samples:
            res.verify_unavailable = ("robustc cannot build the composed network's IR: "
                                      f"{task.ir_reason}")
        res.no_witness, res.verified = total("no_witness"), total("verified")
        res.proved, res.verify_unknown = total("proved"), total("verify_unknown")
        res.upper_interval = clopper_pearson(res.no_witness, n, conf)
        res.lower_interval = clopper_pearson(res.proved, res.verified, conf)
        res.interval = (res.lower_interval[0], res.upper_interval[1])
    res.verdict = decide(*res.interval, target)
    return res


def estimate(task: GlobalTask, executor=None,
             progress: Callable[[str], None] | None = None) -> GlobalResult:
    """Run all chunks of ``task`` on ``executor`` (default: serial) and combine them.

    ``progress`` gets a line after each chunk: samples done, the running estimate and its
    interval.
    """
    executor = executor or SerialExecutor()
    chunks = plan(task)
    t0 = time.perf_counter()
    done: list[ChunkResult] = []
    for r in executor.map_unordered(run_chunk, task, chunks):
        done.append(r)
        if progress is not None:
            progress(_progress_line(task, combine(task, done)))
    res = combine(task, done)
    res.seconds, res.workers = time.perf_counter() - t0, getattr(executor, "workers", 1)
    return res


def _progress_line(task: GlobalTask, partial: GlobalResult) -> str:
    lo, hi = partial.interval
    if task.criterion == CORRECT:
        est = f"correct {partial.correct / max(partial.samples, 1):.4f}"
    else:
        est = (f"witness-free {partial.no_witness / max(partial.samples, 1):.4f}, proved "
               f"{partial.proved}/{partial.verified}")
    return (f"{task.name}: {partial.samples}/{task.samples} samples, {est}, "
            f"interval [{lo:.4f}, {hi:.4f}]")


def with_seed(task: GlobalTask, seed: int) -> GlobalTask:
    """``task`` with another seed."""
    return replace(task, seed=seed)


def save_pairs(task: GlobalTask, result: GlobalResult, out_dir, limit: int = 8) -> list[str]:
    """Save up to ``limit`` witness pairs ``G(z) | G(z')`` as PNG files in ``out_dir``.

    Skips witnesses where the centre itself is misclassified (no pair). Returns the paths.
    """
    from pathlib import Path

    from robustc.runtime.images import save_png
    from robustc.runtime.onnx_chain import OnnxInfo

    out = check_output_dir(Path(out_dir))
    paths = []
    pairs = [w for w in result.witnesses if w[4] != "center"][:limit]
    for sample, z, z_adv, cls, source in pairs:
        chain = _onnx_chain(task.generator_paths, logits=False)
        imgs = chain(np.stack([z, z_adv]))
        shape = chain.infos[-1].output_shape
        shape = shape[1:] if len(shape) > 1 and OnnxInfo.size(shape) == imgs.shape[1] else (-1,)
        imgs = np.clip(imgs.reshape(2, *shape), 0.0, 1.0)
        side = [_to_grey(im) for im in imgs]
        gap = np.ones((side[0].shape[0], 2))
        row = np.concatenate([side[0], gap, side[1]], axis=1)
        path = out / f"{task.name}_{sample}_{task.label_name}_to_{cls}_{source}.png"
        save_png(row, path, scale=max(1, 128 // row.shape[0]))
        paths.append(str(path))
    return paths


def _to_grey(img: np.ndarray) -> np.ndarray:
    """An image tensor (any leading 1s, then C, H, W or H, W; a flat vector of a square
    size) as a 2-D grey array."""
    if img.ndim == 1:
        side = int(round(np.sqrt(img.size)))
        img = img.reshape(side, -1) if side * side == img.size else img[None]
    img = img.reshape(img.shape[-3:]) if img.ndim >= 3 else img
    return img.mean(axis=0) if img.ndim == 3 else img


def summary(result: GlobalResult) -> str:
    """A one-line human summary."""
    lo, hi = result.interval
    if result.criterion == CORRECT:
        body = f"correct {result.correct}/{result.samples}"
    else:
        body = (f"eps={result.eps}: witness-free {result.no_witness}/{result.samples}, proved "
                f"{result.proved}/{result.verified} ({result.verify_unknown} unknown)")
        if result.verify_unavailable:
            body += f" [verified lower bound unavailable: {result.verify_unavailable}]"
    return (f"{result.name} [class {result.label}] {body}; p in [{lo:.4f}, {hi:.4f}] at "
            f"{result.confidence:g}; 1-delta={result.target:g}: {result.verdict} "
            f"({result.seconds:.1f} s, seed {result.seed})")


__all__ = ["CORRECT", "MET", "NOT_MET", "ROBUST", "UNDECIDED", "Chunk", "ChunkResult",
           "GlobalResult", "GlobalTask", "Noise", "ProcessExecutor", "RayExecutor",
           "SerialExecutor", "chunk_noise", "clopper_pearson", "combine", "decide", "estimate",
           "forward_logits", "forward_runner", "global_tasks", "lower_global", "make_executor",
           "plan", "run_chunk", "save_pairs", "searches", "summary", "with_seed"]
