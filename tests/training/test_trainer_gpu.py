"""CUDA: the trainer's step pieces never wait for the device. With CUDA's sync debug mode set to error, a
forward/backward with prebuilt masks and a host-known masked count, the gradient clipping and the
StableAdamW step run without one synchronising call; the optimizer still matches optimi's loop.
Skipped with a reason where there is no CUDA device.
"""

from __future__ import annotations

import optimi
import pytest
import torch

from infra.core.config import OptimSection
from training.attention import AttentionCache
from training.mlm import count_masked
from training.model import IGNORE_INDEX, ModernBertMLM, model_args
from training.optim import build_optimizer, clip_grad_norm_, param_groups

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _batch(g: torch.Generator, length: int = 256):
    ids = torch.randint(5, 512, (2, length), generator=g)
    labels = torch.where(torch.rand(ids.shape, generator=g) < 0.3, ids, IGNORE_INDEX)
    return ids, torch.tensor([[100, length - 100], [length, 0]], dtype=torch.int32), labels


def _model(backend: str) -> ModernBertMLM:
    torch.manual_seed(0)
    model = ModernBertMLM(model_args("tiny", attention_backend=backend)).cuda()
    model.init_weights()
    return model


@pytest.mark.parametrize("backend", ["flex", "sdpa"])
def test_step_runs_without_a_device_sync(backend):
    model = _model(backend)
    optimizer = build_optimizer(model, OptimSection(), lr=1e-3)
    cache = AttentionCache(256, model.args.local_attention_window, backend, "cuda")
    g = torch.Generator().manual_seed(0)

    def step(ids, seq_lens, labels):
        attn, n = cache.get(seq_lens), count_masked(labels)  # host work, as the trainer's loader step
        ids, labels = ids.cuda(non_blocking=True), labels.cuda(non_blocking=True)
        torch.cuda.set_sync_debug_mode("error")
        try:
            model(ids, labels=labels, attn=attn, num_masked=n).loss.backward()
            norm = clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return norm

    batch = _batch(g)
    model(batch[0].cuda(), labels=batch[2].cuda(), attn=cache.get(batch[1])).loss.backward()  # compile, warm up
    optimizer.step()  # first step: per-group constants go to the device once
    optimizer.zero_grad(set_to_none=True)
    for _ in range(2):
        norm = step(*batch)  # raises on any synchronising call
    assert torch.isfinite(norm).item()


def test_stableadamw_on_cuda_matches_optimis_loop():
    ours, reference = _model("sdpa"), _model("sdpa")
    opt = build_optimizer(ours, OptimSection(), lr=1e-3)
    loop = optimi.StableAdamW(param_groups(reference, 1e-5), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-5,
                              decouple_lr=True, max_lr=1e-3, foreach=False, triton=False)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        ids, seq_lens, labels = (t.cuda() for t in _batch(g))
        for model, optimizer in ((ours, opt), (reference, loop)):
            model(ids, seq_lens, labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
