"""Train a tiny regression with the optimizer and schedule that Hydra composes.

python examples/hydra/train.py optim/optimizer=lion
"""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig

import optforge
from optforge.distributed import set_schedule_free_mode


@hydra.main(config_path=".", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = x @ torch.linspace(-1, 1, 8).unsqueeze(1)
    model = torch.nn.Linear(8, 1)
    optimizer, scheduler = optforge.build(model, cfg.optim)
    initial = torch.nn.functional.mse_loss(model(x), y).item()
    set_schedule_free_mode(optimizer, True)  # Schedule-Free optimizers train in train mode
    for _ in range(cfg.steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
    set_schedule_free_mode(optimizer, False)
    final = torch.nn.functional.mse_loss(model(x), y).item()
    print(f"{type(optimizer).__name__}: loss {initial:.4f} -> {final:.4f} in {cfg.steps} steps")
    return final


if __name__ == "__main__":
    main()
