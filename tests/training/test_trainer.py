"""The pretraining loop as one plain process (no Ray): a debugging run, metrics, exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from infra.core.config import PretrainConfig, load_phase
from tests.training.shard_fixtures import demo_tokens  # noqa: F401  (session fixture)
from training.checkpoint import available_steps
from training.trainer import Trainer, export_checkpoint, run_phase_local

pytestmark = pytest.mark.shared_data


def tiny_config(tmp_path, demo_root, **phase_overrides) -> PretrainConfig:
    return PretrainConfig.model_validate({
        "run_dir": str(tmp_path / "run"),
        "phases": {name: f"demo-{name}.yaml" for name in ("general", "context", "decay")},
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
    second = load_file(str(again / "model.safetensors"))
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


def test_several_workers_without_fsdp_are_refused(tmp_path, demo_tokens, monkeypatch):  # noqa: F811
    """Nothing but FSDP syncs gradients: two workers with fsdp=off would train two drifting copies."""
    import training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "dist_info", lambda: (0, 2))
    config = tiny_config(tmp_path, demo_tokens, max_steps=2)
    config = config.model_copy(update={"parallelism": config.parallelism.model_copy(update={"fsdp": "off"})})
    with pytest.raises(ValueError, match="fsdp=off with 2 workers"):
        Trainer(config, load_phase(config, "general"), tmp_path / "run" / "general",
                demo_tokens / "tokens" / "general-128")
