"""Learning-rate and batch-size schedules as pure functions of tokens seen.

Warmup-stable-decay (ModernBERT / Ettin): linear warmup, a long stable plateau, and at the end of
the budget a decay whose default shape is 1-sqrt (Hägele et al., 2024):

    lr(t) = peak * (1 - sqrt((t - decay_start) / decay_len)), floored at min_lr_ratio * peak.

The LR of a step is taken at the tokens seen once that step is done, during warmup: the first step of a
warmup over W steps runs at peak / W (ModernBERT's 3B-token warmup at ~4.7M tokens a step would otherwise
start at peak / 3e9, a wasted step). Decay and plateau are read at the tokens seen before the step.

Batch-size warmup grows the global batch linearly from `start_batch_size` to the full batch over
`batch_warmup_tokens`, in multiples of what one accumulation step holds. `LRSchedule` wraps the
pure functions in a `Stateful` object that a checkpoint saves (tokens seen).
The trainer builds the schedule over the tokens its step plan actually covers (`plan_steps`, which
honours `max_steps`), so a shortened phase still warms up and decays as configured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from infra.core.config import ScheduleSection


@dataclass(frozen=True)
class WSD:
    """Warmup-stable-decay over a token budget."""

    peak_lr: float
    total_tokens: int
    warmup_tokens: int = 0
    decay_tokens: int = 0
    decay_shape: str = "1-sqrt"
    min_lr_ratio: float = 0.0

    @classmethod
    def from_config(cls, config: ScheduleSection, peak_lr: float, total_tokens: int) -> WSD:
        return cls(
            peak_lr=peak_lr, total_tokens=total_tokens, warmup_tokens=min(config.warmup_tokens, total_tokens),
            decay_tokens=int(round(config.decay_fraction * total_tokens)), decay_shape=config.decay_shape,
            min_lr_ratio=config.min_lr_ratio,
        )

    def lr(self, tokens: int) -> float:
        return lr_at(tokens, self)


def decay_factor(progress: float, shape: str) -> float:
    """1 at the start of the decay, 0 at its end; progress in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(progress)
    if shape == "linear":
        return 1.0 - progress
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown decay shape {shape!r}")


def lr_at(tokens: int, wsd: WSD, step_tokens: int = 1) -> float:
    """The learning rate of the step that starts after `tokens` tokens and trains `step_tokens` more."""
    floor = wsd.min_lr_ratio * wsd.peak_lr
    if wsd.warmup_tokens and tokens < wsd.warmup_tokens:
        # At the end of the step: the first of W warmup steps runs at peak / W, never at ~0.
        return wsd.peak_lr * min(1.0, (tokens + max(step_tokens, 1)) / wsd.warmup_tokens)
    decay_start = wsd.total_tokens - wsd.decay_tokens
    if wsd.decay_tokens and tokens >= decay_start:
        factor = decay_factor((tokens - decay_start) / wsd.decay_tokens, wsd.decay_shape)
        return floor + (wsd.peak_lr - floor) * factor
    return wsd.peak_lr


def batch_size_at(tokens: int, full_batch: int, unit: int, start_batch: int | None = None,
                  warmup_tokens: int = 0) -> int:
    """Global batch (sequences) after `tokens` tokens: linear warmup from `start_batch`, rounded down to
    a multiple of `unit` (micro batch x world size), never below one unit nor above `full_batch`."""
    if full_batch % unit:
        raise ValueError(f"global batch {full_batch} is not a multiple of micro batch x world size ({unit})")
    if not start_batch or not warmup_tokens or tokens >= warmup_tokens:
        return full_batch
    size = start_batch + (full_batch - start_batch) * tokens / warmup_tokens
    return max(unit, min(full_batch, int(size) // unit * unit))


def plan_steps(total_tokens: int, seq_len: int, full_batch: int, unit: int, start_batch: int | None = None,
               warmup_tokens: int = 0, max_steps: int | None = None) -> list[int]:
    """Global batch of every step of a phase, until the token budget (or max_steps) is reached."""
    sizes: list[int] = []
    tokens = 0
    while tokens < total_tokens and (max_steps is None or len(sizes) < max_steps):
        size = batch_size_at(tokens, full_batch, unit, start_batch, warmup_tokens)
        sizes.append(size)
        tokens += size * seq_len
    return sizes


def plan_tokens(plan: list[int], seq_len: int) -> int:
    """Tokens (sequence slots) a step plan trains on: what the LR schedule should span."""
    return sum(plan) * seq_len


class LRSchedule:
    """Sets the optimizer's LR from tokens seen and the size of the next step; `Stateful` for checkpoints."""

    def __init__(self, optimizer: torch.optim.Optimizer, wsd: WSD, next_step_tokens: int = 1):
        self.optimizer = optimizer
        self.wsd = wsd
        self.tokens = 0
        self.next_step_tokens = next_step_tokens
        self.apply()

    @property
    def lr(self) -> float:
        """The LR of the next step."""
        return lr_at(self.tokens, self.wsd, self.next_step_tokens)

    def apply(self) -> float:
        lr = self.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self, tokens: int, next_step_tokens: int | None = None) -> float:
        """Count `tokens` more tokens and set the LR of the next step (of `next_step_tokens`, when known)."""
        self.tokens += tokens
        if next_step_tokens is not None:
            self.next_step_tokens = next_step_tokens
        return self.apply()

    def set_next_step_tokens(self, tokens: int) -> float:
        """Size the next step (after a resume, from the step plan) and set its LR."""
        self.next_step_tokens = tokens
        return self.apply()

    def state_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens}  # the next step's size comes from the step plan, not the checkpoint

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokens = int(state["tokens"])
        self.apply()
