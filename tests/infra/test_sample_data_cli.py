"""`rexbert sample-data` through the Typer app and through the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from infra.cli import app

RUNNER = CliRunner()


def test_sample_data_command_writes_crawl_ground_truth_and_summary(tmp_path):
    out = tmp_path / "crawl"
    result = RUNNER.invoke(app, ["sample-data", "--docs", "50", "--seed", "1", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "ground-truth.jsonl").read_text().splitlines()]
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(rows) == 50 and manifest["config"]["seed"] == 1 and (out / "crawl-00000.warc.gz").is_file()
    assert "wrote 50 pages" in result.output and f"ground truth: {out / 'ground-truth.jsonl'}" in result.output


def test_console_script_gives_the_same_bytes_as_the_app(tmp_path):
    script = Path(sys.executable).parent / "rexbert"
    via_app, via_script = tmp_path / "app", tmp_path / "script"
    args = ["sample-data", "--docs", "30", "--seed", "4", "--docs-per-file", "20"]
    assert RUNNER.invoke(app, [*args, "--out", str(via_app), "--no-progress"]).exit_code == 0
    proc = subprocess.run([str(script), *args, "--out", str(via_script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ground truth:" in proc.stdout
    for name in ("crawl-00000.warc.gz", "crawl-00001.warc.gz", "ground-truth.jsonl"):
        assert (via_app / name).read_bytes() == (via_script / name).read_bytes()
    manifests = [json.loads((out / "manifest.json").read_text()) for out in (via_app, via_script)]
    for manifest in manifests:  # the same but for when (and in which run) each was made and how long that took
        del manifest["created_utc"], manifest["run_id"], manifest["seconds"], manifest["counts"]["seconds"]
    assert manifests[0] == manifests[1]


def test_unknown_option_fails_non_zero(tmp_path):
    result = RUNNER.invoke(app, ["sample-data", "--docs", "5", "--out", str(tmp_path), "--bogus", "1"])
    assert result.exit_code != 0 and not (tmp_path / "ground-truth.jsonl").exists()
    assert RUNNER.invoke(app, ["sample-data", "--docs", "0", "--out", str(tmp_path)]).exit_code != 0


def test_demo_stage_writes_the_crawl_under_sample_data(tmp_path):
    from infra.core.config import load_config
    from infra.sample_crawl.generate import run_demo

    config = load_config(None, ["--demo.docs=40", "--run.seed=2"])
    summary = run_demo(config, tmp_path)
    out = tmp_path / "sample-data"
    # the one crawl file, and beside it the malformed companion holding its truncated last page
    assert summary["docs"] == 40 and summary["files"] == ["crawl-00000.warc.gz", "malformed-00000.warc.gz"]
    assert len((out / "ground-truth.jsonl").read_text().splitlines()) == 40
    assert "seed: 2" in (out / "config.resolved.yaml").read_text()
