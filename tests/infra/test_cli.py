"""The `rexbert` command: every group answers --help; bad options and configs fail non-zero with a message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app

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
