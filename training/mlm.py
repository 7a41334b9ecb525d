"""Masked-language-model corruption (BERT's 80/10/10), ModernBERT rates: 30% in pretraining, 15% at the end.

A share `mask_rate` of the maskable tokens is chosen; of those, 80% become [MASK], 10% a random
token, 10% stay as they are. Special tokens ([CLS], [SEP], [PAD], ...) are never chosen. Labels hold
the original id at chosen positions and -100 elsewhere, so the loss sees chosen tokens only. All
randomness comes from the generator passed in, so a run is reproducible and resumable.

Masking runs on the host where batches are built, so the number of chosen positions (`count_masked`) is
known there and goes to the model as `num_masked`: the sparse head then needs no device-to-host sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

IGNORE_INDEX = -100


@dataclass(frozen=True)
class MaskingSpec:
    mask_token_id: int
    vocab_size: int
    special_token_ids: tuple[int, ...]
    mask_rate: float = 0.30
    mask_token_share: float = 0.8
    random_token_share: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.mask_rate < 1:
            raise ValueError(f"mask_rate must be in (0, 1), got {self.mask_rate}")
        if self.mask_token_share + self.random_token_share > 1 + 1e-9:
            raise ValueError("mask_token_share + random_token_share must not exceed 1")


def maskable(input_ids: torch.Tensor, special_token_ids: Iterable[int]) -> torch.Tensor:
    """Bool mask of positions that may be chosen: everything but special tokens."""
    specials = torch.tensor(sorted(set(special_token_ids)), dtype=input_ids.dtype, device=input_ids.device)
    return ~torch.isin(input_ids, specials)


def random_replacement_ids(spec: MaskingSpec, device: torch.device | str = "cpu") -> torch.Tensor:
    """Ids a chosen token may be swapped for: the vocabulary minus special tokens."""
    allowed = torch.ones(spec.vocab_size, dtype=torch.bool)
    allowed[[i for i in spec.special_token_ids if i < spec.vocab_size]] = False
    return allowed.nonzero().squeeze(1).to(device)


def mask_tokens(
    input_ids: torch.Tensor, spec: MaskingSpec, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt a batch for MLM. Returns (corrupted ids, labels with -100 at unchosen positions).

    The generator must live on the same device as `input_ids` (a CPU generator for CPU batches);
    draws happen in a fixed order, so the same generator state gives the same masks.
    """
    device = input_ids.device
    eligible = maskable(input_ids, spec.special_token_ids)
    chosen = (torch.rand(input_ids.shape, generator=generator, device=device) < spec.mask_rate) & eligible
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    action = torch.rand(input_ids.shape, generator=generator, device=device)
    to_mask = chosen & (action < spec.mask_token_share)
    to_random = chosen & (action >= spec.mask_token_share) & (action < spec.mask_token_share + spec.random_token_share)
    candidates = random_replacement_ids(spec, device)
    picks = torch.randint(len(candidates), input_ids.shape, generator=generator, device=device)

    corrupted = torch.where(to_mask, torch.full_like(input_ids, spec.mask_token_id), input_ids)
    corrupted = torch.where(to_random, candidates[picks].to(input_ids.dtype), corrupted)
    return corrupted, labels


def count_masked(labels: torch.Tensor) -> int:
    """Labelled positions of a batch, counted where the labels were made (the host): the model's
    `num_masked`, so the loss path never asks the device for the count. Call it on CPU labels only."""
    if labels.device.type != "cpu":
        raise ValueError("count_masked reads the labels on the host; call it before moving them to the device")
    return int((labels != IGNORE_INDEX).sum())
