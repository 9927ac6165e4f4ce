"""Output encodings: how a network's scores decode to a label vector, and the linear margins
that say when a target label vector is reached.

Every encoding works on the network's *logits* ``z`` (the tensor before a trailing sigmoid,
softmax or tanh) and exposes the same four things, all batched over images:

* ``scores(z)``: the space the decoder reads (the logits, or ``tanh(z)`` for ECOC);
* ``decode(z)``: the decoded label vector, 0/1 of shape ``(B, L)`` (one 1 for one-hot and
  ECOC, any number for multi-label);
* ``margin_rows(target)``: ``(G, h)`` with ``G`` of shape ``(B, r, n)`` and ``h`` ``(B, r)``
  such that the target is decoded iff every margin ``G @ s + h`` is positive, where ``s`` are
  the scores. JMA linearises these rows (the paper's ``A = -G``, ``b = margins - confidence``);
* ``hinge(z, target, confidence)``: the ML-C&W loss (per label on the logits).

A target is a 0/1 label vector ``(B, L)``; for one-hot and ECOC it has exactly one 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from robustc.errors import SpecError


class Encoding:
    """Base class: see the module docstring. ``labels`` is L, ``outputs`` is n."""

    labels: int
    outputs: int

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """The values the decoder reads, from logits ``z`` ``(B, n)``."""
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoded 0/1 label vector ``(B, L)`` of logits ``z``."""
        raise NotImplementedError

    def margin_rows(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G, h)``: the target is decoded iff ``G @ scores + h > 0`` row-wise."""
        raise NotImplementedError

    def margins(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The margins ``(B, r)`` of logits ``z`` for ``target`` (all positive: reached)."""
        g, h = self.margin_rows(target)
        return torch.einsum("brn,bn->br", g, self.scores(z)) + h

    def reached(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Whether ``z`` decodes to ``target`` exactly, ``(B,)`` bool."""
        return (self.decode(z) == target.to(torch.bool)).all(dim=1)

    def hinge(self, z: torch.Tensor, target: torch.Tensor, confidence: float) -> torch.Tensor:
        """ML-C&W loss ``(B,)``: zero once every margin reaches ``confidence``."""
        return torch.relu(confidence - self.margins(z, target)).sum(dim=1)

    def alternative(self, z: torch.Tensor) -> torch.Tensor:
        """The label vector ``(B, L)`` nearest to the decoded one (for untargeted JMA): the
        runner-up class, or the multi-label vector with its closest-call label flipped."""
        scores = self.scores(z) @ self._book(z).T
        runner_up = scores.topk(2, dim=1).indices[:, 1]
        return torch.nn.functional.one_hot(runner_up, self.labels).to(torch.bool)

    def _book(self, like: torch.Tensor) -> torch.Tensor:
        return torch.eye(self.outputs, device=like.device)

    def check_target(self, target: np.ndarray) -> None:
        """Raise SpecError when ``target`` ``(B, L)`` is not a label vector of this encoding."""
        if target.ndim != 2 or target.shape[1] != self.labels:
            raise SpecError(f"a target needs {self.labels} labels, got shape {target.shape}")
        if not np.isin(target, (0, 1)).all():
            raise SpecError("a target label vector holds only 0 and 1")


@dataclass(frozen=True)
class MultiLabel(Encoding):
    """Label j present iff logit j > ``threshold`` (a sigmoid threshold p is logit(p))."""

    outputs: int
    threshold: float = 0.0

    @property
    def labels(self) -> int:
        return self.outputs

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z > self.threshold

    def alternative(self, z: torch.Tensor) -> torch.Tensor:
        closest = (z - self.threshold).abs().argmin(dim=1)
        flip = torch.nn.functional.one_hot(closest, self.outputs).to(torch.bool)
        return self.decode(z) ^ flip

    def margin_rows(self, target):
        sign = 2.0 * target.to(torch.float32) - 1.0
        return torch.diag_embed(sign), -sign * self.threshold


@dataclass(frozen=True)
class OneHot(Encoding):
    """Class = argmax of the logits (softmax outputs decode the same)."""

    outputs: int

    @property
    def labels(self) -> int:
        return self.outputs

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(z.argmax(dim=1), self.outputs).to(torch.bool)

    def margin_rows(self, target):
        return _class_rows(self._book(target), target)

    def hinge(self, z, target, confidence):
        # Carlini-Wagner's f6: only the strongest competitor counts.
        return torch.relu(confidence - self.margins(z, target).min(dim=1).values)

    def check_target(self, target: np.ndarray) -> None:
        super().check_target(target)
        _one_class(target, "argmax")


@dataclass(frozen=True)
class TopK(Encoding):
    """The ``k`` labels with the largest logits are present (softmax outputs decode the same:
    softmax is increasing). Ties go to the lower index, as the verifier's decoding does."""

    outputs: int
    k: int

    @property
    def labels(self) -> int:
        return self.outputs

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        top = torch.argsort(-z, dim=1, stable=True)[:, : self.k]
        out = torch.zeros_like(z, dtype=torch.bool)
        return out.scatter_(1, top, True)

    def margin_rows(self, target):
        # z_t - z_j > 0 for every target label t and every other label j: k * (L - k) rows.
        order = torch.argsort((~target.to(torch.bool)).to(torch.int8), dim=1, stable=True)
        eye = torch.eye(self.outputs, device=target.device)
        inside, outside = eye[order[:, : self.k]], eye[order[:, self.k:]]
        g = (inside[:, :, None, :] - outside[:, None, :, :]).flatten(1, 2)
        return g, torch.zeros(g.shape[:2], device=target.device)

    def hinge(self, z, target, confidence):
        # Carlini-Wagner's f6 per target label: each against the strongest other label.
        margins = self.margins(z, target).reshape(len(z), self.k, self.outputs - self.k)
        return torch.relu(confidence - margins.min(dim=2).values).sum(dim=1)

    def alternative(self, z: torch.Tensor) -> torch.Tensor:
        # The nearest other top-k set: the weakest member out, the strongest non-member in.
        now = self.decode(z)
        inf = torch.tensor(float("inf"), device=z.device)
        weakest = torch.where(now, z, inf).argmin(dim=1)
        strongest = torch.where(now, -inf, z).argmax(dim=1)
        rows = torch.arange(len(z), device=z.device)
        other = now.clone()
        other[rows, weakest] = False
        other[rows, strongest] = True
        return other

    def check_target(self, target: np.ndarray) -> None:
        super().check_target(target)
        if not (target.sum(axis=1) == self.k).all():
            raise SpecError(f"a top-{self.k} target names exactly {self.k} labels")


@dataclass(frozen=True, eq=False)
class Ecoc(Encoding):
    """Class = argmax_k ``tanh(z) . codebook[k]`` (codebook ``(L, n)``, entries +-1)."""

    codebook: np.ndarray

    @property
    def labels(self) -> int:
        return self.codebook.shape[0]

    @property
    def outputs(self) -> int:
        return self.codebook.shape[1]

    def _book(self, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.codebook, dtype=torch.float32, device=like.device)

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        corr = self.scores(z) @ self._book(z).T
        return torch.nn.functional.one_hot(corr.argmax(dim=1), self.labels).to(torch.bool)

    def margin_rows(self, target):
        return _class_rows(self._book(target), target)

    def hinge(self, z, target, confidence):
        # ML-C&W on ECOC (paper, Sec. IV-B): a hinge per code bit, on the logits.
        word = target.to(torch.float32) @ self._book(z)
        return torch.relu(confidence - word * z).sum(dim=1)

    def check_target(self, target: np.ndarray) -> None:
        super().check_target(target)
        _one_class(target, "ECOC")


def _class_rows(book: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``c_t - c_i`` for every class i != t (codewords ``book`` (L, n))."""
    labels = book.shape[0]
    t = target.to(torch.float32).argmax(dim=1)
    j = torch.arange(labels - 1, device=book.device)
    others = j[None, :] + (j[None, :] >= t[:, None]).long()  # every class but t, in order
    g = book[t][:, None, :] - book[others]
    return g, torch.zeros(g.shape[:2], device=book.device)


def _one_class(target: np.ndarray, kind: str) -> None:
    if not (target.sum(axis=1) == 1).all():
        raise SpecError(f"an {kind} target names exactly one class")
