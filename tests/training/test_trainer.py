"""The pretraining loop as one plain process (no Ray): a debugging run, metrics, exact resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from infra.core.config import PretrainConfig, load_phase
from tests.training.shard_fixtures import demo_tokens  # noqa: F401  (session fixture)
from training.checkpoint import available_steps
from training.trainer import Trainer, export_checkpoint, find_phase_dir, run_phase_local

pytestmark = pytest.mark.shared_data


def tiny_config(tmp_path, demo_root, **phase_overrides) -> PretrainConfig:
    return PretrainConfig.model_validate({
        "run_dir": str(tmp_path / "run"),
        "phases": {name: f"smoke-{name}.yaml" for name in ("general", "context", "decay")},
        "phase_overrides": {"general": phase_overrides},
        "data": {"root": str(demo_root / "tokens"), "micro_batch_size": 2},
        "checkpoint": {"interval": 3},
        "metrics": {"log_interval": 1},
    })


def test_plain_process_run_trains_checkpoints_logs_and_exports(tmp_path, demo_tokens):  # noqa: F811
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoModelForMaskedLM

    config = tiny_config(tmp_path, demo_tokens, max_steps=4)
    phase = load_phase(config, "general")
    summary = run_phase_local(config, phase, tmp_path / "run", demo_tokens / "tokens" / "general-128", seed=0)

    assert summary["steps"] == 4 and summary["world_size"] == 1
    assert all(math.isfinite(loss) for loss in summary["losses"])
    phase_dir = tmp_path / "run" / "general"
    assert available_steps(phase_dir / "checkpoints") == [3, 4]
    lines = [json.loads(line) for line in (phase_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert lines[0]["batch_size"] == 4 and lines[0]["mfu"] is None and lines[-1]["tokens_per_s"] > 0
    events = EventAccumulator(str(phase_dir / "tb"))
    events.Reload()
    assert {"loss", "lr", "tokens_per_s", "mfu", "grad_norm", "tflops", "data_share"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4]

    exported = AutoModelForMaskedLM.from_pretrained(summary["export"])
    assert exported.config.max_position_embeddings == 128
    assert (phase_dir / "export" / "tokenizer.json").is_file()
    # `rexbert pretrain export` rebuilds the same weights from the DCP checkpoint alone
    again = export_checkpoint(tmp_path / "run", tmp_path / "exported")
    first = load_file(str(phase_dir / "export" / "model.safetensors"))
    second = load_file(str(Path(again) / "model.safetensors"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_stopped_and_resumed_run_follows_the_same_loss_trajectory(tmp_path, demo_tokens):  # noqa: F811
    data_dir = demo_tokens / "tokens" / "general-128"
    config = tiny_config(tmp_path, demo_tokens, max_steps=6)
    phase = load_phase(config, "general")
    torch.manual_seed(123)
    uninterrupted = Trainer(config, phase, tmp_path / "a", data_dir, seed=0).train()["losses"]

    torch.manual_seed(123)
    first = Trainer(config, phase, tmp_path / "b", data_dir, seed=0)
    first.train(until_step=3)  # "stopped" right after the step-3 checkpoint
    torch.manual_seed(999)  # whatever happened in between must not matter
    resumed = Trainer(config, phase, tmp_path / "b", data_dir, seed=0)
    assert resumed.resume() == 3 and resumed.step == 3 and resumed.tokens == first.tokens
    assert resumed.lr_schedule.lr == first.lr_schedule.lr
    rest = resumed.train()["losses"]

    assert len(uninterrupted) == 6
    assert first.losses + rest == uninterrupted  # exactly, step by step

    # resumed once more, at the end of the phase: nothing left to train, the last loss is still reported
    done = Trainer(config, phase, tmp_path / "b", data_dir, seed=0)
    assert done.resume() == 6
    summary = done.train()
    assert summary["steps"] == 6 and summary["losses"] == [] and summary["final_loss"] == uninterrupted[-1]


def test_several_workers_without_fsdp_are_refused(tmp_path, demo_tokens, monkeypatch):  # noqa: F811
    """Nothing but FSDP syncs gradients: two workers with fsdp=off would train two drifting copies."""
    import training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "dist_info", lambda: (0, 2))
    config = tiny_config(tmp_path, demo_tokens, max_steps=2)
    config = config.model_copy(update={"parallelism": config.parallelism.model_copy(update={"fsdp": "off"})})
    with pytest.raises(ValueError, match="fsdp=off with 2 workers"):
        Trainer(config, load_phase(config, "general"), tmp_path / "run" / "general",
                demo_tokens / "tokens" / "general-128")


def test_phase_on_s3_checkpoints_resumes_chains_and_exports(s3_server, tmp_path, demo_tokens, monkeypatch):  # noqa: F811
    """Run folder and shards on a real S3 endpoint: DCP checkpoints are staged locally and uploaded, a
    resumed run and the next phase download them, and the export loads with transformers after download."""
    from transformers import AutoModelForMaskedLM

    from infra.core import fs
    from infra.core.manifest import read_manifest

    monkeypatch.setenv("REXBERT_LOCAL_CACHE", str(tmp_path / "cache"))
    root = fs.join(s3_server, tmp_path.name)
    data_dir = fs.join(root, "tokens", "general-128")
    fs.copy_dir(demo_tokens / "tokens" / "general-128", data_dir)
    run_dir = fs.join(root, "runs", "t")
    phase_dir = fs.join(run_dir, "general")
    config = tiny_config(tmp_path, demo_tokens, max_steps=4)
    phase = load_phase(config, "general")
    torch.manual_seed(123)
    uninterrupted = Trainer(config, phase, tmp_path / "local", demo_tokens / "tokens" / "general-128").train()

    torch.manual_seed(123)
    first = Trainer(config, phase, phase_dir, data_dir, seed=0)
    first.train(until_step=3)  # the step-3 checkpoint is uploaded, then the run "stops"
    first.close()
    assert available_steps(fs.join(phase_dir, "checkpoints")) == [3]
    uploaded = [json.loads(line)["step"] for line in fs.read_text(fs.join(phase_dir, "metrics.jsonl")).splitlines()]
    assert uploaded == [1, 2, 3]
    with pytest.raises(FileExistsError):
        run_phase_local(config, phase, run_dir, data_dir)

    torch.manual_seed(999)
    resumed = run_phase_local(config, phase, run_dir, data_dir, resume=True)
    assert resumed["steps"] == 4 and first.losses + resumed["losses"] == uninterrupted["losses"]
    assert available_steps(fs.join(phase_dir, "checkpoints")) == [3, 4]
    manifest = read_manifest(phase_dir)
    assert manifest["stage"] == "pretrain.general" and manifest["inputs"] == [data_dir]
    assert manifest["counts"]["input"] == manifest["counts"]["kept"] == uninterrupted["sequences"] > 0
    assert manifest["checkpoints"][-1] == fs.join(phase_dir, "checkpoints", "step-00000004")
    assert manifest["export"] == resumed["export"] == fs.join(phase_dir, "export")
    assert not (tmp_path / "runs").exists()  # nothing of the S3 run landed in a local run folder

    # the next phase starts from the final general checkpoint on S3
    context = load_phase(config, "context")
    chained = run_phase_local(config, context, run_dir, demo_tokens / "tokens" / "context-256", export=False)
    assert chained["init_from"] == fs.join(phase_dir, "checkpoints", "step-00000004")
    assert find_phase_dir(run_dir) == fs.join(run_dir, "context")  # the newest checkpoint's phase

    downloaded = tmp_path / "export"
    fs.copy_dir(resumed["export"], downloaded)
    model = AutoModelForMaskedLM.from_pretrained(downloaded)
    assert model.config.max_position_embeddings == 128 and (downloaded / "tokenizer.json").is_file()
    # `rexbert pretrain export` from the S3 run folder to S3 rebuilds the same weights
    again = export_checkpoint(run_dir, fs.join(root, "exported"), phase="general")
    fs.copy_dir(again, tmp_path / "again")
    first_weights = load_file(str(downloaded / "model.safetensors"))
    second_weights = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
