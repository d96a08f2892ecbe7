"""The LR range test on real tasks: which rule's lr trains best, and the plots of the docs.

For each task and config it sweeps the lr with :func:`optforge.lr_find` (100 steps), then
trains from the same initial weights at the lr of each rule (``valley``, ``steep``,
``minimum``) and at 10x below and 10x above the default rule's, with the config's own
schedule, and reports the final loss of each run. Tasks:

- ``demo``: optforge's demo regression (``optforge.demo``), 300 steps of batch 64;
- ``digits``: a small convolutional network (two 3x3 convolutions with BatchNorm, then a
  linear layer) on scikit-learn's 8x8 digits, 1,437 training and 360 test images,
  300 steps of batch 64; the final loss is the cross-entropy on the training images, with
  the test accuracy beside it.

Run: ``python benchmarks/lr_find_demo.py [--seeds 2] [--plots docs/assets]`` (not a test;
about two minutes on two CPU cores). It prints a table per run and writes the plots and
``lr-find-results.json`` to ``--plots``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import optforge
from optforge import demo
from optforge.lr_find import RULES

STEPS = 300
BATCH = 64
SWEEP_STEPS = 100


def demo_config(name: str) -> dict[str, Any]:
    schedule = {"cosine_decay": {"peak_value": 3e-3, "end_value": 3e-5, "warmup_steps": 30, "decay_steps": STEPS}}
    optimizers = {
        "AdamW": {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.01},
        "SGD": {"name": "SGD", "lr": 3e-3, "momentum": 0.9},
    }
    return {"optimizer": optimizers[name], "schedule": schedule}


# --- the demo task ---------------------------------------------------------------------------------


def demo_batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    task = demo.make_task(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    picks = [torch.randint(len(task.inputs), (BATCH,), generator=generator) for _ in range(SWEEP_STEPS)]
    return [(task.inputs[index], task.targets[index]) for index in picks]


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(model(batch[0]), batch[1])


def demo_sweep(config: dict[str, Any], seed: int) -> Any:
    return optforge.lr_find(demo.make_model(seed), config, demo_batches(seed), mse, steps=SWEEP_STEPS)


def demo_train(config: dict[str, Any], seed: int) -> dict[str, float]:
    result = demo.train(config, STEPS, seed=seed, batch_size=BATCH)
    return {"loss": result.final_loss}


# --- the digits task -------------------------------------------------------------------------------


def digits_data(seed: int) -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    train, test = order[:1437], order[1437:]
    return images[train], labels[train], images[test], labels[test]


class DigitsNet(nn.Module):
    """Two 3x3 convolutions with BatchNorm and ReLU, a 2x2 max-pool between, then a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
        )
        self.head = nn.Linear(32 * 4 * 4, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))


def digits_model(seed: int) -> DigitsNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DigitsNet()


def digits_batches(seed: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    images, labels, _, _ = digits_data(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    picks = [torch.randint(len(labels), (BATCH,), generator=generator) for _ in range(count)]
    return [(images[index], labels[index]) for index in picks]


def cross_entropy(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def digits_sweep(config: dict[str, Any], seed: int) -> Any:
    return optforge.lr_find(digits_model(seed), config, digits_batches(seed, SWEEP_STEPS), cross_entropy)


def digits_train(config: dict[str, Any], seed: int) -> dict[str, float]:
    model = digits_model(seed)
    optimizer, scheduler = optforge.build(model, config)
    model.train()
    for batch in digits_batches(seed + 100, STEPS):
        optimizer.zero_grad(set_to_none=True)
        cross_entropy(model, batch).backward()
        optimizer.step()
        scheduler.step()
    images, labels, test_images, test_labels = digits_data(seed)
    model.eval()
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(images), labels).item()
        accuracy = (model(test_images).argmax(1) == test_labels).float().mean().item()
    return {"loss": loss if math.isfinite(loss) else math.inf, "test_accuracy": accuracy}


TASKS = {
    "demo": (demo_sweep, demo_train),
    "digits": (digits_sweep, digits_train),
}


def run(task: str, optimizer: str, seed: int) -> dict[str, Any]:
    sweep, train = TASKS[task]
    config = demo_config(optimizer)
    began = time.perf_counter()
    result = sweep(config, seed)
    sweep_seconds = time.perf_counter() - began
    lrs = {rule: found.lr for rule in RULES if (found := result.suggest(rule)) is not None}
    default = result.suggestion
    lrs.update({"default / 10": default / 10, "default * 10": default * 10})
    runs = {name: {"lr": lr, **train(result.with_lr(lr), seed)} for name, lr in lrs.items()}
    return {
        "task": task,
        "optimizer": optimizer,
        "seed": seed,
        "steps_taken": len(result.lrs),
        "stopped": result.stopped,
        "sweep_seconds": sweep_seconds,
        "rule": result.rule,
        "suggestion": default,
        "notes": result.notes,
        "runs": runs,
        "result": result,
    }


def print_run(record: dict[str, Any]) -> None:
    print(
        f"\n{record['task']} / {record['optimizer']} / seed {record['seed']}: sweep of {record['steps_taken']} steps "
        f"({record['stopped']}, {record['sweep_seconds']:.1f} s), {record['rule']} suggests {record['suggestion']:.3g}"
    )
    for note in record["notes"]:
        print(f"  note: {note}")
    for name, values in record["runs"].items():
        extra = f"  test accuracy {values['test_accuracy']:.3f}" if "test_accuracy" in values else ""
        print(f"  {name:<13} lr {values['lr']:.3g}  final loss {values['loss']:.4f}{extra}")


def rule_ranks(records: list[dict[str, Any]]) -> dict[str, float]:
    """Each rule's mean rank (1 = its lr trained to the lowest final loss) over the runs."""
    ranks: dict[str, list[int]] = {rule: [] for rule in RULES}
    for record in records:
        losses = {rule: record["runs"][rule]["loss"] for rule in RULES if rule in record["runs"]}
        order = sorted(losses, key=losses.__getitem__)
        for rule in losses:
            ranks[rule].append(order.index(rule) + 1)
    return {rule: statistics.mean(values) for rule, values in ranks.items() if values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--plots", type=Path, default=None, help="write the plots and results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = []
    for task in TASKS:
        for optimizer in ("AdamW", "SGD"):
            for seed in range(args.seeds):
                record = run(task, optimizer, seed)
                print_run(record)
                records.append(record)
    ranks = rule_ranks(records)
    print("\nmean rank of each rule's final loss (1 = best of the three):")
    for rule, rank in sorted(ranks.items(), key=lambda item: item[1]):
        print(f"  {rule:<8} {rank:.2f}")
    if args.plots is not None:
        args.plots.mkdir(parents=True, exist_ok=True)
        for record in records:
            if record["seed"] == 0 and record["optimizer"] == "AdamW":
                record["result"].plot_png(args.plots / f"lr-find-{record['task']}.png")
        saved = [{key: value for key, value in record.items() if key != "result"} for record in records]
        with (args.plots / "lr-find-results.json").open("w") as file:
            json.dump({"runs": saved, "mean_ranks": ranks, "torch": torch.__version__}, file, indent=1)


if __name__ == "__main__":
    main()
