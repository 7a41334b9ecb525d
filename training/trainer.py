"""The pretraining loop for one phase, in torchtitan's `Trainer` shape.

`Trainer.__init__` builds in reading order: device and ranks, the phase's shards and tokenizer, the
model on the meta device, parallelize (AC, compile, FSDP2), `to_empty` + `init_weights` (then the weights
of a transformers checkpoint when the phase sets `init_from_hf`, `training.hf_import`; or the previous
phase's weights), optimizer, LR schedule, batch-size plan, checkpointer, metrics. Then
`train_step` (gradient accumulation, clipping, optimizer and schedule step) and `train`.

What keeps the step off the host (GPU throughput): the masking and everything the step needs to know
about a batch (masked count, document layout, FLOPs) are computed on the CPU as the batch is built, the
attention masks are cached per document layout, the optimizer and the gradient clipping never read a
value back, and mixed precision is one mechanism (FSDP2's policy when sharded, autocast otherwise). The
loss and the gradient norm are read once per step, for the metrics.

It runs as one plain process (no torch.distributed: no FSDP, for debugging) or as one rank of a
process group (a Ray Train worker sets one up; FSDP2 shards the model). Nothing here imports Ray:
the Ray job passes its own batch source and hooks.

The phase folder may be a URI (`s3://bucket/runs/demo/general`): checkpoints and the export are staged
locally and uploaded (`training.checkpoint`, `training.export`), `metrics.jsonl` and TensorBoard files are
written to a local staging folder and uploaded at every checkpoint and at the end, and small files
(`run_info.json`, `summary.json`, `manifest.json`) go straight through `infra.core.fs`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from infra.core import fs
from infra.core.config import PhaseConfig, PretrainConfig
from infra.core.manifest import StageStats, build_manifest, write_manifest
from training.attention import AttentionCache
from training.checkpoint import (
    METADATA,
    CheckpointManager,
    ModelState,
    OptimizerState,
    PerRank,
    available_steps,
    latest_checkpoint,
    load_model_weights,
    load_phase_start,
)
from training.metrics import JsonlSink, MetricsProcessor, Sink, TensorBoardSink, format_metrics
from training.mlm import MaskingSpec, count_masked, mask_tokens
from training.model import ModelArgs, ModernBertMLM, attention_flops, matmul_flops_per_token, model_args
from training.optim import build_optimizer, clip_grad_norm_
from training.parallelize import parallelize_model, reshard_after_forward_for, unwrap_state_dict_keys
from training.schedule import WSD, LRSchedule, plan_steps, plan_tokens
from training.staging import absolute, local_dir, publish_dir

logger = logging.getLogger(__name__)

RUN_INFO = "run_info.json"  # per phase: model args, tokenizer and data folders (for `export_checkpoint`)


class BatchSource(Protocol):
    """Packed batches {"input_ids" [B, L], "seq_lens" [B, S], "pad_len" [B]}, with a resumable position."""

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class HostBatch:
    """One micro batch as the step takes it, prepared on the host: corrupted ids and labels (pinned for a GPU), the
    layout (`seq_lens`, the attention cache's key), the masked count and the real tokens and FLOPs."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    seq_lens: torch.Tensor
    num_masked: int
    real_tokens: int
    flops: float


class PreparedBatches:
    """Micro batches prepared ahead of the step, on a host thread, `depth` at a time.

    The thread pulls batches from the source (epoch after epoch) and prepares each with `prepare(batch, number)`:
    masking, the masked count, the FLOPs, pinning. `number` counts the micro batches of the phase on this rank;
    the masking generator is seeded by it, so the masks depend on neither the thread's timing nor on where a run
    resumed. The state is the source's position as of the last batch handed to the step (a prefetched batch is
    not consumed), plus that count.
    """

    def __init__(self, source: BatchSource, prepare: Callable[[dict[str, torch.Tensor], int], HostBatch],
                 depth: int = 2):
        self.source, self.prepare, self.depth = source, prepare, depth
        self.handed = 0
        self._state = {"source": source.state_dict(), "batches": 0}
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()

    def _produce(self, number: int) -> None:
        try:
            empty_epochs = 0  # a state saved after an epoch's last batch resumes into an empty rest of that epoch
            while not self._stop.is_set():
                empty_epochs += 1
                for batch in self.source:
                    empty_epochs = 0
                    item = (self.prepare(batch, number), self.source.state_dict())
                    number += 1
                    while not self._stop.is_set():
                        try:
                            self._queue.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if self._stop.is_set():
                        return
                if empty_epochs > 1:
                    raise RuntimeError("the batch source yields no batch (too few sequences for one micro batch?)")
        except BaseException as err:  # handed to the step, which raises it
            self._queue.put((err, None))

    def next(self) -> HostBatch:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._produce, args=(self.handed,), daemon=True,
                                            name="prepare-batches")
            self._thread.start()
        prepared, source_state = self._queue.get()
        if isinstance(prepared, BaseException):
            raise prepared
        self.handed += 1
        self._state = {"source": source_state, "batches": self.handed}
        return prepared

    def close(self) -> None:
        """Stop the thread (a prefetched batch is dropped; the state stays at the last handed one)."""
        if self._thread is None:
            return
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread = None
        self._queue = queue.Queue(maxsize=self.depth)

    def state_dict(self) -> dict[str, Any]:
        return self._state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.close()
        self.source.load_state_dict(state["source"])
        self.handed = int(state["batches"])
        self._state = {"source": self.source.state_dict(), "batches": self.handed}


@dataclass
class TrainerHooks:
    """Where a launcher (the Ray job) plugs in; called on every rank."""

    on_checkpoint: Callable[[int, Path, dict[str, Any]], None] | None = None  # (step, local folder, metrics)
    sinks: list[Sink] = field(default_factory=list)


def dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def pick_device() -> torch.device:
    """This rank's GPU (LOCAL_RANK, as Ray Train and torchrun set it), else the CPU; gloo groups stay on CPU."""
    on_gloo = dist.is_available() and dist.is_initialized() and dist.get_backend() == "gloo"
    if torch.cuda.is_available() and not on_gloo:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def manifest_weights(manifest: dict[str, Any]) -> dict[str, float]:
    """Source name -> mixture weight of a token set's manifest (as `ray_jobs.tokenize.pack` records it)."""
    return {name: float(src.get("weight", 0)) for name, src in manifest.get("sources", {}).items()}


def read_shard_manifest(data_dir: str, phase: PhaseConfig) -> dict[str, Any]:
    """The shards' manifest (path or URI), checked against the phase (sequence length, mixture)."""
    path = fs.join(data_dir, "manifest.json")
    if not fs.is_file(path):
        raise FileNotFoundError(f"no shard manifest at {path} (run `rexbert tokenize` for phase {phase.name!r})")
    manifest = json.loads(fs.read_text(path))
    if manifest.get("seq_len") != phase.seq_len:
        raise ValueError(f"phase {phase.name!r} wants seq_len {phase.seq_len}, shards in {data_dir} have "
                         f"{manifest.get('seq_len')}")
    if phase.mixture is not None:
        have = manifest_weights(manifest)
        total_have, total_want = sum(have.values()) or 1.0, sum(phase.mixture.values())
        want = {k: v / total_want for k, v in phase.mixture.items()}
        have = {k: v / total_have for k, v in have.items()}
        if set(have) != set(want) or any(abs(have[k] - want[k]) > 1e-6 for k in want):
            raise ValueError(f"phase {phase.name!r} expects mixture {phase.mixture}, shards in {data_dir} hold {have}")
    return manifest


@dataclass(frozen=True)
class PrecisionPlan:
    """How a run computes in bf16: FSDP2's MixedPrecisionPolicy (`param_dtype`) when the model is sharded,
    autocast when it is not; never both (autocast over bf16 parameters only adds casts)."""

    param_dtype: str  # "bf16" or "fp32": the FSDP2 policy's parameter dtype
    autocast: bool  # wrap forward in torch.autocast(bf16)


def precision_plan(setting: str, device_type: str, sharded: bool) -> PrecisionPlan:
    """`parallelism.mixed_precision` (auto: bf16 on CUDA, fp32 on CPU) for a sharded or plain model."""
    bf16 = setting == "bf16" or (setting == "auto" and device_type == "cuda")
    if not bf16:
        return PrecisionPlan("fp32", autocast=False)
    return PrecisionPlan("bf16", autocast=False) if sharded else PrecisionPlan("fp32", autocast=True)


# ModelArgs fields that shape the weights: a phase started from an HF checkpoint takes them from it.
ARCHITECTURE_FIELDS = ("vocab_size", "dim", "n_layers", "intermediate", "n_heads", "global_attn_every_n_layers",
                       "local_attention_window", "norm_eps", "decoder_bias")


def build_model_args(config: PretrainConfig, phase: PhaseConfig, tokenizer, device: torch.device,
                     base: ModelArgs | None = None) -> ModelArgs:
    """Preset + token ids from the tokenizer + the phase's RoPE thetas and length + user overrides.

    `base` (the ModelArgs an HF checkpoint defines, `training.hf_import.checkpoint_args`) replaces the
    preset: its shape and vocabulary (the embedding rows, which may outnumber the tokenizer's tokens) stay,
    and an override that contradicts them is refused.
    """
    backend = config.model.attention
    if backend == "auto":
        backend = "flex" if device.type == "cuda" else "sdpa"
    fields = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "global_rope_theta": phase.rope_theta_global,
        "local_rope_theta": phase.rope_theta_local,
        "max_seq_len": phase.seq_len,
        "attention_backend": backend,
        **config.model.overrides,
    }
    if base is None:
        return model_args(config.model.preset, **fields)
    fields.pop("vocab_size")
    clash = {k: v for k, v in config.model.overrides.items() if k in ARCHITECTURE_FIELDS and v != getattr(base, k)}
    if clash:
        raise ValueError(f"pretrain.model.overrides {clash} contradict checkpoint {phase.init_from_hf!r}, which "
                         f"phase {phase.name!r} starts from")
    for kind, theirs in (("global", base.global_rope_theta), ("local", base.local_rope_theta)):
        if fields[f"{kind}_rope_theta"] != theirs:
            logger.warning("phase %s uses rope_theta_%s %s, checkpoint %s was trained with %s", phase.name, kind,
                           fields[f"{kind}_rope_theta"], phase.init_from_hf, theirs)
    return replace(base, **fields)


class Trainer:
    # core config
    config: PretrainConfig
    phase: PhaseConfig
    phase_dir: str  # a path or URI
    local_dir: Path  # phase_dir itself, or its local staging folder when phase_dir is remote
    # components
    model: ModernBertMLM
    optimizer: torch.optim.Optimizer
    lr_schedule: LRSchedule
    batches: PreparedBatches
    checkpointer: CheckpointManager
    metrics: MetricsProcessor
    # runtime state (checkpointed through `state_dict`)
    step: int
    tokens: int
    last_loss: float  # NaN before the first step; a run resumed at the end of its phase still reports it

    def __init__(self, config: PretrainConfig, phase: PhaseConfig, phase_dir: str | Path, data_dir: str | Path,
                 seed: int = 0, batches: BatchSource | None = None, init_from: str | Path | None = None,
                 hooks: TrainerHooks | None = None):
        from training.tokenizer import load_tokenizer

        self.config, self.phase, self.seed = config, phase, seed
        self.phase_dir, self.data_dir = str(phase_dir), str(data_dir)
        self.local_dir = local_dir(self.phase_dir)
        self.hooks = hooks or TrainerHooks()
        self.rank, self.world_size = dist_info()
        self.device = pick_device()
        self.step, self.tokens, self.last_loss, self.losses = 0, 0, float("nan"), []

        # data: shards (a path or URI) checked against the phase, tokenizer from the shard folder
        self.manifest = read_shard_manifest(self.data_dir, phase)
        self.tokenizer_dir = fs.join(self.data_dir, self.manifest.get("tokenizer", {}).get("path", "tokenizer"))
        tokenizer = load_tokenizer(self.tokenizer_dir)
        micro = config.data.micro_batch_size
        if batches is None:
            from training.data import PackedShardLoader

            batches = PackedShardLoader(fs.join(self.data_dir, "train"), batch_size=micro, rank=self.rank,
                                        world_size=self.world_size, seed=seed, shuffle=config.data.shuffle,
                                        drop_last=True, shuffle_tokens=config.data.shuffle_tokens)
        source = batches

        # model: meta -> parallelize -> to_empty -> init (then an HF checkpoint's or the previous phase's weights)
        self.hf_checkpoint, base_args = None, None
        if phase.init_from_hf is not None:
            from training.hf_import import check_token_set, checkpoint_args, resolve_checkpoint

            if init_from is not None:
                raise ValueError(f"phase {phase.name!r} sets both init_from and init_from_hf: start from one")
            self.hf_checkpoint = resolve_checkpoint(phase.init_from_hf)
            base_args = checkpoint_args(self.hf_checkpoint, phase.init_from_hf)
            check_token_set(self.hf_checkpoint, phase.init_from_hf, base_args, tokenizer, self.manifest,
                            self.data_dir)
        self.model_args = build_model_args(config, phase, tokenizer, self.device, base=base_args)
        use_fsdp = config.parallelism.fsdp == "on" or (config.parallelism.fsdp == "auto" and self.world_size > 1)
        self.fsdp = use_fsdp
        if not use_fsdp and self.world_size > 1:  # nothing else syncs gradients: N copies would drift apart
            raise ValueError(f"parallelism.fsdp=off with {self.world_size} workers: use 'auto' or 'on'")
        if use_fsdp and not dist.is_initialized():
            raise RuntimeError("parallelism.fsdp=on needs torch.distributed (run under Ray Train or torchrun)")
        self.precision = precision_plan(config.parallelism.mixed_precision, self.device.type, use_fsdp)
        self.unit = micro * self.world_size
        self.plan = plan_steps(phase.tokens, phase.seq_len, phase.global_batch_size, self.unit,
                               phase.schedule.start_batch_size, phase.schedule.batch_warmup_tokens, phase.max_steps)
        self.max_accum_steps = max(self.plan, default=self.unit) // self.unit
        mesh = None
        if use_fsdp:
            from torch.distributed.device_mesh import init_device_mesh

            mesh = init_device_mesh(self.device.type, (self.world_size,), mesh_dim_names=("dp",))
        with torch.device("meta"):
            model = ModernBertMLM(self.model_args)
        parallelize_model(model, self.model_args, self.device.type, mesh,
                          compile=config.parallelism.compile and self.device.type == "cuda",
                          ac=config.parallelism.activation_checkpointing, mp=self.precision.param_dtype,
                          reshard_after_forward=reshard_after_forward_for(self.max_accum_steps))
        model.to_empty(device=self.device)
        torch.manual_seed(seed)
        model.init_weights()
        if self.hf_checkpoint is not None:
            from training.hf_import import load_hf_weights

            load_hf_weights(model, self.hf_checkpoint, self.model_args, phase.init_from_hf)
            logger.info("phase %s starts from the weights of %s", phase.name, phase.init_from_hf)
        self.model = model
        self.attention = AttentionCache(phase.seq_len, self.model_args.local_attention_window,
                                        self.model_args.attention_backend, self.device)

        # optimizer, then the previous phase's weights and moments, then the LR over the steps planned
        peak_lr = phase.lr if phase.lr is not None else config.optim.lr
        self.optimizer = build_optimizer(self.model, config.optim, lr=peak_lr)
        self.init_from = init_from if init_from is not None else phase.init_from_hf  # what the phase starts from
        self.carried_optimizer_state = False
        if init_from is not None:  # a previous phase's checkpoint (an HF checkpoint has no optimizer state)
            self.carried_optimizer_state = load_phase_start(self.model, self.optimizer, init_from)
            logger.info("phase %s starts from %s (optimizer moments %s)", phase.name, init_from,
                        "carried" if self.carried_optimizer_state else "fresh")
        # The schedule spans the steps this phase runs (max_steps included), not the nominal token budget.
        schedule_tokens = min(phase.tokens, plan_tokens(self.plan, phase.seq_len))
        self.lr_schedule = LRSchedule(self.optimizer, WSD.from_config(phase.schedule, peak_lr, schedule_tokens),
                                      next_step_tokens=self._step_tokens(0))

        # masking: one generator per rank, checkpointed with the other RNGs
        mask_rate = phase.mask_rate if phase.mask_rate is not None else config.mlm.mask_rate
        self.masking = MaskingSpec(
            mask_token_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
            special_token_ids=tuple(tokenizer.all_special_ids), mask_rate=mask_rate,
            mask_token_share=config.mlm.mask_token_share, random_token_share=config.mlm.random_token_share)
        self.batches = PreparedBatches(source, self._prepare)

        self.checkpointer = CheckpointManager(
            fs.join(self.phase_dir, "checkpoints"),
            {"model": ModelState(self.model), "optimizer": OptimizerState(self.model, self.optimizer),
             "lr_schedule": self.lr_schedule, "train_state": self, "data": PerRank(self.batches, self.rank)},
            interval=config.checkpoint.interval, keep_latest_k=config.checkpoint.keep_latest_k)

        sinks: list[Sink] = list(self.hooks.sinks)
        if self.rank == 0:
            self._stage_logs()
            sinks.append(JsonlSink(self.local_dir / "metrics.jsonl"))
            if config.metrics.tensorboard:
                sinks.append(TensorBoardSink(self.local_dir / "tb"))
        # FLOPs: matmuls per real token (head and decoder on the masked share) + attention per batch layout
        self.matmul_flops_per_token = matmul_flops_per_token(self.model_args, mask_rate)
        self.metrics = MetricsProcessor(self.device, self.matmul_flops_per_token, config.metrics.log_interval,
                                        sinks, self.world_size)
        if self.rank == 0:
            fs.write_text(fs.join(self.phase_dir, RUN_INFO), json.dumps(
                {"model_args": asdict(self.model_args), "tokenizer_dir": absolute(self.tokenizer_dir),
                 "data_dir": absolute(self.data_dir)}, indent=2))
        logger.info("phase %s: %d steps, %d params, world %d, device %s, fsdp %s, precision %s", phase.name,
                    len(self.plan), self.model.num_params(), self.world_size, self.device, use_fsdp, self.precision)

    @property
    def total_steps(self) -> int:
        return len(self.plan)

    def _step_tokens(self, step: int) -> int:
        """Tokens (sequence slots) of step `step` (0-based) of the plan; 0 past its end."""
        return self.plan[step] * self.phase.seq_len if step < len(self.plan) else 0

    def _stage_logs(self) -> None:
        """A remote phase's logs continue from what was uploaded (a resumed run appends to them), never
        from a staging folder left by an earlier run under the same URI."""
        if not fs.is_remote(self.phase_dir):
            return
        shutil.rmtree(self.local_dir / "tb", ignore_errors=True)
        (self.local_dir / "metrics.jsonl").unlink(missing_ok=True)
        uploaded = fs.join(self.phase_dir, "metrics.jsonl")
        if fs.is_file(uploaded):
            self.local_dir.mkdir(parents=True, exist_ok=True)
            (self.local_dir / "metrics.jsonl").write_bytes(fs.read_bytes(uploaded))

    def publish_logs(self) -> None:
        """Rank 0 uploads metrics.jsonl and the TensorBoard files of a remote phase."""
        if self.rank != 0 or not fs.is_remote(self.phase_dir):
            return
        if (self.local_dir / "metrics.jsonl").is_file():
            fs.write_bytes(fs.join(self.phase_dir, "metrics.jsonl"), (self.local_dir / "metrics.jsonl").read_bytes())
        if (self.local_dir / "tb").is_dir():
            publish_dir(self.local_dir / "tb", fs.join(self.phase_dir, "tb"))

    # --- Stateful: the step counter, tokens seen and the last loss travel with the checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "tokens": self.tokens, "last_loss": self.last_loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.tokens, self.last_loss = int(state["step"]), int(state["tokens"]), float(state["last_loss"])

    def resume(self, path: str | Path | None = None) -> int | None:
        """Load everything from `path`, or from the latest checkpoint of this phase; returns the step."""
        step = self.checkpointer.load(path=path)
        self.lr_schedule.set_next_step_tokens(self._step_tokens(self.step))
        return step

    def _prepare(self, batch: dict[str, torch.Tensor], number: int) -> HostBatch:
        """Host thread (`PreparedBatches`): everything the step needs to know about micro batch `number`, from the
        loader's CPU tensors, so nothing waits for the device: the masking (its generator seeded by run seed, rank
        and `number`), the masked count (`num_masked`: the sparse head then needs no sync), the real tokens and
        the FLOPs; pinned when the step runs on a GPU, so the copy overlaps."""
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, self.rank, number]).generate_state(1)[0]))
        seq_lens, pad_len = batch["seq_lens"], batch["pad_len"]
        ids, labels = mask_tokens(batch["input_ids"].long(), self.masking, generator)
        real = int(batch["input_ids"].numel() - pad_len.sum())
        flops = real * self.matmul_flops_per_token + attention_flops(self.model_args, seq_lens, pad_len)
        if self.device.type == "cuda":
            ids, labels = ids.pin_memory(), labels.pin_memory()
        return HostBatch(ids, labels, seq_lens, count_masked(labels), real, flops)

    def _next_micro_batch(self) -> tuple[dict[str, Any], int, float]:
        """The next prepared micro batch, moved to the device, with its attention inputs (cached per layout)."""
        started = time.perf_counter()
        prepared = self.batches.next()
        attn = self.attention.get(prepared.seq_lens)
        self.metrics.add_data_time(time.perf_counter() - started)
        to = {"non_blocking": True}
        return {"input_ids": prepared.input_ids.to(self.device, **to), "labels": prepared.labels.to(self.device, **to),
                "attn": attn, "num_masked": prepared.num_masked}, prepared.real_tokens, prepared.flops

    def train_step(self, batch_size: int) -> tuple[float, float, int, float]:
        """One optimizer step over `batch_size` sequences (gradient accumulation); returns loss, grad norm,
        real tokens and model FLOPs on this rank."""
        accum = batch_size // self.unit
        loss_sum = torch.zeros((), device=self.device)
        real_tokens, flops = 0, 0.0
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision.autocast
                    else nullcontext())
        for micro in range(accum):
            if hasattr(self.model, "set_requires_gradient_sync"):  # FSDP2: reduce grads on the last one only
                self.model.set_requires_gradient_sync(micro == accum - 1)
            batch, real, batch_flops = self._next_micro_batch()
            real_tokens += real
            flops += batch_flops
            with autocast:
                loss = self.model(**batch).loss / accum
            loss.backward()
            loss_sum += loss.detach()
        grad_norm = clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)  # one all-reduce
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_schedule.step(batch_size * self.phase.seq_len, next_step_tokens=self._step_tokens(self.step + 1))
        if self.world_size > 1:
            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        return float(loss_sum), float(grad_norm), real_tokens, flops

    def train(self, until_step: int | None = None) -> dict[str, Any]:
        """Run to the end of the phase (or `until_step`, else `pretrain.stop_after_steps`), saving checkpoints
        (always one where the run stops); returns a summary."""
        from tqdm import tqdm

        stop = min(self.total_steps, until_step or self.config.stop_after_steps or self.total_steps)
        self.model.train()
        progress = tqdm(total=self.total_steps, initial=self.step, desc=f"pretrain {self.phase.name}",
                        disable=self.rank != 0 or not self.config.metrics.progress, dynamic_ncols=True)
        self.metrics.start_window()  # building the model and loading a checkpoint are not training time
        while self.step < stop:
            batch_size = self.plan[self.step]
            lr = self.lr_schedule.lr
            loss, grad_norm, real_tokens, flops = self.train_step(batch_size)
            self.step += 1
            self.tokens += batch_size * self.phase.seq_len
            self.losses.append(loss)
            self.last_loss = loss
            values = self.metrics.step(self.step, loss, grad_norm, lr, real_tokens, batch_size,
                                       force=self.step == self.total_steps, flops=flops)
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}")
            if values is not None and self.rank == 0:
                logger.info("step %d/%d  %s", self.step, self.total_steps, format_metrics(values))
            save_started = time.perf_counter()
            path = self.checkpointer.save(self.step, force=self.step in (self.total_steps, stop))
            if path is not None:
                self.publish_logs()  # the logs on the store stay as far along as its checkpoints
            self.metrics.leave_out(time.perf_counter() - save_started)
            if path is not None and self.hooks.on_checkpoint is not None:
                self.hooks.on_checkpoint(self.step, path, {"loss": loss, "step": self.step, "tokens": self.tokens})
            self.maybe_inject_fault()
        progress.close()
        return self.summary()

    def maybe_inject_fault(self) -> None:
        """Testing only: the configured rank dies once at the configured step (a marker file says it did)."""
        fault = self.config.fault_injection
        if fault.step is None or self.step != fault.step or self.rank != fault.rank:
            return
        marker = fault.marker or fs.join(self.phase_dir, ".fault-injected")
        if fs.exists(marker):
            return
        fs.write_text(marker, f"rank {self.rank} died at step {self.step}\n")
        logger.warning("fault injection: rank %d exits at step %d", self.rank, self.step)
        os._exit(1)

    def summary(self) -> dict[str, Any]:
        last = self.metrics.last
        return {"phase": self.phase.name, "steps": self.step, "total_steps": self.total_steps,
                "init_from": str(self.init_from) if self.init_from else None, "tokens": self.tokens,
                "sequences": self.tokens // self.phase.seq_len,
                "final_loss": None if math.isnan(self.last_loss) else self.last_loss, "losses": list(self.losses),
                "tokens_per_s": last.get("tokens_per_s"),
                "tokens_per_s_per_device": last.get("tokens_per_s_per_device"), "mfu": last.get("mfu"),
                "seq_len": self.phase.seq_len, "rope_theta_global": self.model_args.global_rope_theta,
                "rope_theta_local": self.model_args.local_rope_theta, "world_size": self.world_size,
                "fsdp": self.fsdp}

    def export(self, out_dir: str | Path | None = None) -> str | None:
        """HF export (path or URI) of the current weights with the tokenizer; collective under FSDP, written
        by rank 0."""
        from training.export import export_hf

        out_dir = str(out_dir) if out_dir else fs.join(self.phase_dir, "export")
        state = unwrap_state_dict_keys(self.model)
        if self.rank == 0:
            export_hf(state, self.model_args, out_dir, self.tokenizer_dir)
        if self.world_size > 1:
            dist.barrier()
        return out_dir if self.rank == 0 else None

    def close(self) -> None:
        self.batches.close()
        self.metrics.close()
        self.publish_logs()


def previous_phase_checkpoint(run_dir: str | Path, phase: PhaseConfig) -> str | None:
    """The final checkpoint (path or URI) of the phase this one starts from (None without `init_from`)."""
    if phase.init_from is None:
        return None
    folder = fs.join(run_dir, phase.init_from, "checkpoints")
    path = latest_checkpoint(folder)
    if path is None:
        raise FileNotFoundError(f"phase {phase.name!r} starts from {phase.init_from!r}, which has no checkpoint "
                                f"under {folder}; run that phase first")
    return path


def write_phase_manifest(phase_dir: str, summary: dict[str, Any], config: PretrainConfig, data_dir: str,
                         seconds: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`<phase_dir>/manifest.json` of a finished phase. Counts are sequences: every sequence the phase
    consumed (over all its runs, resumed ones included) was trained on, none is filtered."""
    stats = StageStats(input=summary["sequences"], kept=summary["sequences"], seconds=seconds)
    folder = fs.join(phase_dir, "checkpoints")
    manifest = build_manifest(
        f"pretrain.{summary['phase']}", stats, config=config, inputs=[absolute(data_dir)],
        outputs={"checkpoints": folder, "export": summary.get("export")}, seconds=seconds,
        extra={"steps": summary["steps"], "tokens": summary["tokens"], "final_loss": summary["final_loss"],
               "tokens_per_s": summary["tokens_per_s"], "export": summary.get("export"),
               "checkpoints": [fs.join(folder, f"step-{s:08d}") for s in available_steps(folder)],
               "init_from": summary["init_from"], "world_size": summary["world_size"], **(extra or {})})
    write_manifest(phase_dir, manifest)
    return manifest


def run_phase_local(config: PretrainConfig, phase: PhaseConfig, run_dir: str | Path, data_dir: str | Path,
                    seed: int = 0, resume: bool = False, export: bool = True,
                    init_from: str | None = None) -> dict[str, Any]:
    """One phase as one plain process (no Ray, no FSDP): the debugging path, and the study's. `run_dir` and
    `data_dir` are paths or URIs. `init_from`: a checkpoint to start from instead of the final one of the phase's
    `init_from` under `run_dir` (a study's arms start from one shared base run)."""
    started = time.perf_counter()
    phase_dir = fs.join(run_dir, phase.name)
    if not resume and latest_checkpoint(fs.join(phase_dir, "checkpoints")) is not None:
        raise FileExistsError(f"{phase_dir} already has checkpoints: pass resume=True (--resume) or use a new run dir")
    trainer = Trainer(config, phase, phase_dir, data_dir, seed=seed,
                      init_from=init_from or previous_phase_checkpoint(run_dir, phase))
    if resume:
        trainer.resume()
    summary = trainer.train()
    summary["export"] = trainer.export() if export else None
    trainer.close()
    write_phase_manifest(phase_dir, summary, config, str(data_dir), time.perf_counter() - started)
    return summary


def run_local(config: Any, phases: list[str] | None = None, resume: bool = False) -> dict[str, Any]:
    """Phases in one plain process (no Ray, no FSDP), for debugging; `config` is the whole run config."""
    from infra.core.config import load_phase, resolve_data_path, resolve_run_dir, write_resolved_config

    pretrain: PretrainConfig = config.pretrain
    run_dir = resolve_run_dir(pretrain, config.run.output, config.run.name)
    results = {}
    for name in phases or list(pretrain.phases):
        phase = load_phase(pretrain, name)
        data_dir = resolve_data_path(pretrain, phase, config.run.output)
        write_resolved_config(config, fs.join(run_dir, name))
        results[name] = run_phase_local(pretrain, phase, run_dir, data_dir, seed=config.run.seed, resume=resume)
    return results


def _modified(uri: str) -> float:
    filesystem, path = fs.resolve(uri)
    mtime = filesystem.get_file_info(path).mtime
    return mtime.timestamp() if mtime is not None else 0.0


def find_phase_dir(run_dir: str | Path, phase: str | None = None) -> str:
    """A phase folder of a run (path or URI): `phase`, or the one with the newest checkpoint (run_dir may be
    a phase folder)."""
    run_dir = str(run_dir).rstrip("/")
    if fs.is_file(fs.join(run_dir, RUN_INFO)):
        return run_dir
    if phase is not None:
        return fs.join(run_dir, phase)
    phase_dirs = [fs.parent_of(f) for f in fs.list_files(run_dir)
                  if fs.name_of(f) == RUN_INFO and fs.parent_of(fs.parent_of(f)) == run_dir]
    latest = {p: latest_checkpoint(fs.join(p, "checkpoints")) for p in phase_dirs}
    candidates = {p: c for p, c in latest.items() if c is not None}
    if not candidates:
        raise FileNotFoundError(f"no phase with a checkpoint under {run_dir}")
    return max(candidates, key=lambda p: _modified(fs.join(candidates[p], METADATA)))


def export_checkpoint(run_dir: str | Path, out_dir: str | Path, phase: str | None = None) -> str:
    """HF export (config, safetensors, tokenizer) of a phase's latest DCP checkpoint, in one process; the run
    folder and the export may be paths or URIs."""
    from dataclasses import replace

    from training.export import export_hf

    phase_dir = find_phase_dir(run_dir, phase)
    info = json.loads(fs.read_text(fs.join(phase_dir, RUN_INFO)))
    checkpoint = latest_checkpoint(fs.join(phase_dir, "checkpoints"))
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint under {fs.join(phase_dir, 'checkpoints')}")
    args = replace(ModelArgs(**info["model_args"]), attention_backend="sdpa")
    model = ModernBertMLM(args)
    model.init_weights()  # buffers (RoPE); every parameter is then overwritten by the checkpoint
    load_model_weights(model, checkpoint)
    logger.info("exporting %s to %s", checkpoint, out_dir)
    return export_hf(model, args, out_dir, info["tokenizer_dir"])
