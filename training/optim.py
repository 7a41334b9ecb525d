"""The optimizer: StableAdamW (torch-optimi) with ModernBERT's defaults.

ModernBERT trains with decoupled StableAdamW: lr 8e-4 (base), betas (0.9, 0.98), eps 1e-6, weight
decay 1e-5 decoupled from the LR, and no weight decay on norms, biases or embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from infra.core.config import OptimSection


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices of linear layers decay; norms, biases and embeddings do not."""
    no_decay_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.LayerNorm | nn.RMSNorm):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if id(param) in no_decay_ids or param.ndim < 2 else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: OptimSection, lr: float | None = None) -> torch.optim.Optimizer:
    """StableAdamW (or AdamW) over `model`'s parameters; `lr` overrides the config's peak LR."""
    peak = lr if lr is not None else config.lr
    groups = param_groups(model, config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=peak, betas=config.betas, eps=config.eps)
    try:
        from optimi import StableAdamW
    except ImportError as err:  # pragma: no cover - a pinned dependency
        raise ImportError("StableAdamW needs torch-optimi: pip install torch-optimi") from err
    # foreach kernels do not accept the DTensor shards of FSDP2 on every backend; the loop is plenty fast.
    return StableAdamW(
        groups, lr=peak, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay,
        decouple_lr=config.decouple_lr, max_lr=peak if config.decouple_lr else None, foreach=False,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
