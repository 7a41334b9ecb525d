"""Optimizer: StableAdamW with ModernBERT defaults; no weight decay on norms, biases, embeddings."""

from __future__ import annotations

import pytest
from optimi import StableAdamW

from infra.core.config import OptimSection
from training.model import ModernBertMLM, model_args
from training.optim import build_optimizer


def test_defaults_are_modernberts():
    config = OptimSection()
    assert config.lr == 8e-4 and config.betas == (0.9, 0.98) and config.eps == 1e-6 and config.weight_decay == 1e-5


def test_stableadamw_groups_skip_decay_on_norms_and_embeddings():
    model = ModernBertMLM(model_args("tiny"))
    opt = build_optimizer(model, OptimSection())
    assert isinstance(opt, StableAdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == pytest.approx(1e-5) and no_decay["weight_decay"] == 0.0
    assert decay["lr"] == pytest.approx(8e-4) and (decay["beta1"], decay["beta2"]) == (0.9, 0.98)
    assert decay["eps"] == 1e-6
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert "model.embeddings.tok_embeddings.weight" in no_decay_names
    assert all("norm" in n or "embeddings" in n for n in no_decay_names)
    assert "model.layers.0.attn.Wqkv.weight" in decay_names and not any("norm" in n for n in decay_names)
    assert len(decay_names) + len(no_decay_names) == len(list(model.parameters()))


def test_a_step_moves_the_weights():
    model = ModernBertMLM(model_args("tiny"))
    model.init_weights()
    opt = build_optimizer(model, OptimSection(), lr=1e-3)
    before = model.head.dense.weight.detach().clone()
    import torch

    ids = torch.randint(5, 512, (2, 32))
    labels = torch.where(torch.rand(2, 32) < 0.3, ids, torch.full_like(ids, -100))
    labels[0, 1] = ids[0, 1]
    model(ids, torch.tensor([[32], [32]]), labels).loss.backward()
    opt.step()
    assert not torch.equal(before, model.head.dense.weight)
