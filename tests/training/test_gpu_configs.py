"""The shipped GPU run configs (training/configs/gpu/<preset>-<phase>.yaml) load, validate and fit the phases."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.core.config import load_config, load_phase
from training.model import PRESETS, model_args
from training.schedule import plan_steps
from training.trainer import precision_plan

GPU_CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs" / "gpu"
PHASE_LENGTHS = {"general": 1024, "context": 8192, "decay": 8192}
FILES = sorted(GPU_CONFIGS.glob("*.yaml"))


def test_there_is_one_config_per_gpu_preset_and_phase():
    names = {f.stem for f in FILES}
    assert names == {f"{p}-{phase}" for p in PRESETS if p != "tiny" for phase in PHASE_LENGTHS}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_gpu_config_loads_and_fits_its_phase(path):
    preset, phase_name = path.stem.split("-")
    config = load_config(path)
    pretrain = config.pretrain
    phase = load_phase(pretrain, phase_name)
    assert pretrain.model.preset == preset and pretrain.use_gpu and pretrain.parallelism.compile
    assert phase.seq_len == PHASE_LENGTHS[phase_name] and config.run.name == f"gpu-{preset}"
    plan = precision_plan(pretrain.parallelism.mixed_precision, "cuda", sharded=pretrain.workers > 1)
    assert plan.param_dtype == "bf16" and not plan.autocast
    unit = pretrain.data.micro_batch_size * pretrain.workers
    assert phase.global_batch_size % unit == 0  # the trainer refuses a batch that is not whole micro batches
    steps = plan_steps(phase.tokens, phase.seq_len, phase.global_batch_size, unit, phase.schedule.start_batch_size,
                       phase.schedule.batch_warmup_tokens, max_steps=3)
    assert len(steps) == 3 and all(s % unit == 0 for s in steps)
    assert model_args(preset, max_seq_len=phase.seq_len).max_seq_len == phase.seq_len
    # the same micro batch of tokens for every phase of a preset (memory scales with tokens, not rows)
    general = load_config(GPU_CONFIGS / f"{preset}-general.yaml").pretrain.data.micro_batch_size * 1024
    assert pretrain.data.micro_batch_size * phase.seq_len == general
