"""Pretraining on Ray Train: one `TorchTrainer` per phase, FSDP2 on every worker, data from Ray Data.

Each phase runs `training.trainer.Trainer` inside the Ray Train workers: Ray sets up the process group
(gloo on CPU, NCCL on GPU), the Trainer shards the model with FSDP2 (`training.parallelize.apply_fsdp`;
not `ray.train.torch.prepare_model`, which is DDP/FSDP1 and refuses CPU), reads its block of every
global batch from its own Ray Data stream of the token set (`ray_jobs.loader.RayPackedBatches`: the same batches as
the plain `training.data.PackedShardLoader`, from the position its checkpoint holds), and saves DCP checkpoints in
the run directory, each reported to Ray Train with `ray.train.report(..., checkpoint=...)`. When a worker dies,
Ray Train restarts the group (`FailureConfig.max_failures`) and every worker resumes from
`ray.train.get_checkpoint()` (or from the run folder's latest checkpoint when Ray had not yet committed the last
report): model, optimizer, LR schedule and data position. `--resume` continues a stopped run from the latest
checkpoint in the run directory. Phases chain: each starts from the previous phase's final checkpoint.

The run directory may be a URI (`s3://bucket/runs/demo`): the Trainer stages checkpoints and the export
locally and uploads them, and Ray Train keeps its own storage there too (`storage_filesystem`). Every
phase ends with `<run_dir>/<phase>/manifest.json` and `summary.json`, beside the run's
`config.resolved.yaml`; everything a phase does comes from the config (demo settings included:
`infra/configs/demo.yaml`).

    run_phase(config, "general", resume=False, workers=2, address=None)
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import ray
import ray.train
import torch
from ray.train import (
    Checkpoint,
    CheckpointConfig,
    FailureConfig,
    RunConfig,
    ScalingConfig,
    TrainingFailedError,
    UserCallback,
)
from ray.train.torch import TorchConfig, TorchTrainer

from infra.core import fs
from infra.core.config import (
    PhaseConfig,
    PretrainConfig,
    RayConfig,
    RexbertConfig,
    check_ray_address,
    config_from_dict,
    load_phase,
    resolve_data_path,
    resolve_run_dir,
    write_resolved_config,
)
from infra.core.manifest import InputError, check_upstream
from ray_jobs.loader import RayPackedBatches
from ray_jobs.runtime import ray_runtime
from training.checkpoint import latest_checkpoint, step_of
from training.data import usable_per_epoch
from training.schedule import plan_steps
from training.staging import absolute
from training.trainer import (
    Trainer,
    TrainerHooks,
    previous_phase_checkpoint,
    read_shard_manifest,
    write_phase_manifest,
)

logger = logging.getLogger(__name__)


# Worker errors that no restart can fix: the same config, shards and checkpoints fail the same way again (a bad
# shard shape, a config the Trainer refuses, a missing file). A worker that died, a lost connection or an
# out-of-memory error is worth the restart `FailureConfig.max_failures` allows; these are not.
NOT_RETRYABLE: tuple[type[BaseException], ...] = (
    ValueError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError,
)


def worker_exception(error: BaseException) -> BaseException:
    """The exception a Train worker raised, out of Ray's wrappers (`UserExceptionWithTraceback`, RayTaskError)."""
    for _ in range(5):
        inner = getattr(error, "_base_exc", None) or getattr(error, "cause", None)
        if not isinstance(inner, BaseException):
            return error
        error = inner
    return error


class UnrecoverableWorkerError(RuntimeError):
    """A worker raised an error in NOT_RETRYABLE; raised on the Train controller, which then does not retry."""

    def __init__(self, rank: int, error: BaseException):
        super().__init__(f"rank {rank}: {error}")
        self.rank, self.error = rank, error

    def __reduce__(self):
        return (self.__class__, (self.rank, self.error))


class StopOnUnrecoverable(UserCallback):
    """Ray Train (V2) restarts the worker group after any worker error, up to `FailureConfig.max_failures`
    times, and lets no worker mark an error final. This callback runs on the controller when workers fail: for
    an error in NOT_RETRYABLE it raises, and an error raised on the controller ends the run (a ControllerError,
    not retried) instead of restarting it to fail again."""

    def after_exception(self, run_context, worker_exceptions: dict[int, BaseException]) -> None:  # noqa: ARG002
        for rank, error in sorted(worker_exceptions.items()):
            cause = worker_exception(error)
            if isinstance(cause, NOT_RETRYABLE):
                raise UnrecoverableWorkerError(rank, cause)


def failure_cause(error: TrainingFailedError) -> BaseException:
    """The worker's own exception behind a failed `fit()`, when it is one no retry fixes; else `error` itself."""
    candidates = [getattr(error, "controller_failure", None), *getattr(error, "worker_failures", {}).values()]
    for candidate in candidates:
        if isinstance(candidate, UnrecoverableWorkerError):
            return candidate.error
        if candidate is not None and isinstance(worker_exception(candidate), NOT_RETRYABLE):
            return worker_exception(candidate)
    return error


def ray_config_for(config: RexbertConfig, address: str | None) -> RayConfig:
    """The run's `ray` section, joining `address` instead when one is given (checked as the config checks it)."""
    if address is None:
        return config.ray
    return config.ray.model_copy(update={"address": check_ray_address(address)})


def check_phase_data(config: RexbertConfig, phase: str) -> str:
    """The phase's shard folder, after its manifest was checked against the phase (sequence length, mixture).

    Run on the driver before Ray starts: a phase whose shards do not fit fails here with one line, not in
    every Train worker and again after every restart."""
    phase_config = load_phase(config.pretrain, phase)
    data_dir = absolute(resolve_data_path(config.pretrain, phase_config, config.run.output))
    check_upstream([data_dir])  # a finished token set whose tokenizer and corpora are unchanged since
    read_shard_manifest(data_dir, phase_config)
    return data_dir


def plan_for(pretrain: PretrainConfig, phase: PhaseConfig, workers: int) -> list[int]:
    """Global batch (sequences) of every step, as the Trainer computes it."""
    unit = pretrain.data.micro_batch_size * workers
    return plan_steps(phase.tokens, phase.seq_len, phase.global_batch_size, unit, phase.schedule.start_batch_size,
                      phase.schedule.batch_warmup_tokens, phase.max_steps)


def check_fills_a_batch(data_dir: str, global_batch: int) -> None:
    """Refuse, before any worker starts, a token set whose train split fills no global micro batch."""
    manifest = json.loads(fs.read_text(fs.join(data_dir, "manifest.json")))
    num_sequences = manifest.get("splits", {}).get("train", {}).get("sequences", 0)
    if usable_per_epoch(num_sequences, global_batch) == 0:
        raise InputError(f"{data_dir}: {num_sequences} train sequences fill no global batch of {global_batch}")


class RayMetricsSink:
    """Forward each logged value to a `ray.util.metrics.Gauge` (Prometheus, then Grafana)."""

    def __init__(self, phase: str, rank: int):
        self.tags = {"phase": phase, "rank": str(rank)}
        self.gauges: dict[str, Any] = {}

    def __call__(self, step: int, values: dict[str, float]) -> None:
        from ray.util.metrics import Gauge

        for key, value in {"step": step, **values}.items():
            if value is None:
                continue
            if key not in self.gauges:
                self.gauges[key] = Gauge(f"rexbert_pretrain_{key}", description=f"pretraining {key}",
                                         tag_keys=("phase", "rank"))
            self.gauges[key].set(float(value), tags=self.tags)


def _train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: build the Trainer, restore, train, export.

    The run config arrives as a dict and is validated again here (`config_from_dict`); its phases are
    inline, so nothing is read from disk and every worker trains exactly what the driver resolved.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(loop_config["threads"])
    config = config_from_dict(loop_config["config"])
    pretrain = config.pretrain
    phase = load_phase(pretrain, loop_config["phase"])
    rank = ray.train.get_context().get_world_rank()
    trainer: Trainer | None = None

    def report(step: int, path: Path, metrics: dict[str, Any]) -> None:
        # A local run folder is shared, so rank 0 reports the whole checkpoint; a remote one is staged per
        # rank, so every rank reports its shards and Ray Train merges them into one checkpoint folder.
        reports = rank == 0 or trainer.checkpointer.staged_per_rank
        checkpoint = Checkpoint.from_directory(str(path)) if reports else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=path.name)

    world_size = ray.train.get_context().get_world_size()
    batches = None  # loader "shards": the Trainer reads the shard files itself
    if pretrain.data.loader == "ray-data":
        batches = RayPackedBatches(loop_config["data_dir"], pretrain.data.micro_batch_size, rank, world_size,
                                   seed=config.run.seed, shuffle=pretrain.data.shuffle,
                                   plan_batches=loop_config["plan_batches"],
                                   shuffle_tokens=pretrain.data.shuffle_tokens)
    trainer = Trainer(pretrain, phase, loop_config["phase_dir"], loop_config["data_dir"], seed=config.run.seed,
                      batches=batches, init_from=loop_config["init_from"],
                      hooks=TrainerHooks(on_checkpoint=report, sinks=[RayMetricsSink(phase.name, rank)]))
    restored = ray.train.get_checkpoint()
    if restored is not None:  # Ray Train restarted us after a failure
        with restored.as_directory() as path:
            trainer.resume(path)
    else:
        # --resume, or a restart whose last report Ray had not committed yet: the run folder has the
        # checkpoints (the driver refuses a fresh run over old ones, so any here belong to this run)
        trainer.resume()
    restarted = trainer.step > loop_config["start_step"]
    if trainer.step:
        logger.info("rank %d resumed at step %d (%s)", rank, trainer.step,
                    "Ray Train checkpoint" if restored is not None else "run folder")
    summary = trainer.train()
    summary["export"] = trainer.export() if loop_config["export"] else None
    trainer.close()
    if rank == 0:
        summary["restarted_after_failure"] = restarted
        fs.write_text(fs.join(loop_config["phase_dir"], "summary.json"), json.dumps(summary, indent=2))


def storage_for(folder: str) -> dict[str, Any]:
    """RunConfig storage arguments for a local folder or a URI (Ray wants the path without its scheme)."""
    if not fs.is_remote(folder):
        return {"storage_path": absolute(folder)}
    filesystem, path = fs.resolve(folder)
    return {"storage_path": path, "storage_filesystem": filesystem}


def run_phase(config: RexbertConfig, phase: str, resume: bool = False, workers: int | None = None,
              address: str | None = None, export: bool = True) -> dict[str, Any]:
    """Train one phase on Ray Train; returns its summary (losses, tokens/s, export folder).

    Args:
        config: the whole run config (`infra.core.config.RexbertConfig`): uses `pretrain`, `run`, `ray`.
        resume: continue from the latest checkpoint of this phase in the run directory.
        workers: Ray Train workers (FSDP2 ranks); None: `pretrain.workers`.
        address: Ray cluster to join; None: `ray.address` (None there starts a local cluster).
    """
    pretrain: PretrainConfig = config.pretrain
    phase_config = load_phase(pretrain, phase)
    ray_config = ray_config_for(config, address)
    run_dir = absolute(resolve_run_dir(pretrain, config.run.output, config.run.name))
    phase_dir = fs.join(run_dir, phase)
    data_dir = check_phase_data(config, phase)
    latest = latest_checkpoint(fs.join(phase_dir, "checkpoints"))
    if not resume and latest is not None:
        raise FileExistsError(f"{phase_dir} already has checkpoints: pass --resume or choose another run name")
    start_step = step_of(latest) if resume and latest is not None else 0
    init_from = previous_phase_checkpoint(run_dir, phase_config)
    write_resolved_config(config, phase_dir)
    workers = workers or pretrain.workers

    with ray_runtime(ray_config):
        plan = plan_for(pretrain, phase_config, workers)
        check_fills_a_batch(data_dir, pretrain.data.micro_batch_size * workers)
        trainer = TorchTrainer(
            _train_worker,
            train_loop_config={
                "config": config.model_dump(mode="json"), "phase": phase,
                "phase_dir": phase_dir, "data_dir": data_dir, "init_from": init_from, "export": export,
                "start_step": start_step,
                "plan_batches": sum(plan) // (pretrain.data.micro_batch_size * workers),
                "threads": max(1, int(pretrain.cpus_per_worker)),
            },
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=pretrain.use_gpu,
                                         resources_per_worker={"CPU": pretrain.cpus_per_worker},
                                         placement_strategy=pretrain.placement_strategy),
            torch_config=TorchConfig(backend="nccl" if pretrain.use_gpu else "gloo"),
            run_config=RunConfig(
                name=f"{config.run.name}-{phase}-{time.strftime('%Y%m%d-%H%M%S')}",
                **storage_for(fs.join(phase_dir, "ray")),
                failure_config=FailureConfig(max_failures=pretrain.checkpoint.max_failures),
                callbacks=[StopOnUnrecoverable()],
                # Ray copies each reported checkpoint under storage_path: keep as many as the run folder does.
                checkpoint_config=CheckpointConfig(num_to_keep=pretrain.checkpoint.keep_latest_k),
            ),
        )
        started = time.perf_counter()
        try:
            result = trainer.fit()
        except TrainingFailedError as err:
            cause = failure_cause(err)
            if cause is err:
                raise
            raise cause from err  # the worker's own error (one line in the CLI), not Ray's report of it
    if result.error is not None:
        raise RuntimeError(f"phase {phase!r} failed") from result.error
    summary = json.loads(fs.read_text(fs.join(phase_dir, "summary.json")))
    summary.update(seconds=round(time.perf_counter() - started, 2), workers=workers,
                   ray_checkpoint=result.checkpoint.path if result.checkpoint else None)
    write_phase_manifest(phase_dir, summary, pretrain, data_dir, summary["seconds"],
                         extra={"workers": workers, "restarted_after_failure": summary["restarted_after_failure"],
                                "ray_checkpoint": summary["ray_checkpoint"]})
    logger.info("phase %s done: %d steps, final loss %s", phase, summary["steps"], summary["final_loss"])
    return summary


def run_all_phases(config: RexbertConfig, resume: bool = False, workers: int | None = None, address: str | None = None,
                   phases: list[str] | None = None) -> dict[str, Any]:
    """Every phase in config order (or `phases`), each from the previous one's final checkpoint."""
    names = phases or list(config.pretrain.phases)
    ray_config = ray_config_for(config, address)
    for name in names:  # every phase's shards fit it, before the first phase trains for hours
        check_phase_data(config, name)
    with ray_runtime(ray_config):  # one cluster for all phases
        return {name: run_phase(config, name, resume=resume, workers=workers, address=address) for name in names}


def run_demo(config: RexbertConfig, root: str | Path) -> dict[str, Any]:
    """Demo stage: every phase of the config (demo.yaml: the tiny preset through the three demo phases on
    2 Ray workers, FSDP2 over gloo), from `<root>/tokens/` into the run folder, which starts fresh.

    `root` is the demo's output root, i.e. its `run.output`; the same work runs as
    `rexbert pretrain --config <root>/config.resolved.yaml`.
    """
    if str(root) != config.run.output:
        config = config_from_dict({**config.model_dump(mode="json"), "run": {**config.run.model_dump(),
                                                                              "output": str(root)}})
    run_dir = resolve_run_dir(config.pretrain, config.run.output, config.run.name)
    fs.delete_dir(run_dir)  # the demo always starts fresh
    phases = run_all_phases(config)
    return {
        "run_dir": absolute(run_dir),
        "phases": {name: {k: s.get(k) for k in ("steps", "final_loss", "tokens_per_s", "seq_len",
                                               "rope_theta_global", "export", "seconds")}
                   for name, s in phases.items()},
    }
