"""The `rexbert` command: every group answers --help; bad options and configs fail non-zero with a message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infra.cli import app
from infra.core import fs
from infra.core.manifest import read_manifest

GROUPS = ["corpus", "tokenize", "pretrain", "evaluate", "submit", "jobs", "dashboard", "report", "demo", "sample-data"]
runner = CliRunner()


@pytest.mark.parametrize("group", GROUPS)
def test_every_command_group_has_help(group):
    result = runner.invoke(app, [group, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_root_help_lists_every_group():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in GROUPS:
        assert group in result.output


def test_unknown_option_fails_non_zero():
    result = runner.invoke(app, ["submit", "ray", "--no-such-option", "x"])
    assert result.exit_code != 0
    assert "No such option" in result.output


def test_console_script_reports_invalid_config_field_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spark:\n  shuffle_partitions: -3\n")
    exe = Path(sys.executable).with_name("rexbert")
    proc = subprocess.run(
        [str(exe), "demo", "--config", str(bad), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "spark.shuffle_partitions" in proc.stderr


def test_console_script_rejects_unknown_dotted_override(tmp_path):
    exe = Path(sys.executable).with_name("rexbert")
    proc = subprocess.run(
        [str(exe), "demo", "--output", str(tmp_path / "out"), "--demo.nope=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "demo.nope" in proc.stderr


def _run_report_only_demo(config_uri: str, out: Path) -> dict:
    """`rexbert demo --config URI` with only the report stage: the config goes through the CLI's loader."""
    result = runner.invoke(app, ["demo", "--config", config_uri, "--output", str(out)])
    assert result.exit_code == 0, result.output
    return yaml.safe_load((out / "config.resolved.yaml").read_text())


def test_cli_loads_a_config_from_an_s3_uri(s3_server, tmp_path):
    uri = f"{s3_server}/configs/run.yaml"
    fs.write_text(uri, "run:\n  name: from-s3\n  seed: 5\ndemo:\n  stages: [report]\n")
    resolved = _run_report_only_demo(uri, tmp_path / "out")
    assert resolved["run"]["name"] == "from-s3" and resolved["run"]["seed"] == 5
    assert resolved["run"]["output"] == str(tmp_path / "out")  # the explicit option wins over the file


def test_cli_loads_a_config_from_a_file_uri(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("run:\n  name: from-file-uri\ndemo:\n  stages: [report]\n")
    resolved = _run_report_only_demo(path.as_uri(), tmp_path / "out")
    assert path.as_uri().startswith("file://") and resolved["run"]["name"] == "from-file-uri"


def test_cli_names_a_missing_s3_config(s3_server, tmp_path):
    uri = f"{s3_server}/configs/absent.yaml"
    result = runner.invoke(app, ["demo", "--config", uri, "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output == f"error: config file not found: {uri}\n"


def test_demo_writes_where_the_config_says_unless_output_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "run.yaml"
    path.write_text(f"run:\n  output: {tmp_path / 'from-config'}\ndemo:\n  stages: [report]\n")
    assert runner.invoke(app, ["demo", "--config", str(path)]).exit_code == 0
    assert (tmp_path / "from-config" / "config.resolved.yaml").is_file()
    assert _run_report_only_demo(str(path), tmp_path / "given")["run"]["output"] == str(tmp_path / "given")


@pytest.mark.ray
@pytest.mark.shared_data
def test_tokenize_run_builds_every_set_the_config_names(ray_cluster, shared_data, tmp_path):
    """`rexbert tokenize run --config FILE`: the tokenizer and every token set, from the config alone."""
    from tests.training.test_tokenizer import wcxb_documents, write_corpus

    write_corpus(tmp_path / "out" / "shop" / "corpus", wcxb_documents(shared_data, 12, ecom=True, max_chars=2000))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "run": {"output": str(tmp_path / "out")},
        "tokenize": {"vocab_size": 384, "validation_fraction": 0.0, "corpora": {"shop": "shop/corpus"},
                     "sets": {"shop-64": {"seq_len": 64, "mixture": {"shop": 1.0}}}},
    }))
    result = runner.invoke(app, ["tokenize", "run", "--config", str(path), "--tokenize.rows_per_shard=8"])
    assert result.exit_code == 0, result.output
    assert "shop-64: " in result.output and str(tmp_path / "out" / "tokens" / "shop-64") in result.output
    manifest = read_manifest(tmp_path / "out" / "tokens" / "shop-64")
    assert manifest["stage"] == "pack" and manifest["seq_len"] == 64 and manifest["counts"]["input"] == 12
    assert manifest["config"]["tokenize"]["rows_per_shard"] == 8  # the override reached the job
