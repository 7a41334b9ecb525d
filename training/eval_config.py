"""The `evaluate:` section of a run config: tasks, search spaces, seeds, scheduling and data limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ALL_TASKS = ["product-matching", "page-type", "attribute-tagging", "similarity", "fill-mask"]


class SearchSpace(BaseModel):
    """A grid of fine-tuning hyperparameters; every point runs once per seed."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: list[float] = Field(default_factory=lambda: [5e-5, 1e-4], description="Peak learning rates.")
    epochs: list[int] = Field(default_factory=lambda: [3], description="Epoch counts (ASHA's max_t is the max).")
    batch_size: list[int] = Field(default_factory=lambda: [16], description="Examples per optimizer step.")


class DataLimits(BaseModel):
    """Caps for quick runs (tests, the demo); None keeps everything."""

    model_config = ConfigDict(extra="forbid")

    train: int | None = Field(None, ge=1, description="Max training examples (pairs, pages, windows).")
    eval: int | None = Field(None, ge=1, description="Max validation and max test examples, each.")
    pages_per_class: int | None = Field(
        None, ge=1, description="page-type: max pages per class in each split (limits extraction work)."
    )
    pages: int | None = Field(None, ge=1, description="attribute-tagging: max product pages read.")
    texts: int | None = Field(None, ge=1, description="fill-mask: max texts read.")


class EvaluateConfig(BaseModel):
    """Settings for `rexbert evaluate` (paper section on downstream evaluation; Ray Tune sweeps)."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(default_factory=lambda: list(ALL_TASKS), description="Tasks run when none is given.")
    seeds: list[int] = Field(default_factory=lambda: [0, 1], description="Seeds per configuration (a grid axis).")
    search_space: SearchSpace = Field(default_factory=SearchSpace, description="Default grid for every task.")
    task_search_space: dict[str, SearchSpace] = Field(
        default_factory=dict, description="Per-task grids replacing the default (keys are task names)."
    )
    asha: bool = Field(False, description="Early-stop weak trials with ASHA (rungs are epochs).")
    asha_grace_period: int = Field(1, ge=1, description="ASHA: epochs every trial runs before it may stop.")
    asha_reduction_factor: int = Field(2, ge=2, description="ASHA: keep 1/factor of trials per rung.")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs reserved per Tune trial (torch threads follow).")
    gpus_per_trial: float = Field(0.0, ge=0, description="GPUs per trial (fractions share a GPU).")
    max_concurrent_trials: int | None = Field(None, ge=1, description="Cap on parallel trials (None: resources).")
    max_seq_length: int = Field(128, ge=16, description="Tokens per example (pairs, pages, windows, texts).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay in fine-tuning.")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Linear warmup share of fine-tuning steps.")
    mask_probability: float = Field(0.15, gt=0, lt=1, description="fill-mask: share of tokens masked.")
    attributes: list[str] = Field(
        default_factory=lambda: ["price", "sku", "brand", "mpn", "gtin"],
        description="attribute-tagging: ground-truth fields tagged (currency symbols and availability "
        "enumerations are left out: a bare '$' or 'InStock' has no meaningful span).",
    )
    similarity_finetune: bool = Field(True, description="similarity: CoSENT fine-tune after the zero-shot score.")
    storage_path: str | None = Field(
        None, description="Tune storage for trial results (shared FS or s3:// on multi-node clusters; None: "
        "OUTPUT/tune). Model folders must likewise be readable from every node.",
    )
    limits: DataLimits = Field(default_factory=DataLimits, description="Data caps for quick runs.")

    def space_for(self, task: str) -> SearchSpace:
        """The grid a task sweeps: its own entry, else the default."""
        return self.task_search_space.get(task, self.search_space)
