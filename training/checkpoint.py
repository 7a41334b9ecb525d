"""Sharded checkpoints with torch.distributed.checkpoint (DCP), after torchtitan's `CheckpointManager`.

Everything saved is a `Stateful` (state_dict / load_state_dict): the model and optimizer through
`torch.distributed.checkpoint.state_dict` (so FSDP2 shards are saved as DTensors and a single process
saves plain tensors, both readable by either), the LR schedule, the train state (step, tokens), and
per-rank things (data-loader position, RNG states) under a key that names the rank, because DCP keeps
only one copy of a key that every rank saves.

Layout: `<folder>/step-00000042/` holds one checkpoint (`.metadata` plus one `.distcp` file per rank).
`folder` is a local path (in a multi-node run, storage every rank can reach) or an `s3://` / `gs://` URI
(checkpoints are staged locally per rank and uploaded; loading downloads them once per machine). The Ray
job also reports each checkpoint to Ray Train, which copies it to its own storage.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.checkpoint.stateful import Stateful

from infra.core import fs
from training.staging import fetch_dir, staging_dir

logger = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step-(\d+)$")
METADATA = ".metadata"  # written last by DCP's coordinator: a checkpoint without it is incomplete


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _local_rank() -> int:
    """This rank's place on its machine (LOCAL_RANK, as Ray Train and torchrun set it)."""
    return int(os.environ.get("LOCAL_RANK", 0)) if dist.is_available() and dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextmanager
def _quiet_single_process():
    """DCP warns that it 'assumes' a single process when torch.distributed is off: that is intended here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


class ModelState(Stateful):
    """The model's (possibly sharded) parameters under their plain FQNs."""

    def __init__(self, model: nn.Module):
        self.model = model

    def state_dict(self) -> dict[str, Any]:
        return get_model_state_dict(self.model)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_model_state_dict(self.model, state, options=StateDictOptions(strict=True))


class OptimizerState(Stateful):
    """Optimizer moments keyed by parameter FQN (resharding-safe)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model = model
        self.optimizer = optimizer

    def state_dict(self) -> dict[str, Any]:
        return get_optimizer_state_dict(self.model, self.optimizer)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_optimizer_state_dict(self.model, self.optimizer, state)


class RNGState(Stateful):
    """Python, NumPy, torch (CPU and CUDA) RNGs plus named generators (e.g. the MLM one)."""

    def __init__(self, generators: dict[str, torch.Generator] | None = None):
        self.generators = generators or {}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "generators": {name: g.get_state() for name, g in self.generators.items()},
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"].cpu())
        for name, g in self.generators.items():
            g.set_state(state["generators"][name].cpu())
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"].cpu())


class PerRank(Stateful):
    """Wrap a Stateful whose state differs per rank (loader position, RNG) under a `rank<N>` key."""

    def __init__(self, inner: Stateful, rank: int | None = None):
        self.inner = inner
        self.rank = _rank() if rank is None else rank

    def state_dict(self) -> dict[str, Any]:
        return {f"rank{self.rank}": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state[f"rank{self.rank}"])


class CheckpointManager:
    """Save and load a dict of Stateful things with DCP; the loop calls only `save` and `load`.

    `folder` is a local path or a URI. Locally, every rank writes into `folder/step-N/` (in a multi-node run
    that must be storage all ranks share). On an object store, DCP still needs a local folder: each rank
    writes its own shards into a local staging folder and uploads them, and rank 0 uploads `.metadata` (the
    marker of a complete checkpoint) only after every rank's shards are in place.
    """

    def __init__(self, folder: str | Path, states: dict[str, Stateful], interval: int = 500,
                 keep_latest_k: int = 3):
        self.folder = str(folder)
        self.states = states
        self.interval = interval
        self.keep_latest_k = keep_latest_k
        self.remote = fs.is_remote(self.folder)
        self.staging = staging_dir(self.folder, f"rank{_rank()}") if self.remote else None

    @property
    def staged_per_rank(self) -> bool:
        """True when each rank's checkpoint folder holds only its own shards (a remote `folder`)."""
        return self.remote

    def step_dir(self, step: int) -> str:
        return fs.join(self.folder, f"step-{step:08d}")

    def should_save(self, step: int, force: bool = False) -> bool:
        return force or step % self.interval == 0

    def save(self, step: int, force: bool = False) -> Path | None:
        """Save at every `interval` steps (or when forced); returns the local checkpoint folder or None."""
        if not self.should_save(step, force):
            return None
        path = self._save_staged(step) if self.remote else self._save_in_place(step)
        if _rank() == 0:
            self._prune()
            logger.info("saved checkpoint %s", self.step_dir(step))
        _barrier()
        return path

    def _save_in_place(self, step: int) -> Path:
        path = fs.local_path(self.step_dir(step))
        if _rank() == 0:
            path.mkdir(parents=True, exist_ok=True)
        _barrier()
        with _quiet_single_process():
            dcp.save(self._snapshot(), checkpoint_id=str(path))
        _barrier()
        return path

    def _save_staged(self, step: int) -> Path:
        shutil.rmtree(self.staging, ignore_errors=True)  # locally only the newest step (Ray Train reports it)
        path = self.staging / f"step-{step:08d}"
        path.mkdir(parents=True)
        with _quiet_single_process():
            dcp.save(self._snapshot(), checkpoint_id=str(path))
        marker = path / METADATA
        metadata = marker.read_bytes() if marker.is_file() else None  # the coordinator (rank 0) wrote it
        if metadata is not None:
            marker.unlink()
        fs.copy_dir(path, self.step_dir(step))
        _barrier()
        if metadata is not None:
            fs.write_bytes(fs.join(self.step_dir(step), METADATA), metadata)
            marker.write_bytes(metadata)
        return path

    def load(self, step: int = -1, path: str | Path | None = None) -> int | None:
        """Restore every state from `path`, or from this folder's checkpoint at `step` (-1: latest).

        Returns the step loaded, or None when there is nothing to load.
        """
        if path is None:
            steps = available_steps(self.folder)
            if not steps:
                return None
            step = steps[-1] if step == -1 else step
            path = self.step_dir(step)
        with _quiet_single_process():
            dcp.load(self.states, checkpoint_id=str(fetch_checkpoint(path)))
        logger.info("loaded checkpoint %s", path)
        match = STEP_DIR.match(fs.name_of(path))
        return int(match.group(1)) if match else step

    def _snapshot(self) -> dict[str, Any]:
        # Materialize each Stateful now: DCP's own call happens inside save and would do the same.
        return {name: state.state_dict() for name, state in self.states.items()}

    def _prune(self) -> None:
        for old in available_steps(self.folder)[: -self.keep_latest_k]:
            fs.delete_dir(self.step_dir(old))


def available_steps(folder: str | Path) -> list[int]:
    """Steps with a complete checkpoint (a `.metadata` file) in `folder` (a path or URI), ascending."""
    if not fs.is_dir(folder):
        return []
    base = str(folder).rstrip("/")
    steps = set()
    for file in fs.list_files(folder, hidden=True):
        step, _, name = file[len(base) + 1:].partition("/")
        match = STEP_DIR.match(step)
        if match and name == METADATA:
            steps.add(int(match.group(1)))
    return sorted(steps)


def latest_checkpoint(folder: str | Path) -> str | None:
    """The newest complete checkpoint folder (path or URI, in `folder`'s form), or None."""
    steps = available_steps(folder)
    return fs.join(folder, f"step-{steps[-1]:08d}") if steps else None


def step_of(checkpoint: str | Path) -> int:
    """The step of a `step-00000042` checkpoint folder."""
    match = STEP_DIR.match(fs.name_of(checkpoint))
    if match is None:
        raise ValueError(f"{checkpoint} is not a step-N checkpoint folder")
    return int(match.group(1))


def fetch_checkpoint(path: str | Path) -> Path:
    """A local checkpoint folder for `path`: itself, or a download of a remote one (one per machine).

    Collective under torch.distributed: the first rank of each machine downloads while the others wait.
    """
    if not fs.is_file(fs.join(path, METADATA)):
        raise FileNotFoundError(f"no DCP checkpoint at {path}")
    if not fs.is_remote(path):
        return fs.local_path(path)
    if _local_rank() == 0:
        fetch_dir(path)
    _barrier()
    return fetch_dir(path)


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load only the model from a full training checkpoint (export, evaluation)."""
    local = fetch_checkpoint(path)
    with _quiet_single_process():
        dcp.load({"model": ModelState(model)}, checkpoint_id=str(local))


# What a new phase keeps of the previous phase's optimizer: the moments and the step counter that debiases
# them (optimi counts steps per group). Every other hyperparameter (lr, max_lr, weight decay, betas) is the
# new phase's own.
CARRIED_GROUP_KEYS = ("step", "setup")


def load_phase_start(model: nn.Module, optimizer: torch.optim.Optimizer, path: str | Path) -> bool:
    """Start a phase from the previous phase's final checkpoint: its weights and its Adam moments.

    A phase that starts from fresh moments but at full LR (the decay phase: no warmup) takes its first
    steps with an un-averaged second moment; carrying the moments continues the optimizer where the last
    phase left it. Returns whether the optimizer state was loaded: a checkpoint written by another
    optimizer (AdamW vs StableAdamW) has other keys, so then only the weights are (with a warning).
    """
    local = fetch_checkpoint(path)
    optimizer_state = OptimizerState(model, optimizer)
    wanted = optimizer_state.state_dict()  # initialises the state (a zero step at lr 0) to load into
    saved = set(dcp.FileSystemReader(str(local)).read_metadata().state_dict_metadata)
    missing = [f"optimizer.state.{fqn}.{name}" for fqn, per_param in wanted["state"].items()
               for name, value in per_param.items()
               if torch.is_tensor(value) and f"optimizer.state.{fqn}.{name}" not in saved]
    if missing:
        logger.warning("%s has no matching optimizer state (e.g. %s): the phase starts with fresh moments",
                       path, missing[0])
        load_model_weights(model, path)
        return False
    own = [{k: v for k, v in group.items() if k != "params" and k not in CARRIED_GROUP_KEYS}
           for group in optimizer.param_groups]
    with _quiet_single_process():
        dcp.load({"model": ModelState(model), "optimizer": optimizer_state}, checkpoint_id=str(local))
    for group, hyper in zip(optimizer.param_groups, own, strict=True):
        group.update(hyper)
    return True

