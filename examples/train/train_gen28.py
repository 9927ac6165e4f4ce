"""Train the 28x28 pair for global robustness: a classifier and ten generators (one per digit).

    python examples/train/train_gen28.py   # -> models/cls28.*, models/gen28.pt, gen28_digit0..9.*

Data: scikit-learn's digits drawn as MNIST draws its digits (20x20 bilinear in a 28x28 box,
``robustc.runtime.datasets.digits28``), the usual train/test split.

* ``cls28``: Flatten, Dense(128) ReLU, Dense(64) ReLU, Dense(10) (logits), trained on the
  train digits shifted by up to 2 pixels.
* ``gen28_digit<d>``: the decoder of one conditional VAE (latent size 32, prior N(0, I_32))
  trained on all train digits, with its class input fixed to ``d`` (the one-hot column is
  folded into the first bias): noise ``[1, 32]`` -> Dense(128) LeakyReLU(0.2) -> Dense(256)
  LeakyReLU(0.2) -> Dense(784) -> Tanh -> x 0.5 + 0.5 (the rescale from [-1, 1] to the
  classifier's [0, 1], inside the network) -> Reshape ``[1, 1, 28, 28]``. The paper's GANs
  are 256-512-1024-784 MLPs; these are narrower (128-256-784, 0.95 MB per file) because ten
  files are committed. ``gen28.pt`` holds the conditional decoder's weights.

Each manifest has the ONNX file's sha256; ``cls28.json`` the test accuracy,
``gen28_digit<d>.json`` the share of N(0, I) samples ``cls28`` recognises as ``d`` and the
VAE's reconstruction error on the test digits of ``d``. The run is deterministic on one
thread: a rebuild writes the same bytes (checked with torch 2.13.0 on CPU).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import MODELS, save_state, seed_everything, sha256, write_manifest
from torch import nn
from torch.nn import functional as F

from robustc.runtime import datasets

LATENT = 32
HIDDEN = (128, 256)
N_CHECK = 1000
OPSET = 13


class Classifier28(nn.Module):
    """Flatten, Dense(128) ReLU, Dense(64) ReLU, Dense(10): logits of a ``[B, 1, 28, 28]`` image."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64),
                                 nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits ``[B, 10]``."""
        return self.net(x)


class Decoder(nn.Module):
    """The conditional decoder: (noise ``[B, 32]``, one-hot class ``[B, 10]``) -> image in
    [0, 1] ``[B, 1, 28, 28]`` (Tanh, then rescaled)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(LATENT + 10, HIDDEN[0])
        self.fc2 = nn.Linear(HIDDEN[0], HIDDEN[1])
        self.fc3 = nn.Linear(HIDDEN[1], 784)

    def forward(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Return the image for noise ``z`` and class ``onehot``."""
        h = F.leaky_relu(self.fc1(torch.cat([z, onehot], 1)), 0.2)
        h = F.leaky_relu(self.fc2(h), 0.2)
        return (torch.tanh(self.fc3(h)) * 0.5 + 0.5).reshape(-1, 1, 28, 28)


class ClassDecoder(nn.Module):
    """The decoder with its class fixed to ``digit``: noise ``[B, 32]`` -> image."""

    def __init__(self, decoder: Decoder | None = None, digit: int = 0):
        super().__init__()
        self.fc1 = nn.Linear(LATENT, HIDDEN[0])
        self.fc2 = nn.Linear(HIDDEN[0], HIDDEN[1])
        self.fc3 = nn.Linear(HIDDEN[1], 784)
        if decoder is not None:
            self.load_state_dict(fold_class(decoder.state_dict(), digit))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return the image ``[B, 1, 28, 28]`` in [0, 1]."""
        h = F.leaky_relu(self.fc1(z), 0.2)
        h = F.leaky_relu(self.fc2(h), 0.2)
        return (torch.tanh(self.fc3(h)) * 0.5 + 0.5).reshape(-1, 1, 28, 28)


def fold_class(state: dict, digit: int) -> dict:
    """The conditional decoder's ``state`` dict with the class input fixed to ``digit``."""
    out = {k: v.detach().clone() for k, v in state.items()}
    w = out["fc1.weight"]
    out["fc1.bias"] = out["fc1.bias"] + w[:, LATENT + digit]
    out["fc1.weight"] = w[:, :LATENT].contiguous()
    return out


class Encoder(nn.Module):
    """(image, one-hot class) -> (mean, log-variance) of the noise."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784 + 10, 256)
        self.mean = nn.Linear(256, LATENT)
        self.log_var = nn.Linear(256, LATENT)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor):
        """Return the posterior mean and log-variance."""
        h = F.leaky_relu(self.fc(torch.cat([x.flatten(1), onehot], 1)), 0.2)
        return self.mean(h), self.log_var(h)


def shift(x: torch.Tensor, gen: torch.Generator, most: int = 2) -> torch.Tensor:
    """``x`` with each image rolled by up to ``most`` pixels each way (the border is blank)."""
    dy, dx = torch.randint(-most, most + 1, (2,), generator=gen).tolist()
    return torch.roll(x, (dy, dx), (2, 3))


def train_classifier(x, y, args, gen) -> Classifier28:
    """Adam on the cross-entropy of shifted train digits."""
    model = Classifier28()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    for _ in range(args.cls_epochs):
        for batch in torch.randperm(len(x), generator=gen).split(args.batch):
            loss = F.cross_entropy(model(shift(x[batch], gen)), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def train_vae(x, y, args, gen) -> tuple[Decoder, Encoder]:
    """A conditional VAE: binary cross-entropy reconstruction plus ``beta`` x KL."""
    enc, dec = Encoder(), Decoder()
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=args.lr)
    onehot = F.one_hot(y, 10).float()
    for _ in range(args.vae_epochs):
        for batch in torch.randperm(len(x), generator=gen).split(args.batch):
            mean, log_var = enc(x[batch], onehot[batch])
            z = mean + torch.randn(mean.shape, generator=gen) * torch.exp(0.5 * log_var)
            out = dec(z, onehot[batch]).clamp(1e-6, 1 - 1e-6)
            recon = F.binary_cross_entropy(out, x[batch], reduction="none").sum((1, 2, 3))
            kl = 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(1)
            loss = (recon + args.beta * kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return dec.eval(), enc.eval()


def export(model: nn.Module, example: torch.Tensor, name: str) -> list[str]:
    """Export ``model`` to ``models/<name>.onnx`` (batch 1, opset 13); return its op types."""
    import onnx

    path = MODELS / f"{name}.onnx"
    torch.onnx.export(model, (example,), str(path), input_names=["input"],
                      output_names=["output"], opset_version=OPSET, do_constant_folding=True,
                      dynamo=False)
    return [n.op_type for n in onnx.load(str(path)).graph.node if n.op_type != "Constant"]


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cls-epochs", type=int, default=60)
    parser.add_argument("--vae-epochs", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    return parser.parse_args()


def main() -> None:
    """Train, export and check the classifier and the ten generators."""
    import onnxruntime as ort

    args = parse_args()
    command = "python examples/train/train_gen28.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())
    xtr, ytr = (torch.from_numpy(a) for a in datasets.digits28("train"))
    xte, yte = (torch.from_numpy(a) for a in datasets.digits28("test"))

    started = time.time()
    gen = seed_everything(args.seed)
    cls = train_classifier(xtr, ytr, args, gen)
    ops = export(cls, torch.zeros(1, 1, 28, 28), "cls28")
    save_state(cls, MODELS / "cls28.pt")
    session = ort.InferenceSession(str(MODELS / "cls28.onnx"), providers=["CPUExecutionProvider"])

    def classify(images: np.ndarray) -> np.ndarray:
        return np.array([session.run(None, {"input": im[None]})[0].argmax() for im in images])

    acc = {split: round(float(np.mean(classify(x.numpy()) == y.numpy())), 4)
           for split, (x, y) in (("train", (xtr, ytr)), ("test", (xte, yte)))}
    print(f"cls28: accuracy {acc}", flush=True)
    write_manifest("cls28", {
        "task": "classify 28x28 digits (scikit-learn's digits drawn as MNIST draws them)",
        "architecture": "Flatten, Dense(128) ReLU, Dense(64) ReLU, Dense(10) (logits)",
        "input": [1, 1, 28, 28], "output": [1, 10], "ops": ops, "relus": 192,
        "accuracy": acc, "test_images": len(yte), "training_command": command,
        "train_options": vars(args),
    }, started)  # fmt: skip

    started = time.time()
    gen = seed_everything(args.seed + 1)
    dec, enc = train_vae(xtr, ytr, args, gen)
    save_state(dec, MODELS / "gen28.pt")
    vae_seconds = round(time.time() - started, 1)
    for digit in range(10):
        started = time.time()
        name = f"gen28_digit{digit}"
        module = ClassDecoder(dec, digit).eval()
        ops = export(module, torch.zeros(1, LATENT), name)
        with torch.no_grad():
            z = torch.from_numpy(np.random.default_rng([args.seed, digit])
                                 .standard_normal((N_CHECK, LATENT)).astype(np.float32))
            images = module(z).numpy()
            xd = xte[yte == digit]
            mean, _ = enc(xd, F.one_hot(torch.full((len(xd),), digit), 10).float())
            recon = float(((module(mean) - xd) ** 2).mean())
        recognised = round(float(np.mean(classify(images) == digit)), 4)
        print(f"{name}: recognised {recognised}, test reconstruction MSE {recon:.4f}", flush=True)
        write_manifest(name, {
            "task": f"generator of digit {digit} (a conditional VAE's decoder, class fixed)",
            "architecture": "Dense(128) LeakyReLU(0.2), Dense(256) LeakyReLU(0.2), Dense(784), "
                            "Tanh, x0.5+0.5, Reshape 1x1x28x28",
            "input": [1, LATENT], "output": [1, 1, 28, 28], "digit": digit, "noise_dim": LATENT,
            "noise_distribution": f"N(0, I_{LATENT}) (the VAE prior)", "ops": ops,
            "state": "gen28.pt", "state_sha256": sha256(MODELS / "gen28.pt"),
            "recognised_by_cls28": recognised, "recognition_samples": N_CHECK,
            "recognition_noise": f"numpy default_rng([{args.seed}, {digit}]).standard_normal",
            "test_reconstruction_mse": round(recon, 5),
            "test_images": int(len(xd)), "vae_train_seconds": vae_seconds,
            "training_command": command, "train_options": vars(args),
        }, started)  # fmt: skip


if __name__ == "__main__":
    main()
