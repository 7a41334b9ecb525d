"""MLM corruption: rate, 80/10/10 split, specials never chosen, labels, determinism."""

from __future__ import annotations

import torch

from training.mlm import IGNORE_INDEX, MaskingSpec, mask_tokens

CLS, SEP, PAD, MASK = 1, 2, 3, 4
SPEC = MaskingSpec(mask_token_id=MASK, vocab_size=512, special_token_ids=(0, CLS, SEP, PAD, MASK), mask_rate=0.3)


def packed_batch(rows: int = 64, length: int = 512) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 512, (rows, length), generator=g)
    ids[:, 0], ids[:, length // 2], ids[:, length // 2 + 1], ids[:, -40] = CLS, SEP, CLS, SEP
    ids[:, -39:] = PAD  # a padding segment
    return ids


def test_rate_and_80_10_10_split_match_the_spec():
    ids = packed_batch()
    corrupted, labels = mask_tokens(ids, SPEC, torch.Generator().manual_seed(1))
    chosen = labels != IGNORE_INDEX
    eligible = ~torch.isin(ids, torch.tensor(SPEC.special_token_ids))
    rate = chosen.sum().item() / eligible.sum().item()
    assert abs(rate - 0.30) < 0.01
    n = chosen.sum().item()
    masked = (corrupted[chosen] == MASK).sum().item() / n
    kept = (corrupted[chosen] == ids[chosen]).sum().item() / n
    randomized = 1 - masked - kept
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(randomized - 0.1) < 0.02


def test_special_and_pad_tokens_are_never_chosen_and_random_ids_are_not_special():
    ids = packed_batch()
    corrupted, labels = mask_tokens(ids, SPEC, torch.Generator().manual_seed(2))
    special = torch.isin(ids, torch.tensor(SPEC.special_token_ids))
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(corrupted[special], ids[special])
    changed = (corrupted != ids) & (corrupted != MASK)
    assert changed.any() and not torch.isin(corrupted[changed], torch.tensor(SPEC.special_token_ids)).any()


def test_labels_hold_original_ids_at_chosen_positions_only():
    ids = packed_batch(8, 128)
    _, labels = mask_tokens(ids, SPEC, torch.Generator().manual_seed(3))
    chosen = labels != IGNORE_INDEX
    assert torch.equal(labels[chosen], ids[chosen])


def test_same_generator_state_gives_same_masks_and_rate_follows_the_phase():
    ids = packed_batch(8, 128)
    a = mask_tokens(ids, SPEC, torch.Generator().manual_seed(4))
    b = mask_tokens(ids, SPEC, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    low = MaskingSpec(MASK, 512, SPEC.special_token_ids, mask_rate=0.15)
    _, labels = mask_tokens(packed_batch(), low, torch.Generator().manual_seed(5))
    eligible = ~torch.isin(packed_batch(), torch.tensor(SPEC.special_token_ids))
    assert abs((labels != IGNORE_INDEX).sum().item() / eligible.sum().item() - 0.15) < 0.01
