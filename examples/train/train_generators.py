"""Train one small piecewise-linear generator per digit class (VAE decoders).

    python examples/train/train_generators.py   # -> models/gen_digit0.* ... gen_digit9.*

Each generator is the decoder of a small VAE trained on the train digits of its class:
noise ``z`` ``[1, 4]`` -> Dense(32) ReLU -> Dense(64) ReLU -> Dense(64) -> Reshape
``[1, 1, 8, 8]`` -> Clip(0, 1). The VAE prior is N(0, I_4); for verification use the box
``[-2, 2]^4``. The manifest reports how often ``models/digits_softmax.onnx`` recognises the
generator's samples (needs that model: run ``train_digits.py --model softmax`` first).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
import torch
from common import MODELS, count_relus, export_onnx, save_state, seed_everything, write_manifest
from models import NOISE_DIM, Generator
from torch import nn
from torch.nn import functional as F

from robustc.runtime import datasets

NOISE_BOX = 2.0
N_CHECK = 1000


class Encoder(nn.Module):
    """VAE encoder: image ``[B, 1, 8, 8]`` -> (mean, log-variance) of ``z``."""

    def __init__(self, noise_dim: int = NOISE_DIM):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
        self.mean = nn.Linear(32, noise_dim)
        self.log_var = nn.Linear(32, noise_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior mean and log-variance."""
        h = F.relu(self.net(x))
        return self.mean(h), self.log_var(h)


def train_vae(x: torch.Tensor, args: argparse.Namespace, gen: torch.Generator) -> Generator:
    """Train a VAE on ``x`` (one class); return its decoder in eval mode.

    Reconstruction loss is the squared error of the *unclipped* decoder output, so the
    gradient never vanishes at the clip; ``beta`` weighs the KL term."""
    encoder, decoder = Encoder(), Generator()
    params = [*encoder.parameters(), *decoder.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    for _ in range(args.epochs):
        for batch in torch.randperm(len(x), generator=gen).split(args.batch):
            xb = x[batch]
            mean, log_var = encoder(xb)
            noise = torch.randn(mean.shape, generator=gen)
            z = mean + noise * torch.exp(0.5 * log_var)
            recon = ((decoder.raw(z) - xb) ** 2).sum((1, 2, 3))
            kl = 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(1)
            loss = (recon + args.beta * kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return decoder.eval()


def recognition(decoder: Generator, digit: int, session: ort.InferenceSession, seed: int) -> dict:
    """Return the share of samples that the softmax classifier assigns to ``digit``, for
    z ~ N(0, I) clipped to the box and for z uniform on the box, and the samples' mean
    per-pixel standard deviation (their diversity)."""
    rng = np.random.default_rng([seed, digit])
    draws = {
        "normal_clipped": np.clip(rng.standard_normal((N_CHECK, NOISE_DIM)), -NOISE_BOX, NOISE_BOX),
        "uniform_box": rng.uniform(-NOISE_BOX, NOISE_BOX, (N_CHECK, NOISE_DIM)),
    }
    result = {}
    for key, z in draws.items():
        with torch.no_grad():
            images = decoder(torch.from_numpy(z.astype(np.float32))).numpy()
        hits = [session.run(None, {"input": img[None]})[0].argmax() == digit for img in images]
        result[key] = round(float(np.mean(hits)), 4)
        result[f"{key}_pixel_std"] = round(float(images.std(0).mean()), 4)
    return result


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--beta", type=float, default=0.1, help="weight of the KL term")
    parser.add_argument("--digits", type=int, nargs="*", default=list(range(10)))
    return parser.parse_args()


def main() -> None:
    """Train, check and export one generator per requested digit."""
    args = parse_args()
    session = ort.InferenceSession(str(MODELS / "digits_softmax.onnx"))
    images, labels = datasets.digits("train")
    command = "python examples/train/train_generators.py " + " ".join(
        f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
    )
    for digit in args.digits:
        started = time.time()
        gen = seed_everything(args.seed * 100 + digit)
        decoder = train_vae(torch.from_numpy(images[labels == digit]), args, gen)
        name = f"gen_digit{digit}"
        example = torch.zeros(1, NOISE_DIM)
        ops = export_onnx(decoder, example, MODELS / f"{name}.onnx")
        save_state(decoder, MODELS / f"{name}.pt")
        recognised = recognition(decoder, digit, session, args.seed)
        print(f"digit {digit}: recognised {recognised}", flush=True)
        write_manifest(name, {
            "task": f"generator of digit {digit} (decoder of a VAE trained on that class)",
            "architecture": "Dense(32) ReLU, Dense(64) ReLU, Dense(64), Reshape 1x8x8, Clip(0,1)",
            "input": [1, NOISE_DIM], "output": [1, 1, 8, 8], "digit": digit,
            "noise_dim": NOISE_DIM,
            "noise_distribution": f"N(0, I_{NOISE_DIM}) (the VAE prior); verify over the box "
                                  f"[-{NOISE_BOX}, {NOISE_BOX}]^{NOISE_DIM}",
            "noise_box": [-NOISE_BOX, NOISE_BOX],
            "ops": ops, "relus": count_relus(decoder, example),
            "training_command": command, "seed": args.seed * 100 + digit,
            "train_options": vars(args), "train_images": int(np.sum(labels == digit)),
            "train_pixel_std": round(float(images[labels == digit].std(0).mean()), 4),
            "recognised_by_digits_softmax": recognised,
            "recognition_samples": N_CHECK,
        }, started)  # fmt: skip


if __name__ == "__main__":
    main()
