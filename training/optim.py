"""The optimizer (StableAdamW with ModernBERT's defaults) and gradient clipping, both without host syncs.

ModernBERT trains with decoupled StableAdamW: lr 8e-4 (base), betas (0.9, 0.98), eps 1e-6, weight
decay 1e-5 decoupled from the LR, and no weight decay on norms, biases or embeddings.

Why not optimi's own step: its loop (`foreach=False`) and its foreach path both read every parameter's
RMS back to the host (`.item()`, one device sync per parameter, ~70 per group and step), and under
FSDP2 each of those is also an all-reduce. `StableAdamW` here keeps optimi's state layout (so
checkpoints are interchangeable) but computes the per-tensor learning rates on the device, with one
all-reduce of the RMS vector per step when the parameters are FSDP2 shards. `clip_grad_norm_` likewise
reduces the global norm once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import optimi
import torch
import torch.distributed as dist
from optimi.utils import debias_beta
from torch import nn
from torch.distributed.tensor import DTensor, Shard

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


def local_tensors(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """This rank's shard of each FSDP2 DTensor (a view: in-place ops on it update the DTensor), else the tensor."""
    return [t.to_local() if isinstance(t, DTensor) else t for t in tensors]


def shard_group(tensors: list[torch.Tensor]) -> dist.ProcessGroup | None:
    """The process group over which `tensors` are sharded (FSDP2), or None for plain tensors.

    A sum over local shards, all-reduced over this group, is a sum over the whole tensors; that holds for
    1-D sharded meshes only, so anything else (replicated placements, mixed plain and sharded) is refused.
    """
    sharded = [t for t in tensors if isinstance(t, DTensor)]
    if not sharded:
        return None
    mesh = sharded[0].device_mesh
    if len(sharded) != len(tensors) or mesh.ndim != 1 or any(
            t.device_mesh != mesh or not all(isinstance(p, Shard) for p in t.placements) for t in sharded):
        raise ValueError("expected every tensor sharded (FSDP2, Shard placements) on one 1-D device mesh")
    return mesh.get_group()


@torch.no_grad()
def clip_grad_norm_(parameters: Iterable[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Scale gradients so their global L2 norm is at most `max_norm` (None or inf: only measure); returns
    the norm before clipping as a plain tensor on the device.

    `torch.nn.utils.clip_grad_norm_` on FSDP2 DTensors all-reduces the norm inside the clipping and the
    caller's `.full_tensor()` reduces it again; here the squared local norms are summed and reduced once.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    local = local_tensors(grads)
    squares = torch.stack(torch._foreach_norm(local, 2.0, dtype=torch.float32)).square().sum()
    group = shard_group(grads)
    if group is not None:
        dist.all_reduce(squares, group=group)
    total = squares.sqrt()
    if max_norm is not None and math.isfinite(max_norm):
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        torch._foreach_mul_(local, scale.to(local[0].dtype))
    return total


class StableAdamW(optimi.StableAdamW):
    """optimi's StableAdamW (same hyperparameters, same state, same update) with a foreach step that never
    waits for the device: the RMS-clipped learning rate of each tensor stays a device tensor.

    Parameters in fp16/bf16 (Kahan summation) fall back to optimi's own foreach step; the trainer's masters
    are fp32 (FSDP2 casts copies for compute, autocast does in a plain process).
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 1e-2,
                 eps: float = 1e-6, decouple_lr: bool = False, max_lr: float | None = None):
        super().__init__(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, decouple_lr=decouple_lr,
                         max_lr=max_lr, foreach=True, triton=False)
        self._inverse_numel: dict[int, torch.Tensor] = {}  # per group: 1 / numel of each whole tensor

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Pass 1, per group: moments, then each tensor's sum of grad^2 / max(v, eps^2) over this rank's shard.
        work, sums = [], []
        for index, group in enumerate(self.param_groups):
            params, grads, exp_avgs, exp_avg_sqs, eps_sqs, kahan, scratch = [], [], [], [], [], [], []
            self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, eps_sqs, kahan, scratch)
            if not params:
                continue
            if any(k is not None for k in kahan):  # low-precision parameters: optimi's path as it is
                optimi.stableadamw.stableadamw(
                    params, grads, exp_avgs, exp_avg_sqs, eps_sqs, kahan, lr=group["lr"], beta1=group["beta1"],
                    beta2=group["beta2"], weight_decay=group["weight_decay"], eps=group["eps"], step=group["step"],
                    decouple_lr=group["decouple_lr"], max_lr=group["max_lr"], kahan_sum=group["kahan_sum"],
                    foreach=True)
                continue
            group["step"].add_(1)  # a CPU counter (optimi's layout): reading it is no device sync
            step = int(group["step"])
            beta1_hat, beta2_hat = debias_beta(group["beta1"], step), debias_beta(group["beta2"], step)
            p, g, m, v = (local_tensors(ts) for ts in (params, grads, exp_avgs, exp_avg_sqs))
            torch._foreach_lerp_(m, g, weight=1 - beta1_hat)
            torch._foreach_mul_(v, beta2_hat)
            torch._foreach_addcmul_(v, g, g, value=1 - beta2_hat)
            ratio = torch._foreach_mul(g, g)
            torch._foreach_div_(ratio, torch._foreach_clamp_min(v, group["eps"] ** 2))
            sums.append(torch.stack(torch._foreach_norm(ratio, 1.0, dtype=torch.float32)))  # entries are >= 0
            del ratio
            if index not in self._inverse_numel:
                self._inverse_numel[index] = torch.tensor([1.0 / t.numel() for t in params], device=sums[-1].device)
            work.append((group, index, params, p, m, v))
        if not work:
            return loss
        # One all-reduce for all groups when the tensors are FSDP2 shards: local sums become whole-tensor sums.
        sums_all = torch.cat(sums)
        reduce_group = shard_group([t for _, _, params, *_ in work for t in params])
        if reduce_group is not None:
            dist.all_reduce(sums_all, group=reduce_group)
        # Pass 2: lr_i = lr / max(1, RMS_i), decoupled weight decay, Adam step; all as device tensors.
        offset = 0
        for group, index, params, p, m, v in work:
            rms = (sums_all[offset: offset + len(params)] * self._inverse_numel[index]).sqrt()
            offset += len(params)
            lrs = group["lr"] / rms.clamp_min(1.0)
            if group["weight_decay"] != 0:
                scale = 1.0 / group["max_lr"] if group["decouple_lr"] else 1.0
                torch._foreach_mul_(p, list((1.0 - lrs * (scale * group["weight_decay"])).unbind(0)))
            denominators = torch._foreach_sqrt(v)
            torch._foreach_add_(denominators, group["eps"])
            updates = torch._foreach_div(m, denominators)
            del denominators
            torch._foreach_mul_(updates, list((-lrs).unbind(0)))
            torch._foreach_add_(p, updates)
        return loss


def build_optimizer(model: nn.Module, config: OptimSection, lr: float | None = None) -> torch.optim.Optimizer:
    """StableAdamW (or AdamW, foreach) over `model`'s parameters; `lr` overrides the config's peak LR."""
    peak = lr if lr is not None else config.lr
    groups = param_groups(model, config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=peak, betas=config.betas, eps=config.eps, foreach=True)
    return StableAdamW(groups, lr=peak, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay,
                       decouple_lr=config.decouple_lr, max_lr=peak if config.decouple_lr else None)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
