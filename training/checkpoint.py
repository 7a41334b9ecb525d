"""Sharded checkpoints with torch.distributed.checkpoint (DCP), after torchtitan's `CheckpointManager`.

Everything saved is a `Stateful` (state_dict / load_state_dict): the model and optimizer through
`torch.distributed.checkpoint.state_dict` (so FSDP2 shards are saved as DTensors and a single process
saves plain tensors, both readable by either), the LR schedule, the train state (step, tokens), and
per-rank things (data-loader position, RNG states) under a key that names the rank, because DCP keeps
only one copy of a key that every rank saves.

Layout: `<folder>/step-00000042/` holds one checkpoint (`.metadata` plus one `.distcp` file per rank).
In a multi-node run, `folder` must be storage every rank can reach (the run directory); the Ray job
also reports each checkpoint to Ray Train, which copies it to its own storage.
"""

from __future__ import annotations

import logging
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

logger = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step-(\d+)$")


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


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
    """Save and load a dict of Stateful things with DCP; the loop calls only `save` and `load`."""

    def __init__(self, folder: str | Path, states: dict[str, Stateful], interval: int = 500,
                 keep_latest_k: int = 3):
        self.folder = Path(folder)
        self.states = states
        self.interval = interval
        self.keep_latest_k = keep_latest_k

    def step_dir(self, step: int) -> Path:
        return self.folder / f"step-{step:08d}"

    def should_save(self, step: int, force: bool = False) -> bool:
        return force or step % self.interval == 0

    def save(self, step: int, force: bool = False) -> Path | None:
        """Save at every `interval` steps (or when forced); returns the checkpoint folder or None."""
        if not self.should_save(step, force):
            return None
        path = self.step_dir(step)
        if _rank() == 0:
            path.mkdir(parents=True, exist_ok=True)
        _barrier()
        with _quiet_single_process():
            dcp.save(self._snapshot(), checkpoint_id=str(path))
        _barrier()
        if _rank() == 0:
            self._prune()
            logger.info("saved checkpoint %s", path)
        _barrier()
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
        path = Path(path)
        if not (path / ".metadata").is_file():
            raise FileNotFoundError(f"no DCP checkpoint at {path}")
        with _quiet_single_process():
            dcp.load(self.states, checkpoint_id=str(path))
        logger.info("loaded checkpoint %s", path)
        match = STEP_DIR.match(path.name)
        return int(match.group(1)) if match else step

    def _snapshot(self) -> dict[str, Any]:
        # Materialize each Stateful now: DCP's own call happens inside save and would do the same.
        return {name: state.state_dict() for name, state in self.states.items()}

    def _prune(self) -> None:
        for old in available_steps(self.folder)[: -self.keep_latest_k]:
            shutil.rmtree(self.step_dir(old), ignore_errors=True)


def available_steps(folder: str | Path) -> list[int]:
    """Steps with a complete checkpoint (a `.metadata` file) in `folder`, ascending."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    steps = []
    for child in folder.iterdir():
        match = STEP_DIR.match(child.name)
        if match and (child / ".metadata").is_file():
            steps.append(int(match.group(1)))
    return sorted(steps)


def latest_checkpoint(folder: str | Path) -> Path | None:
    steps = available_steps(folder)
    return Path(folder) / f"step-{steps[-1]:08d}" if steps else None


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load only the model from a full training checkpoint (a new phase starts from the last one)."""
    with _quiet_single_process():
        dcp.load({"model": ModelState(model)}, checkpoint_id=str(path))
