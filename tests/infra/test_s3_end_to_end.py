"""A run written to `s3://` end to end, against a real S3 endpoint on 127.0.0.1 (moto in server mode).

The CLI runs each stage in its own process, as a user would, with the config itself read from S3:
extract (Spark) -> train-tokenizer (in the CLI process) and pack (Ray Data) -> a pretraining phase with its
checkpoint and HF export (Ray Train) -> evaluate (Ray Tune). Every stage's manifest is read back from the bucket
and must have the one schema with counts that add up; the export loads with transformers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import yaml

from infra.core import fs
from infra.core.manifest import check_manifest, read_manifest

pytestmark = [pytest.mark.spark, pytest.mark.ray]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rexbert(*args: str) -> str:
    """One CLI command in a fresh process (it starts its own Spark or Ray and inherits the S3 variables)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "infra.cli", *args], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, f"rexbert {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.heavy  # 170 s, the slowest default test (--durations): CI runs it with the heavy tests
def test_a_run_writes_every_stage_to_s3(s3_server, shared_data, tmp_path):
    from infra.sample_crawl.generate import generate_sample_crawl

    crawl = tmp_path / "crawl"
    generate_sample_crawl(crawl, docs=80, seed=3, docs_per_file=40, progress=False)
    root = fs.join(s3_server, "e2e")
    config = {
        "run": {"name": "e2e", "output": root, "seed": 0},
        "spark": {"master": "local[2]", "shuffle_partitions": 2},
        "ray": {"num_cpus": 2, "dashboard_port": _free_port(), "metrics_export_port": _free_port()},
        "tokenize": {"vocab_size": 512, "min_frequency": 1, "corpora": {"general": "extracted"},
                     "sets": {"general-128": {"seq_len": 128, "mixture": {"general": 1.0}}}},
        "pretrain": {
            "model": {"preset": "tiny"}, "phases": {"general": "smoke-general.yaml"},
            "phase_overrides": {"general": {"max_steps": 2, "mixture": None}}, "workers": 1, "cpus_per_worker": 1,
            "data": {"micro_batch_size": 2},
            "checkpoint": {"interval": 1, "keep_latest_k": 1},
            "metrics": {"log_interval": 1, "progress": False, "tensorboard": False},
        },
        "evaluate": {"tasks": ["fill-mask"], "seeds": [0], "limits": {"texts": 16}, "max_seq_length": 64,
                     "models": ["runs/{run}/general/export"], "output": "eval"},
    }
    config_uri = fs.join(root, "run.yaml")
    fs.write_text(config_uri, yaml.safe_dump(config))

    _rexbert("corpus", "extract", "--config", config_uri, "-i", str(crawl), "-o", fs.join(root, "extracted"))
    _rexbert("tokenize", "train-tokenizer", "--config", config_uri, "--corpus", fs.join(root, "extracted"),
             "-o", fs.join(root, "tokenizer"), "--vocab-size", "512")
    _rexbert("tokenize", "pack", "--config", config_uri, "--corpus", fs.join(root, "extracted"), "--name", "general",
             "--tokenizer", fs.join(root, "tokenizer"), "--seq-len", "128", "-o", fs.join(root, "tokens/general-128"))
    _rexbert("pretrain", "--config", config_uri, "--phase", "general")
    export = fs.join(root, "runs/e2e/general/export")
    _rexbert("evaluate", "--config", config_uri, "--model", export, "--task", "fill-mask",
             "--output", fs.join(root, "eval"))

    stages = {}
    for folder in ("extracted", "tokenizer", "tokens/general-128", "runs/e2e/general", "eval"):
        manifest = read_manifest(fs.join(root, folder))
        stats = check_manifest(manifest, folder)  # the one schema; counts add up
        assert stats.input > 0, folder
        stages[folder] = manifest["stage"]
        assert fs.is_file(fs.join(root, folder, "config.resolved.yaml")), folder
    assert stages["extracted"] == "extract"
    # what each stage read is what the one before it kept
    assert read_manifest(fs.join(root, "tokenizer"))["counts"]["input"] == \
        read_manifest(fs.join(root, "extracted"))["counts"]["kept"]
    assert fs.list_files(fs.join(root, "tokens/general-128/train"), suffixes=(".parquet",))
    assert fs.list_files(fs.join(root, "runs/e2e/general/checkpoints"), hidden=True)  # DCP names start with _ and .
    assert fs.is_file(fs.join(root, "eval/results.json"))

    from transformers import AutoModelForMaskedLM

    local = tmp_path / "export"
    fs.copy_dir(export, local)
    model = AutoModelForMaskedLM.from_pretrained(local)
    assert model.config.vocab_size >= 512
