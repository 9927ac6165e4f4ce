"""PyTorch definitions of every example network (shared by the training scripts and tests).

Every module maps a batch to the exact tensor its ONNX export outputs, so the ONNX graph
holds only plain ops: Conv, Relu, MaxPool, Flatten/Reshape, Gemm, and one final
Softmax, Tanh or Clip.
"""

from __future__ import annotations

import torch
from torch import nn

NOISE_DIM = 4  # generator input size


class MultiLabelCNN(nn.Module):
    """Two convolutions, one max-pool, one dense layer; 10 logits for a ``[B, 1, H, W]`` canvas.

    The second convolution's 6x6 kernel sees a whole 8x8 digit (receptive field 8x8); the
    max-pool spans the whole feature map, so each channel says "this pattern occurs
    somewhere", which is what a set of labels needs. Label d is present iff logit d > 0.
    """

    def __init__(
        self, channels: tuple[int, int] = (4, 16), canvas: tuple[int, int] = (16, 24),
        stride: int = 1,
    ):  # fmt: skip
        super().__init__()
        c1, c2 = channels
        pool = ((canvas[0] - 8) // stride + 1, (canvas[1] - 8) // stride + 1)
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=6, stride=stride),
            nn.ReLU(),
            nn.MaxPool2d(pool),
            nn.Flatten(),
        )
        self.dense = nn.Linear(c2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits ``[B, 10]``."""
        return self.dense(self.features(x))


class DoubleMnistCNN(nn.Module):
    """The layered-neighbourhood papers' DOUBLE-MNIST classifier for ``[B, 1, 64, 64]``.

    conv(1->8, k3, stride 2, pad 1) - ReLU - conv(8->16, k3, stride 2, pad 1) - ReLU -
    MaxPool(4) - Linear(256 -> 10) - Softmax (12,288 ReLUs). Decoded as the top 2 labels;
    ``logits`` gives the scores before the softmax (same order).
    """

    def __init__(self, channels: tuple[int, int] = (8, 16)):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(4),
            nn.Flatten(),
        )
        self.dense = nn.Linear(c2 * 4 * 4, 10)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Return the scores before the softmax ``[B, 10]``."""
        return self.dense(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the label probabilities ``[B, 10]``."""
        return torch.softmax(self.logits(x), dim=1)


class DoubleMnistBN(DoubleMnistCNN):
    """``DoubleMnistCNN`` as trained by ``train_dd64.py --recipe bn``: each convolution is
    followed by batch normalisation (conv - BN - ReLU), which trains this small network much
    faster; ``fold`` turns it into the deployed ``DoubleMnistCNN`` (same ONNX nodes).

    With ``channels`` wider than (8, 16) it is the teacher of ``--recipe bn-distill``.
    """

    def __init__(self, channels: tuple[int, int] = (8, 16)):
        nn.Module.__init__(self)  # the layers differ; logits and forward are inherited
        c1, c2 = channels
        self.channels = (c1, c2)
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(4),
            nn.Flatten(),
        )
        self.dense = nn.Linear(c2 * 4 * 4, 10)

    def fold(self) -> DoubleMnistCNN:
        """Return the ``DoubleMnistCNN`` (eval mode) that computes what this network computes
        in eval mode: each batch normalisation (running statistics) folded into the convolution
        before it, ``W' = W * s``, ``b' = (b - mean) * s + beta`` with
        ``s = gamma / sqrt(var + eps)`` per output channel."""
        folded = DoubleMnistCNN(self.channels)
        with torch.no_grad():
            pairs = ((0, 1, 0), (3, 4, 2))
            for conv_at, bn_at, target_at in pairs:
                conv, norm = self.features[conv_at], self.features[bn_at]
                target = folded.features[target_at]
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                target.weight.copy_(conv.weight * scale[:, None, None, None])
                target.bias.copy_((conv.bias - norm.running_mean) * scale + norm.bias)
            folded.dense.load_state_dict(self.dense.state_dict())
        return folded.eval()


class DigitCNN(nn.Module):
    """Small CNN for 8x8 digits ``[B, 1, 8, 8]``; ``n_out`` raw scores before ``head``."""

    def __init__(self, n_out: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 32),
            nn.ReLU(),
            nn.Linear(32, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the raw scores ``[B, n_out]``."""
        return self.body(x)


class SoftmaxDigits(nn.Module):
    """Single-label digit classifier: ``[B, 1, 8, 8]`` -> softmax probabilities ``[B, 10]``."""

    def __init__(self):
        super().__init__()
        self.net = DigitCNN(10)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits (the training loss uses these)."""
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class probabilities."""
        return torch.softmax(self.net(x), dim=1)


class EcocDigits(nn.Module):
    """ECOC classifier: ``[B, 1, 8, 8]`` -> ``tanh`` outputs ``[B, n_bits]``.

    Decode with the codebook ``C`` ``[10, n_bits]``: class = argmax_k ``out @ C[k]``.
    """

    def __init__(self, n_bits: int = 16):
        super().__init__()
        self.net = DigitCNN(n_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the per-bit outputs in (-1, 1)."""
        return torch.tanh(self.net(x))


class FullyConnected(nn.Module):
    """Fully connected ReLU classifier: ``[B, 64]`` -> 10 logits."""

    def __init__(self, hidden: tuple[int, ...] = (32, 32, 32, 32, 32)):
        super().__init__()
        layers: list[nn.Module] = []
        width = 64
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits ``[B, 10]``."""
        return self.net(x)


class Generator(nn.Module):
    """Piecewise-linear generator: noise ``[B, NOISE_DIM]`` -> image ``[B, 1, 8, 8]`` in [0, 1].

    ``raw`` is the unclipped output used by the training loss; ``forward`` clips it.
    """

    def __init__(self, noise_dim: int = NOISE_DIM, hidden: tuple[int, int] = (32, 64)):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(noise_dim, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], 64),
        )

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        """Return the unclipped image ``[B, 1, 8, 8]``."""
        return self.net(z).reshape(-1, 1, 8, 8)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return the image clipped to [0, 1]."""
        return torch.clamp(self.raw(z), 0.0, 1.0)
