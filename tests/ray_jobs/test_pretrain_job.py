"""Pretraining on a real local Ray cluster: 2 Train workers, FSDP2 over gloo, data from Ray Data."""

from __future__ import annotations

import json

import pytest

import infra.core.config as config_module
from infra.core.config import (
    config_from_dict,
    load_config,
    resolve_data_path,
    resolve_run_dir,
    write_resolved_config,
)
from infra.core.manifest import check_manifest
from infra.core.paths import PROJECT_ROOT
from ray_jobs.pretrain import run_demo, run_phase
from tests.training.shard_fixtures import demo_tokens, smoke_overrides  # noqa: F401  (session fixture)
from training.checkpoint import available_steps

pytestmark = [pytest.mark.ray, pytest.mark.shared_data]

DEMO_CONFIG = PROJECT_ROOT / "infra" / "configs" / "demo.yaml"


def job_config(tmp_path, demo_root, **pretrain):
    """The demo's settings (demo.yaml) with the smoke phases, under another run name and output, with test
    overrides."""
    return load_config(DEMO_CONFIG, smoke_overrides({
        "run": {"name": "t", "output": str(tmp_path)},
        "pretrain": {"data": {"root": str(demo_root / "tokens")}, **pretrain},
    }))


def test_demo_yaml_holds_every_setting_the_demo_used_to_set_in_code(tmp_path):
    config = load_config(DEMO_CONFIG, {"run": {"output": str(tmp_path)}})
    p = config.pretrain
    assert p.model.preset == "tiny" and p.workers == 1 and p.use_gpu is False and p.cpus_per_worker == 2
    assert (p.parallelism.fsdp, p.data.loader) == ("on", "shards")
    assert p.data.micro_batch_size == 8 and p.model.overrides == {"dim": 128, "intermediate": 256, "n_layers": 2}
    assert (p.checkpoint.interval, p.checkpoint.keep_latest_k) == (250, 2)
    assert (p.metrics.log_interval, p.metrics.progress) == (10, False)
    assert config.tokenize.vocab_size == 4096 and {"shared-general", "shared-ecom"} <= set(config.tokenize.corpora)
    # each token set holds one pass of the phase that reads it (a set's own token_budget)
    assert {name: s.token_budget for name, s in config.tokenize.sets.items()} == {
        phase.data: phase.tokens for phase in p.phases.values()}
    # 3.5M tokens of pretraining, enough for the demo model to learn (bench/results/demo_learning.md)
    assert sum(phase.tokens for phase in p.phases.values()) == 3_500_000
    assert {name: phase.source for name, phase in p.phases.items()} == {
        "general": "demo-general.yaml", "context": "demo-context.yaml", "decay": "demo-decay.yaml"}
    assert [(ph.seq_len, ph.data, ph.init_from) for ph in p.phases.values()] == [
        (128, "general-128", None), (256, "context-256", "general"), (256, "decay-256", "context")]
    assert resolve_run_dir(p, config.run.output, config.run.name) == f"{tmp_path}/runs/demo"
    assert resolve_data_path(p, p.phases["decay"], config.run.output) == f"{tmp_path}/tokens/decay-256"
    # the token sets the phases read are the ones tokenize builds
    assert {ph.data: ph.seq_len for ph in p.phases.values()} == {
        name: s.seq_len for name, s in config.tokenize.sets.items()}


def test_resolved_config_and_worker_copy_reproduce_the_run_without_phase_files(tmp_path, monkeypatch):
    """`config.resolved.yaml` and the dict each Ray Train worker validates again are self-contained: phases
    are inline, so neither reads a phase file (here: none can be read)."""
    config = load_config(DEMO_CONFIG, {"run": {"output": str(tmp_path)},
                                       "pretrain": {"phase_overrides": {"general": {"max_steps": 3}}}})
    write_resolved_config(config, tmp_path)

    def no_phase_files(ref):
        raise AssertionError(f"phase file {ref} read again")

    monkeypatch.setattr(config_module, "read_phase", no_phase_files)
    assert load_config(tmp_path / "config.resolved.yaml") == config
    worker = config_from_dict(config.model_dump(mode="json"))
    assert worker == config and worker.pretrain.phases["general"].max_steps == 3


@pytest.mark.heavy  # about 2 minutes: the demo chains the three phases on one worker in every CI run, CI's heavy
# tests run this two-worker chain, and the default run keeps the one-worker test below
def test_three_phases_chain_on_two_workers_with_fsdp_and_export_each(ray_cluster, demo_tokens):  # noqa: F811
    from transformers import AutoModelForMaskedLM

    summary = run_demo(load_config(DEMO_CONFIG, smoke_overrides({"run": {"output": str(demo_tokens)}})), demo_tokens)

    run_dir = demo_tokens / "runs" / "demo"
    phases = summary["phases"]
    assert list(phases) == ["general", "context", "decay"]
    expected = {"general": (128, 10_000.0), "context": (256, 160_000.0), "decay": (256, 160_000.0)}
    for name, (seq_len, theta) in expected.items():
        phase_dir = run_dir / name
        detail = json.loads((phase_dir / "summary.json").read_text())
        assert detail["world_size"] == 2 and detail["steps"] == detail["total_steps"] == phases[name]["steps"]
        assert (phases[name]["seq_len"], phases[name]["rope_theta_global"]) == (seq_len, theta)
        assert detail["rope_theta_local"] == 10_000.0
        assert available_steps(phase_dir / "checkpoints")
        assert list((phase_dir / "tb").glob("events.out.tfevents.*"))
        assert (phase_dir / "metrics.jsonl").is_file() and (phase_dir / "config.resolved.yaml").is_file()
        manifest = json.loads((phase_dir / "manifest.json").read_text())
        counts = check_manifest(manifest)
        assert manifest["stage"] == f"pretrain.{name}" and manifest["steps"] == detail["steps"]
        assert counts.input == counts.kept == detail["tokens"] // seq_len and manifest["workers"] == 2
        assert manifest["export"] == str(phase_dir / "export") and manifest["init_from"] == detail["init_from"]
        model = AutoModelForMaskedLM.from_pretrained(phase_dir / "export")
        assert model.config.rope_parameters["full_attention"]["rope_theta"] == theta
        assert (phase_dir / "export" / "tokenizer.json").is_file()
    # each phase starts from the previous phase's final checkpoint
    general_last = available_steps(run_dir / "general" / "checkpoints")[-1]
    context = json.loads((run_dir / "context" / "summary.json").read_text())
    assert context["init_from"].endswith(f"general/checkpoints/step-{general_last:08d}")
    decay = json.loads((run_dir / "decay" / "summary.json").read_text())
    assert decay["init_from"].startswith(str(run_dir / "context"))
    # decay masks 15%, and the weights carried over: its first loss is far below a fresh model's ln(V)
    assert phases["decay"]["final_loss"] < json.loads((run_dir / "general" / "summary.json").read_text())["losses"][0]


def test_the_demos_one_worker_fsdp_path_trains_what_one_process_trains(ray_cluster, demo_tokens, tmp_path):  # noqa: F811
    """demo.yaml's own setting: one Ray Train worker with both CPUs, FSDP2 on a one-rank mesh, reading the shard
    files itself (loader "shards"). It takes the batches the plain process takes, so the losses agree."""
    from infra.core.config import load_phase
    from training.trainer import run_phase_local

    demo = {"workers": 1, "cpus_per_worker": 2, "parallelism": {"fsdp": "on"},
            "data": {"loader": "shards", "root": str(demo_tokens / "tokens")},
            "phase_overrides": {"general": {"max_steps": 4}}}
    config = job_config(tmp_path / "ray", demo_tokens, **demo)
    summary = run_phase(config, "general", export=False)
    assert (summary["world_size"], summary["fsdp"], summary["steps"]) == (1, True, 4)

    plain = job_config(tmp_path / "plain", demo_tokens, **{**demo, "parallelism": {"fsdp": "auto"}})
    local = run_phase_local(plain.pretrain, load_phase(plain.pretrain, "general"), tmp_path / "plain" / "runs",
                            demo_tokens / "tokens" / "general-128", seed=plain.run.seed, export=False)
    assert local["fsdp"] is False
    assert summary["losses"] == pytest.approx(local["losses"], rel=1e-5)


@pytest.mark.heavy  # a second worker-group start plus Ray Train's restart: over the default-run budget
def test_killed_worker_restarts_from_the_last_checkpoint_and_finishes(ray_cluster, demo_tokens, tmp_path):  # noqa: F811
    marker = tmp_path / "killed-once"
    config = job_config(tmp_path, demo_tokens, checkpoint={"interval": 2, "max_failures": 2},
                        fault_injection={"step": 3, "rank": 1, "marker": str(marker)},
                        phase_overrides={"general": {"max_steps": 4}})
    summary = run_phase(config, "general", workers=2)

    assert marker.read_text().startswith("rank 1 died at step 3")
    assert summary["restarted_after_failure"] is True
    assert summary["steps"] == 4 and len(summary["losses"]) == 2  # steps 3 and 4 ran again after step 2
    logged = [json.loads(line)["step"] for line in (tmp_path / "runs" / "t" / "general" / "metrics.jsonl").open()]
    assert logged == [1, 2, 3, 3, 4]  # step 3 ran, the worker died, training resumed at step 2


@pytest.mark.heavy
def test_stopped_ray_run_resumes_on_the_same_loss_trajectory(ray_cluster, demo_tokens, tmp_path):  # noqa: F811
    def config(name, stop_after=None):
        # A stop mid-plan (stop_after_steps), not a smaller max_steps: max_steps reshapes the LR schedule.
        return job_config(tmp_path / name, demo_tokens, checkpoint={"interval": 2}, stop_after_steps=stop_after,
                          phase_overrides={"general": {"max_steps": 4}})

    uninterrupted = run_phase(config("a"), "general", workers=2, export=False)
    first = run_phase(config("b", stop_after=2), "general", workers=2, export=False)
    with pytest.raises(FileExistsError):
        run_phase(config("b"), "general", workers=2)
    resumed = run_phase(config("b"), "general", resume=True, workers=2, export=False)
    assert first["steps"] == 2 and resumed["steps"] == 4 and len(resumed["losses"]) == 2
    assert resumed["restarted_after_failure"] is False
    assert first["losses"] + resumed["losses"] == pytest.approx(uninterrupted["losses"], rel=1e-6)
