"""Schedules: warmup, stable plateau, 1-sqrt decay, batch-size warmup, all as functions of tokens."""

from __future__ import annotations

import math

import pytest
import torch

from infra.core.config import ScheduleSection
from training.schedule import WSD, LRSchedule, batch_size_at, lr_at, plan_steps


def test_warmup_rises_linearly_then_lr_stays_at_peak():
    wsd = WSD(peak_lr=1e-3, total_tokens=10_000, warmup_tokens=1000)
    assert lr_at(0, wsd) == pytest.approx(1e-6)
    assert lr_at(499, wsd) == pytest.approx(0.5e-3)
    assert lr_at(1000, wsd) == lr_at(5000, wsd) == lr_at(9999, wsd) == 1e-3


def test_decay_follows_one_minus_sqrt_to_the_floor():
    wsd = WSD(peak_lr=1e-3, total_tokens=10_000, warmup_tokens=0, decay_tokens=4000, min_lr_ratio=0.1)
    assert lr_at(6000, wsd) == pytest.approx(1e-3)
    for t in (7000, 8000, 9000):
        expected = 1e-4 + (1e-3 - 1e-4) * (1 - math.sqrt((t - 6000) / 4000))
        assert lr_at(t, wsd) == pytest.approx(expected)
    assert lr_at(10_000, wsd) == pytest.approx(1e-4)


def test_decay_phase_config_decays_over_the_whole_budget():
    config = ScheduleSection(warmup_tokens=0, decay_fraction=1.0, decay_shape="1-sqrt")
    wsd = WSD.from_config(config, peak_lr=3e-4, total_tokens=1000)
    lrs = [lr_at(t, wsd) for t in range(0, 1001, 100)]
    assert lrs[0] == pytest.approx(3e-4) and lrs[-1] == pytest.approx(0.0)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    # 1-sqrt drops fastest at the start of the decay, unlike linear
    assert lrs[1] == pytest.approx(3e-4 * (1 - math.sqrt(0.1))) and lrs[1] < 3e-4 * 0.9


def test_batch_size_warms_up_in_units_and_reaches_the_full_batch():
    sizes = [batch_size_at(t, full_batch=64, unit=8, start_batch=8, warmup_tokens=1000) for t in range(0, 1200, 100)]
    assert sizes[0] == 8 and sizes[-1] == 64
    assert all(s % 8 == 0 for s in sizes) and sizes == sorted(sizes)
    with pytest.raises(ValueError):
        batch_size_at(0, full_batch=60, unit=8)


def test_plan_steps_stops_at_the_token_budget_or_max_steps():
    plan = plan_steps(total_tokens=6144, seq_len=128, full_batch=8, unit=4, start_batch=4, warmup_tokens=2048)
    assert plan[0] == 4 and plan[-1] == 8 and sum(plan) * 128 >= 6144
    assert len(plan_steps(6144, 128, 8, 4, max_steps=3)) == 3


def test_lr_schedule_is_stateful_and_sets_the_optimizer_lr():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    sched = LRSchedule(opt, WSD(peak_lr=1.0, total_tokens=100, warmup_tokens=10))
    sched.step(9)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)
    other = LRSchedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0), sched.wsd)
    other.load_state_dict(sched.state_dict())
    assert other.tokens == 9 and other.optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
