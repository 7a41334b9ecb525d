"""CheckpointManager over DCP: model, optimizer, LR schedule, RNG and data position round-trip."""

from __future__ import annotations

import random

import numpy as np
import torch

from infra.core.config import OptimSection
from training.checkpoint import CheckpointManager, ModelState, OptimizerState, PerRank, RNGState, available_steps
from training.model import ModernBertMLM, model_args
from training.optim import build_optimizer
from training.schedule import WSD, LRSchedule


class Position:
    """A loader position: the smallest Stateful with plain-Python state."""

    def __init__(self):
        self.epoch, self.offset = 0, 0

    def state_dict(self):
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state):
        self.epoch, self.offset = state["epoch"], state["offset"]


def build(folder, seed):
    torch.manual_seed(seed)
    model = ModernBertMLM(model_args("tiny"))
    model.init_weights()
    optimizer = build_optimizer(model, OptimSection(), lr=1e-3)
    schedule = LRSchedule(optimizer, WSD(peak_lr=1e-3, total_tokens=10_000, warmup_tokens=1000))
    position, generator = Position(), torch.Generator().manual_seed(seed)
    states = {"model": ModelState(model), "optimizer": OptimizerState(model, optimizer), "lr_schedule": schedule,
              "data": PerRank(position), "rng": PerRank(RNGState({"mlm": generator}))}
    manager = CheckpointManager(folder, states, interval=2, keep_latest_k=2)
    return manager, model, optimizer, schedule, position, generator


def draws(generator):
    return random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=generator))


def train_step(model, optimizer):
    ids = torch.randint(5, 512, (2, 64))
    labels = torch.where(torch.rand(2, 64) < 0.3, ids, torch.full_like(ids, -100))
    labels[:, 3] = ids[:, 3]
    model(ids, torch.tensor([[30, 34], [64, 0]]), labels).loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def test_round_trip_restores_model_optimizer_schedule_rng_and_data_position(tmp_path):
    manager, model, optimizer, schedule, position, generator = build(tmp_path, seed=0)
    for _ in range(3):
        train_step(model, optimizer)
    schedule.step(640)
    position.epoch, position.offset = 1, 17
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    generator.manual_seed(9)
    assert manager.save(2) is not None

    expected_draws = draws(generator)
    expected_model = {k: v.clone() for k, v in model.state_dict().items()}
    expected_moments = {k: {n: t.clone() for n, t in s.items() if isinstance(t, torch.Tensor)}
                        for k, s in optimizer.state_dict()["state"].items()}

    other, model2, optimizer2, schedule2, position2, generator2 = build(tmp_path, seed=1)
    assert not torch.equal(model2.head.dense.weight, model.head.dense.weight)
    assert other.load() == 2
    for key, value in expected_model.items():
        assert torch.equal(model2.state_dict()[key], value), key
    for key, moments in expected_moments.items():
        for name, tensor in moments.items():
            assert torch.equal(optimizer2.state_dict()["state"][key][name], tensor), (key, name)
    assert schedule2.tokens == 640 and optimizer2.param_groups[0]["lr"] == schedule.lr
    assert (position2.epoch, position2.offset) == (1, 17)
    assert draws(generator2) == expected_draws

    # and training continues identically from there
    torch.manual_seed(7)
    train_step(model, optimizer)
    torch.manual_seed(7)
    train_step(model2, optimizer2)
    assert torch.equal(model.head.dense.weight, model2.head.dense.weight)


def test_interval_and_keep_latest_k(tmp_path):
    manager, *_ = build(tmp_path, seed=0)
    assert manager.save(1) is None
    for step in (2, 4, 6):
        manager.save(step)
    manager.save(7, force=True)
    assert available_steps(tmp_path) == [6, 7]
    assert manager.load(step=6) == 6
