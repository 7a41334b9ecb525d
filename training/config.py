"""The `pretrain:` section of a run config, and the per-phase configs in `training/phases/*.yaml`.

One section per concern (model, data, mlm, optim, schedule, parallelism, checkpoint, metrics) holds
the run-wide defaults. A phase (general pretraining, context extension, decay; ModernBERT / Ettin /
RexBERT paper) is its own small YAML file that sets what changes between phases: sequence length,
RoPE thetas, data mixture, token budget, batch size, masking rate, learning rate and schedule shape.
Each phase starts from the final checkpoint of the phase named in `init_from`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PHASES_DIR = Path(__file__).resolve().parent / "phases"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    preset: Literal["tiny", "micro", "mini", "base", "large"] = Field(
        "tiny", description="Model preset (Ettin shapes): tiny (tests), micro 17M, mini 68M, base 150M, large 400M."
    )
    attention: Literal["auto", "sdpa", "flex"] = Field(
        "auto", description="Attention backend over packed sequences: auto = flex on CUDA, sdpa on CPU."
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="ModelArgs fields replacing the preset's (e.g. {n_layers: 2})."
    )


class DataSection(_Section):
    root: str | None = Field(
        None, description="Folder holding the phases' shard folders (None: <run.output>/tokens)."
    )
    micro_batch_size: int = Field(8, ge=1, description="Sequences per rank per forward pass.")
    shuffle: bool = Field(True, description="Visit the sequences in a new seeded order every epoch.")
    materialize: bool = Field(
        False, description="Ray path: build the ordered dataset once in the object store (small token sets only).")


class MlmSection(_Section):
    mask_rate: float = Field(0.30, gt=0, lt=1, description="Share of maskable tokens chosen (ModernBERT: 30%).")
    mask_token_share: float = Field(0.8, ge=0, le=1, description="Chosen tokens replaced by [MASK].")
    random_token_share: float = Field(0.1, ge=0, le=1, description="Chosen tokens replaced by a random token.")


class OptimSection(_Section):
    name: Literal["stableadamw", "adamw"] = Field("stableadamw", description="StableAdamW (torch-optimi) or AdamW.")
    lr: float = Field(8e-4, gt=0, description="Peak learning rate (ModernBERT base: 8e-4).")
    betas: tuple[float, float] = Field((0.9, 0.98), description="Adam betas.")
    eps: float = Field(1e-6, gt=0, description="Adam epsilon.")
    weight_decay: float = Field(1e-5, ge=0, description="Decoupled weight decay (not on norms, biases, embeddings).")
    decouple_lr: bool = Field(True, description="StableAdamW: weight decay independent of the LR (ModernBERT).")
    grad_clip: float | None = Field(1.0, gt=0, description="Max global gradient norm (None: no clipping).")


class ScheduleSection(_Section):
    warmup_tokens: int = Field(3_000_000_000, ge=0, description="Linear LR warmup length in tokens.")
    decay_fraction: float = Field(0.0, ge=0, le=1, description="Share of the phase budget spent decaying at the end.")
    decay_shape: Literal["1-sqrt", "linear", "cosine"] = Field("1-sqrt", description="Shape of the final decay.")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="LR at the end of decay, as a share of the peak.")
    batch_warmup_tokens: int = Field(0, ge=0, description="Tokens over which the batch size grows (0: off).")
    start_batch_size: int | None = Field(
        None, ge=1, description="Global batch (sequences) at the start of batch-size warmup (None: off)."
    )


class ParallelismSection(_Section):
    fsdp: Literal["auto", "on", "off"] = Field("auto", description="FSDP2 fully_shard: auto = on when world > 1.")
    compile: bool = Field(False, description="torch.compile each block (CUDA only; ignored on CPU).")
    activation_checkpointing: Literal["none", "full"] = Field("none", description="Recompute blocks in backward.")
    mixed_precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto = bf16 on CUDA, fp32 on CPU.")


class CheckpointSection(_Section):
    interval: int = Field(500, ge=1, description="Save every N optimizer steps (and always at the end).")
    keep_latest_k: int = Field(3, ge=1, description="Checkpoints kept per phase; older ones are deleted.")
    max_failures: int = Field(3, ge=0, description="Ray Train restarts from the last checkpoint after a failure.")


class MetricsSection(_Section):
    log_interval: int = Field(10, ge=1, description="Log metrics every N steps.")
    tensorboard: bool = Field(True, description="Write TensorBoard event files under <phase dir>/tb.")
    progress: bool = Field(True, description="Show a tqdm progress bar on rank 0.")


class FaultInjectionSection(_Section):
    """For the fault-tolerance test: one worker dies once, Ray Train must restart it."""

    step: int | None = Field(None, ge=1, description="Kill a worker after this step (None: never).")
    rank: int = Field(1, ge=0, description="Rank that dies.")
    marker: str | None = Field(None, description="File created before dying, so the restart runs through.")


class PhaseConfig(_Section):
    """One training phase, as read from `training/phases/<name>.yaml`."""

    name: str = Field(..., description="Phase name; also the output folder under the run directory.")
    description: str = Field("", description="What the phase is for (free text).")
    init_from: str | None = Field(None, description="Phase whose final checkpoint seeds the weights (None: init).")
    seq_len: int = Field(..., ge=8, description="Packed sequence length (must match the shards).")
    rope_theta_global: float = Field(10_000.0, gt=0, description="RoPE base of global-attention layers.")
    rope_theta_local: float = Field(10_000.0, gt=0, description="RoPE base of sliding-window layers.")
    data: str = Field(..., description="Packed shard folder (DIR/train, DIR/validation, DIR/manifest.json), "
                      "relative to pretrain.data.root unless absolute.")
    mixture: dict[str, float] | None = Field(
        None, description="Source weights the shards must hold (the tokenize step mixes them; checked against "
        "the shard manifest; None: not checked).")
    tokens: int = Field(..., ge=1, description="Token budget of the phase (sequence slots, pad included).")
    max_steps: int | None = Field(None, ge=1, description="Stop earlier than the budget (None: budget only).")
    global_batch_size: int = Field(..., ge=1, description="Sequences per optimizer step after batch warmup.")
    mask_rate: float | None = Field(None, gt=0, lt=1, description="Masking rate (None: pretrain.mlm.mask_rate).")
    lr: float | None = Field(None, gt=0, description="Peak LR (None: pretrain.optim.lr).")
    schedule: ScheduleSection = Field(default_factory=ScheduleSection, description="LR and batch-size schedule.")


class PretrainConfig(_Section):
    """Settings for `rexbert pretrain` (paper: three phases, ModernBERT recipe)."""

    run_dir: str | None = Field(None, description="Run folder (None: <run.output>/runs/<run.name>).")
    model: ModelSection = Field(default_factory=ModelSection, description="Model preset and backend.")
    data: DataSection = Field(default_factory=DataSection, description="Where the shards are, batch shape.")
    mlm: MlmSection = Field(default_factory=MlmSection, description="Masked-language-model corruption.")
    optim: OptimSection = Field(default_factory=OptimSection, description="Optimizer.")
    parallelism: ParallelismSection = Field(default_factory=ParallelismSection, description="FSDP2 and friends.")
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection, description="DCP checkpoints.")
    metrics: MetricsSection = Field(default_factory=MetricsSection, description="Logging.")
    fault_injection: FaultInjectionSection = Field(
        default_factory=FaultInjectionSection, description="Testing only: kill one worker once."
    )
    phases: dict[str, str] = Field(
        default_factory=lambda: {"general": "general.yaml", "context": "context.yaml", "decay": "decay.yaml"},
        description="Phase name -> phase YAML, in run order (relative names are looked up in training/phases/).",
    )
    phase_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-phase field overrides, e.g. {general: {max_steps: 10}}."
    )
    workers: int = Field(2, ge=1, description="Ray Train workers (FSDP2 ranks).")
    use_gpu: bool = Field(False, description="One GPU per Ray Train worker (backend nccl; else gloo).")
    cpus_per_worker: float = Field(
        0.5, gt=0, description="CPUs reserved per Ray Train worker (fractions leave room for Ray Data)."
    )


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def phase_file(ref: str) -> Path:
    """A phase YAML: a path as given when it exists, else a file in `training/phases/`."""
    path = Path(ref)
    if path.is_file():
        return path
    packaged = PHASES_DIR / ref
    if packaged.is_file():
        return packaged
    raise FileNotFoundError(f"phase config not found: {ref} (nor {packaged})")


def load_phase(config: PretrainConfig, name: str) -> PhaseConfig:
    """The validated config of phase `name`, with `pretrain.phase_overrides[name]` applied."""
    if name not in config.phases:
        raise ValueError(f"unknown phase {name!r}; this config has {list(config.phases)}")
    path = phase_file(config.phases[name])
    data = yaml.safe_load(path.read_text()) or {}
    data = _deep_merge(data, config.phase_overrides.get(name, {}))
    try:
        phase = PhaseConfig.model_validate(data)
    except ValidationError as err:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ValueError(f"invalid phase config {path}: {fields}") from None
    if phase.name != name:
        raise ValueError(f"phase file {path} is named {phase.name!r}, expected {name!r}")
    if phase.init_from is not None and phase.init_from not in config.phases:
        raise ValueError(f"phase {name!r} starts from unknown phase {phase.init_from!r}")
    return phase


def resolve_data_path(config: PretrainConfig, phase: PhaseConfig, output_root: str | Path) -> Path:
    """The shard folder of a phase."""
    path = Path(phase.data)
    if path.is_absolute():
        return path
    root = Path(config.data.root) if config.data.root else Path(output_root) / "tokens"
    return root / path


def resolve_run_dir(config: PretrainConfig, output_root: str | Path, run_name: str) -> Path:
    return Path(config.run_dir) if config.run_dir else Path(output_root) / "runs" / run_name
