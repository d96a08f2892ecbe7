"""Train a character-level transformer LM with full-precision and low-precision optimizer state, same data and seed.

The text is Python's standard-library source (the ``.py`` files next to
``os.py``, sorted by name, up to ``--chars`` characters), split 90/10 into
training and validation text. Every run starts from the same weights and sees
the same batches; only the optimizer differs: optforge's AdamW and Lion at
``state_precision`` fp32, bf16 and 8bit. The script prints the final
validation loss of each and its relative difference to the fp32 run, and with
``--plot PATH`` writes the loss curves (needs matplotlib).

Run ``python benchmarks/train_char_lm.py`` (``--steps``, ``--chars``, ``--plot``).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from optforge.optimizers import AdamW, Lion


@dataclass(frozen=True)
class Setup:
    """Model and training sizes."""

    width: int = 128
    layers: int = 2
    heads: int = 4
    context: int = 64
    batch: int = 32
    steps: int = 300
    chars: int = 400_000
    eval_every: int = 50
    eval_batches: int = 8


def stdlib_text(limit: int) -> str:
    """Up to ``limit`` characters of the standard library's Python source, file by file in name order."""
    parts, total = [], 0
    for path in sorted(Path(os.path.dirname(os.__file__)).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text)
        if total >= limit:
            break
    return "".join(parts)[:limit]


class CharLM(nn.Module):
    """A small pre-norm transformer over bytes (vocabulary 128, other characters mapped to 0)."""

    def __init__(self, setup: Setup) -> None:
        super().__init__()
        self.embed = nn.Embedding(128, setup.width)
        self.position = nn.Parameter(torch.randn(setup.context, setup.width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            setup.width, setup.heads, 4 * setup.width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, setup.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(setup.width)
        self.head = nn.Linear(setup.width, 128)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(setup.context), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(x, mask=self.mask, is_causal=True)))


def encode(text: str) -> torch.Tensor:
    return torch.tensor([c if c < 128 else 0 for c in text.encode("ascii", errors="replace")], dtype=torch.long)


def batch(data: torch.Tensor, setup: Setup, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(0, data.numel() - setup.context - 1, (setup.batch,), generator=gen)
    x = torch.stack([data[s : s + setup.context] for s in starts.tolist()])
    y = torch.stack([data[s + 1 : s + setup.context + 1] for s in starts.tolist()])
    return x, y


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x).reshape(-1, 128), y.reshape(-1))


@torch.no_grad()
def validation_loss(model: nn.Module, data: torch.Tensor, setup: Setup) -> float:
    gen = torch.Generator().manual_seed(12345)  # the same validation batches for every run
    return sum(_loss(model, *batch(data, setup, gen)).item() for _ in range(setup.eval_batches)) / setup.eval_batches


def train(make: Callable[[list[nn.Parameter]], torch.optim.Optimizer], setup: Setup, text: str) -> list[float]:
    """Validation losses every ``eval_every`` steps (the last one after the final step)."""
    data = encode(text)
    split = int(0.9 * data.numel())
    train_data, val_data = data[:split], data[split:]
    torch.manual_seed(0)
    model = CharLM(setup)
    optimizer = make(list(model.parameters()))
    gen = torch.Generator().manual_seed(1)
    curve = []
    for step in range(1, setup.steps + 1):
        optimizer.zero_grad()
        _loss(model, *batch(train_data, setup, gen)).backward()
        optimizer.step()
        if step % setup.eval_every == 0 or step == setup.steps:
            curve.append(validation_loss(model, val_data, setup))
    return curve


def runs(
    lr_adamw: float = 3e-3, lr_lion: float = 3e-4
) -> dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]]:
    """The optimizers compared (seed 0 for the stochastic rounding)."""
    out: dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = {}
    for precision in ("fp32", "bf16", "8bit"):
        out[f"AdamW {precision}"] = lambda p, s=precision: AdamW(p, lr=lr_adamw, state_precision=s, seed=0)
        out[f"Lion {precision}"] = lambda p, s=precision: Lion(
            p, lr=lr_lion, weight_decay=0.1, state_precision=s, seed=0
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=Setup.steps)
    parser.add_argument("--chars", type=int, default=Setup.chars)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", type=Path, default=None, help="write the loss curves to this PNG")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    setup = Setup(steps=args.steps, chars=args.chars)
    text = stdlib_text(setup.chars)
    params = sum(p.numel() for p in CharLM(setup).parameters())
    print(f"{params:,} parameters, {len(text):,} characters, {setup.steps} steps of {setup.batch}x{setup.context}")
    curves = {name: train(make, setup, text) for name, make in runs().items()}
    print("| optimizer | final validation loss | relative to fp32 |")
    print("|---|---|---|")
    for name, curve in curves.items():
        base = curves[name.split()[0] + " fp32"][-1]
        print(f"| {name} | {curve[-1]:.4f} | {100 * (curve[-1] - base) / base:+.2f}% |")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(7, 4))
        for name, curve in curves.items():
            steps = [min(setup.steps, (i + 1) * setup.eval_every) for i in range(len(curve))]
            axis.plot(steps, curve, label=name, linestyle="-" if "AdamW" in name else "--")
        axis.set_xlabel("step")
        axis.set_ylabel("validation loss (nats/char)")
        axis.set_ylim(
            top=min(4.0, max(c[0] for c in curves.values()) + 0.1),
            bottom=max(0.0, math.floor(min(c[-1] for c in curves.values()) * 10) / 10 - 0.1),
        )
        axis.legend()
        figure.tight_layout()
        figure.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
