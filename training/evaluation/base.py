"""What every downstream task provides: data in three splits, and a run that reports per epoch.

A task never imports Ray: it takes a model folder, its data and one point of the search space, and
calls `on_epoch(metrics)` after each epoch (the Tune driver forwards that to `tune.report`). Every
metric dict carries `valid_score` and `test_score`, the task's primary metric (higher is better) on
the validation and test split, so the driver can choose on validation and report test.
"""

from __future__ import annotations

import hashlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.core import fs
from infra.core.config import EvaluateConfig
from training.staging import fetch_dir

EpochCallback = Callable[[dict[str, Any]], None]


class TaskDataError(ValueError):
    """A task file that is missing or malformed, or labels that do not fit the task (names file and line)."""


@dataclass
class TaskData:
    """Examples of one task in three splits, plus what a reader should know (labels, counts, notes)."""

    train: list[Any]
    valid: list[Any]
    test: list[Any]
    info: dict[str, Any] = field(default_factory=dict)
    # The evaluation's task cache folder (set by the driver): where a trial may keep what another trial with the
    # same inputs can reuse (`similarity.run_cosent`). None: nothing is kept.
    cache_dir: Path | None = None

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


@dataclass
class TrialParams:
    """One point of a task's search space, for one seed."""

    learning_rate: float = 5e-5
    epochs: int = 1
    batch_size: int = 16
    seed: int = 0

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> TrialParams:
        known = {k: params[k] for k in ("learning_rate", "epochs", "batch_size", "seed") if k in params}
        return cls(**known)


class Task(ABC):
    """A downstream task: `load` reads data (driver side), `run` fine-tunes and scores (trial side)."""

    name: str = ""
    metric: str = ""  # primary metric, e.g. "f1"; valid_score / test_score hold it
    finetunes: bool = True  # False: no search space, seeds only (fill-mask)
    default_data: str = ""  # relative to the shared data folder

    def data_source(self, path: str | None) -> Path | None:
        """The user's local data (None for a HF dataset name), or the real shared data when no path is given."""
        from infra.core.paths import shared_data_dir

        return local_source(path, self.name) if path else shared_data_dir() / self.default_data

    @abstractmethod
    def load(self, path: str | None, config: EvaluateConfig, cache_dir: Path) -> TaskData:
        """Read and split the task's data; `path` None means the real shared data."""

    @abstractmethod
    def run(
        self,
        model_dir: str,
        data: TaskData,
        params: TrialParams,
        config: EvaluateConfig,
        on_epoch: EpochCallback | None = None,
    ) -> dict[str, Any]:
        """Fine-tune (if the task does) and score; returns the last epoch's metrics."""

    def baselines(self, data: TaskData, config: EvaluateConfig, model_dirs: dict[str, str]) -> dict[str, dict]:
        """Trivial baselines on the same test split, by name (`training.evaluation.baselines`); driver side,
        no fine-tuning. `model_dirs` (name -> local folder) is for baselines that need a model's tokenizer."""
        return {}


def stable_bucket(key: str, buckets: int = 100) -> int:
    """A bucket that depends only on the key (not on Python's hash seed): splits stay fixed across runs."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % buckets


def split_of(key: str) -> str:
    """Fixed 70/10/20 train/valid/test assignment by key (a domain, a page, a query)."""
    bucket = stable_bucket(key)
    if bucket < 20:
        return "test"
    if bucket < 30:
        return "valid"
    return "train"


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise TaskDataError(f"{what}: file not found: {path}")
    return path


def local_source(path: str, task: str, hub_supported: bool = False) -> Path | None:
    """A user path that exists locally (a `s3://` / `gs://` file or folder is downloaded to the local cache
    first); None for a HF dataset name the caller may read with `datasets`.

    Anything else is a clear error: a missing path, or a dataset name without `datasets` installed.
    """
    if fs.is_remote(path):
        try:
            return fetch_dir(path)
        except FileNotFoundError:
            raise TaskDataError(f"{task}: data path not found: {path}") from None
    candidate = Path(path)
    if candidate.exists():
        return candidate
    looks_like_hub_name = "/" in path and not path.startswith(("/", ".", "~")) and path.count("/") == 1
    if not looks_like_hub_name:
        raise TaskDataError(f"{task}: data path not found: {path}")
    if importlib.util.find_spec("datasets") is None:
        raise TaskDataError(f"{task}: {path} is not a local path, and reading a HF dataset by name needs the "
                            "`datasets` package, which is not installed (pip install datasets)")
    if not hub_supported:
        raise TaskDataError(f"{task}: {path} is not a local path; {task} reads local files only (HF dataset "
                            "names are read by the similarity task)")
    return None
