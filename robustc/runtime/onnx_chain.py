"""Batched forward passes through a chain of ONNX files with onnxruntime.

A composition ``compose(classifier, generator)`` is run file by file: the generator's first
output, reshaped to the classifier's input shape, feeds the classifier. Any op onnxruntime
runs may appear in any file (Tanh, Sigmoid, LeakyRelu, Elu, Gelu, an affine rescale ...):
nothing here goes through robustc's IR. The last file returns its *logits* (the tensor
before its trailing Sigmoid/Softmax/Tanh/Identity, as :mod:`robustc.runtime.replay` reads it)
or, with ``logits=False``, its output.

Files exported with a fixed batch of 1 are run with a symbolic batch dimension when that
gives the same shapes (one session run per batch); a file whose graph fixes the batch inside
(a Reshape to ``[1, ...]``) is run one row at a time.
"""

from __future__ import annotations

import os

import numpy as np

from robustc.errors import ModelError

__all__ = ["OnnxChain", "OnnxInfo", "onnx_info"]


class OnnxInfo:
    """The first input and first output of one ONNX file: names and static shapes."""

    def __init__(self, path: str, input_name: str, input_shape: tuple, output_name: str,
                 output_shape: tuple, logits_name: str):
        self.path, self.input_name, self.input_shape = path, input_name, input_shape
        self.output_name, self.output_shape = output_name, output_shape
        #: the tensor before trailing output maps (elementwise: the output's shape)
        self.logits_name = logits_name

    @staticmethod
    def size(shape: tuple) -> int | None:
        """The number of values of one sample (None when a dimension past the batch is
        unknown)."""
        dims = shape[1:] if len(shape) > 1 else shape
        return None if any(not isinstance(d, int) or d <= 0 for d in dims) else int(
            np.prod(dims, dtype=np.int64))


def _dims(value_info) -> tuple:
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in value_info.type.tensor_type.shape.dim)


def onnx_info(path: str) -> OnnxInfo:
    """Read the first input's and output's names and shapes of the ONNX file at ``path``.

    Raises :class:`~robustc.errors.ModelError` when the file is missing, unreadable, or has
    more than one (non-initializer) input.
    """
    import onnx

    from robustc.runtime.replay import logits_name

    if not os.path.exists(path):
        raise ModelError(f"network file not found: {os.path.abspath(path)}")
    try:
        model = onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ModelError(f"{path}: not a readable ONNX model ({exc})") from None
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or not model.graph.output:
        raise ModelError(f"{path}: a network in a composition needs one input and an output "
                         f"(it has inputs {[i.name for i in inputs]})")
    out = model.graph.output[0]
    return OnnxInfo(path, inputs[0].name, _dims(inputs[0]), out.name, _dims(out),
                    logits_name(model))


class OnnxChain:
    """``chain(x)``: run a batch ``x`` of shape ``(B, ...)`` (B samples of the first file's
    input) through the files in ``paths``; returns float64 ``(B, n)``: the last file's logits
    (``logits=True``) or its output, flattened per sample.

    Sessions use ``threads`` intra-op threads (default 1, so results and timings do not
    depend on the machine's other work).
    """

    def __init__(self, paths: tuple[str, ...], logits: bool = True, threads: int = 1):
        self.paths = tuple(str(p) for p in paths)
        self.logits = logits
        self.infos = [onnx_info(p) for p in self.paths]
        self._runs = [self._session(i, last=k == len(self.infos) - 1, threads=threads)
                      for k, i in enumerate(self.infos)]

    @property
    def batched(self) -> tuple[bool, ...]:
        """Per file: True when one session run takes the whole batch, False when the file
        fixes its batch inside and runs one row at a time."""
        return tuple(run[3] for run in self._runs)

    def _session(self, info: OnnxInfo, last: bool, threads: int):
        import onnx
        import onnxruntime as ort

        model = onnx.load(info.path)
        want = info.logits_name if (last and self.logits) else info.output_name
        if want not in [o.name for o in model.graph.output]:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(want))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        sample = tuple(1 if not isinstance(d, int) or d <= 0 else d for d in info.input_shape)
        batched = _with_symbolic_batch(model)
        for candidate, is_batched in ((batched, True), (model, False)):
            if candidate is None:
                continue
            try:
                session = ort.InferenceSession(candidate.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
                if is_batched:
                    probe = np.zeros((2, *sample[1:]), dtype=np.float32)
                    got = session.run([want], {info.input_name: probe})[0]
                    if got.shape[0] != 2:
                        continue
                return session, want, sample, is_batched
            except Exception as exc:  # batched: a graph that fixes its batch inside
                if is_batched:
                    continue
                raise ModelError(f"{info.path}: onnxruntime cannot run this model: "
                                 f"{exc}") from None
        raise ModelError(f"{info.path}: onnxruntime cannot run this model")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        value = np.asarray(x, dtype=np.float32)
        batch = value.shape[0]
        for info, (session, want, sample, batched) in zip(self.infos, self._runs, strict=True):
            per_sample = int(np.prod(sample[1:] if len(sample) > 1 else sample, dtype=np.int64))
            if value.size != batch * per_sample:
                raise ModelError(f"{info.path}: input '{info.input_name}' takes "
                                 f"{list(info.input_shape)} ({per_sample} values per sample), "
                                 f"got {value.size // max(batch, 1)} values per sample")
            if batched:
                value = session.run([want], {info.input_name: value.reshape(batch, *sample[1:])})[0]
            elif batch:
                rows = value.reshape(batch, *sample)
                value = np.stack([session.run([want], {info.input_name: r})[0] for r in rows])
            value = np.asarray(value, dtype=np.float32).reshape(batch, -1)
        return value.astype(np.float64)


def _with_symbolic_batch(model):
    """A copy of ``model`` whose first input's and outputs' first dimension is symbolic
    (None when the input has no batch dimension to free)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    inits = {t.name for t in copy.graph.initializer}
    inputs = [i for i in copy.graph.input if i.name not in inits]
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) < 2:
        return None
    dims[0].dim_param = "batch"
    for out in copy.graph.output:
        odims = out.type.tensor_type.shape.dim
        if len(odims):
            odims[0].dim_param = "batch"
    del copy.graph.value_info[:]
    return copy
