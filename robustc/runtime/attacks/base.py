"""The interface every attack shares: a :class:`Victim` (network + encoding + input box), an
:class:`Attack` with ``run(victim, x0, target, untargeted)`` and an :class:`AttackResult`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from robustc.runtime.attacks.encodings import Encoding


@dataclass
class Victim:
    """The attacked network (a module returning logits), its output encoding and the box
    ``[lower, upper]`` (``(B, *input_shape)``, the domain intersected with any ``within``
    set) that every attack stays in."""

    module: torch.nn.Module
    encoding: Encoding
    lower: torch.Tensor
    upper: torch.Tensor

    @property
    def device(self) -> torch.device:
        return self.lower.device

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n)`` of a batch of inputs."""
        return self.module(x).reshape(x.shape[0], -1)

    def clip(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` clipped to the box of images ``index`` (all images when None)."""
        lo = self.lower if index is None else self.lower[index]
        hi = self.upper if index is None else self.upper[index]
        return torch.minimum(torch.maximum(x, lo), hi)

    def hinge(self, z: torch.Tensor, target: torch.Tensor, untargeted: bool,
              confidence: float) -> torch.Tensor:
        """Per-image hinge loss of logits ``z``, zero once the goal is met by ``confidence``:
        the encoding's targeted hinge, or (``untargeted``) how far the weakest margin of the
        source vector ``target`` still is above ``-confidence``."""
        if untargeted:
            return torch.relu(self.encoding.margins(z, target).min(dim=1).values + confidence)
        return self.encoding.hinge(z, target, confidence)

    def success(self, z: torch.Tensor, target: torch.Tensor, untargeted: bool) -> torch.Tensor:
        """Whether logits ``z`` meet the goal: decode to ``target``, or (``untargeted``)
        decode to anything but ``target`` (then the source label vector)."""
        hit = self.encoding.reached(z, target)
        return ~hit if untargeted else hit


@dataclass
class AttackResult:
    """What an attack returns, per image of the batch (numpy, on the host).

    ``success`` is the attack's own claim on the PyTorch module; the runner replays every
    claimed success on the ONNX file before it counts. ``iterations`` counts image updates
    and search steps as the JMA paper does (for ML-C&W: the updates at the final constant);
    ``updates`` counts every gradient step or Jacobian the attack spent on the image (for
    ML-C&W: all rounds of the binary search; for JMA and PGD it equals ``iterations``);
    ``seconds`` is the wall time of the whole batch.
    """

    x_adv: np.ndarray
    success: np.ndarray
    iterations: np.ndarray
    seconds: float
    updates: np.ndarray | None = None


class Attack:
    """Base class of the attacks; subclasses implement :meth:`_run` on torch tensors."""

    name = "attack"
    norm = "l2"

    def run(self, victim: Victim, x0: torch.Tensor, target: torch.Tensor,
            untargeted: bool = False) -> AttackResult:
        """Attack the batch ``x0`` ``(B, *shape)`` towards label vectors ``target`` ``(B, L)``
        (away from them with ``untargeted``); see :class:`AttackResult`."""
        start = time.perf_counter()
        x0 = victim.clip(x0.to(victim.device, torch.float32))
        target = target.to(victim.device, torch.bool)
        victim.encoding.check_target(target.cpu().numpy())
        x_adv, iterations, *rest = self._run(victim, x0, target, untargeted)
        updates = rest[0] if rest else iterations
        with torch.no_grad():
            ok = victim.success(victim.logits(x_adv), target, untargeted)
        if victim.device.type == "cuda":
            torch.cuda.synchronize()
        return AttackResult(x_adv.detach().cpu().numpy(), ok.cpu().numpy(),
                            iterations.cpu().numpy(), time.perf_counter() - start,
                            updates.cpu().numpy())

    def _run(self, victim: Victim, x0: torch.Tensor, target: torch.Tensor,
             untargeted: bool) -> tuple[torch.Tensor, ...]:
        """``(x_adv, iterations)`` or ``(x_adv, iterations, updates)``, all on the device."""
        raise NotImplementedError


class Deadline:
    """A wall-clock budget (``None``: none)."""

    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.perf_counter() + float(seconds)

    def passed(self) -> bool:
        """Whether the budget is spent."""
        return self.end is not None and time.perf_counter() > self.end
