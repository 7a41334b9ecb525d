"""Apply activation checkpointing, torch.compile and FSDP2 to a `ModernBertMLM`, in torchtitan's order.

Build the model on the meta device, call `parallelize_model`, then `to_empty(device=...)` and
`init_weights()`. The order is fixed (torchtitan's `parallelize_llama`):

1. activation checkpointing wraps each block, so the recompute boundary is the block;
2. torch.compile wraps each block (the same code for every block, so one compilation is reused);
3. FSDP2 `fully_shard` on each block, then on the root (embeddings, final norm, head and the tied
   decoder, which must live in one group), with a `MixedPrecisionPolicy`.

This file never defines a layer; it works on CUDA (NCCL) and on CPU (gloo).
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from training.model import ModelArgs, ModernBertMLM

logger = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def apply_ac(model: ModernBertMLM, mode: Literal["none", "full"]) -> None:
    """Full activation checkpointing per block: keep only each block's input, recompute the rest."""
    if mode == "none":
        return
    if mode != "full":
        raise ValueError(f"activation checkpointing mode must be 'none' or 'full', got {mode!r}")
    for layer_id, block in model.model.layers.named_children():
        # preserve_rng_state=False: the model has no dropout, so recompute needs no RNG replay.
        model.model.layers.register_module(layer_id, checkpoint_wrapper(block, preserve_rng_state=False))
    logger.info("applied full activation checkpointing to %d blocks", len(model.model.layers))


def apply_compile(model: ModernBertMLM) -> None:
    """torch.compile each block (torchtitan): the blocks share code, so a compiled graph is reused
    across layers; mask building, head and loss stay eager (their shapes change every step).

    The compiled wrapper adds `_orig_mod.` to `named_parameters()`; `torch.distributed.checkpoint`'s
    state-dict API and `training.export` strip it, so checkpoints and exports keep the HF names.
    """
    for layer_id, block in model.model.layers.named_children():
        model.model.layers.register_module(layer_id, torch.compile(block, fullgraph=True))
    logger.info("compiled %d blocks with torch.compile", len(model.model.layers))


def reshard_after_forward_for(accum_steps: int) -> bool:
    """FSDP2's `reshard_after_forward` for a step of `accum_steps` micro batches.

    Resharding after forward frees each block's gathered parameters until backward gathers them again: one
    more all-gather per block and micro batch. Under gradient accumulation that is paid on every micro
    batch, so keep them gathered (False) when a step has more than one; a single micro batch per step keeps
    the memory saving (True). Gathered parameters cost little next to activations at these model sizes.
    """
    if accum_steps < 1:
        raise ValueError(f"accumulation steps must be >= 1, got {accum_steps}")
    return accum_steps == 1


def apply_fsdp(
    model: ModernBertMLM,
    mesh: DeviceMesh | None,
    param_dtype: torch.dtype,
    reduce_dtype: torch.dtype,
    reshard_after_forward: bool = True,
) -> None:
    """FSDP2: `fully_shard` each block, then the root, under one mixed-precision policy.

    `reshard_after_forward=False` keeps the gathered parameters between forward and backward (less
    communication, more memory; free on a single GPU). The last block is never resharded after forward,
    since backward starts with it at once (torchtitan).
    """
    mp_policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    blocks = list(model.model.layers.values())
    for i, block in enumerate(blocks):
        fully_shard(
            block,
            mesh=mesh,
            mp_policy=mp_policy,
            reshard_after_forward=reshard_after_forward and i < len(blocks) - 1,
        )
    fully_shard(model, mesh=mesh, mp_policy=mp_policy, reshard_after_forward=reshard_after_forward)
    logger.info(
        "applied FSDP2 to %d blocks and the root (param %s, reduce %s, reshard_after_forward=%s)",
        len(blocks), param_dtype, reduce_dtype, reshard_after_forward,
    )


def parallelize_model(
    model: ModernBertMLM,
    args: ModelArgs,
    device_type: str,
    world_mesh: DeviceMesh | None,
    compile: bool = False,
    ac: Literal["none", "full"] = "none",
    mp: Literal["fp32", "bf16"] = "fp32",
    reshard_after_forward: bool = True,
) -> ModernBertMLM:
    """AC, then compile, then FSDP2, in place; returns the model for chaining.

    Args:
        device_type: "cuda" or "cpu" (only logged; the mesh carries the device).
        world_mesh: 1-D data-parallel mesh; None (a plain process without torch.distributed) skips
            FSDP, and mixed precision is then the caller's autocast.
        mp: parameter dtype for compute under FSDP; gradients are always reduced in fp32.
    """
    if mp not in DTYPES:
        raise ValueError(f"mixed precision must be one of {sorted(DTYPES)}, got {mp!r}")
    logger.info(
        "parallelizing %d-layer, dim %d model on %s (compile=%s, ac=%s, mp=%s, mesh=%s)",
        args.n_layers, args.dim, device_type, compile, ac, mp, world_mesh,
    )
    apply_ac(model, ac)
    if compile:
        apply_compile(model)
    if world_mesh is not None:
        apply_fsdp(model, world_mesh, DTYPES[mp], torch.float32, reshard_after_forward)
    else:
        logger.info("no device mesh: FSDP not applied (single plain process)")
    return model


def unwrap_state_dict_keys(module: nn.Module) -> dict[str, torch.Tensor]:
    """Full (unsharded) model state dict with HF parameter names, from any rank layout; for export.

    Uses torch.distributed.checkpoint's state-dict API so FSDP2 DTensors are gathered; wrapper
    prefixes (activation checkpointing, compile) never appear in the keys.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full (unsharded) state dict with HF names into a possibly FSDP2-sharded model; each rank
    keeps its own shard (e.g. to start from an export or from another phase's weights)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True, strict=True))
