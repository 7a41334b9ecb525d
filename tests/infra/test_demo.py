"""`rexbert demo`: stages run in order under one root, each leaving its folder, config and numbers."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from infra import demo as demo_module
from infra.cli import app
from infra.core.config import load_config


def test_demo_subset_writes_crawl_report_and_resolved_config(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--output", str(out), "--docs", "40", "--demo.stages=[sample-data, report]"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "demo-summary.json").read_text())
    assert summary["sample-data"]["status"] == "ok"
    assert summary["report"]["status"] == "ok"
    assert summary["pretrain"] == {"status": "skipped", "reason": "not in demo.stages"}
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert resolved["demo"]["docs"] == 40 and resolved["run"]["output"] == str(out)
    assert list((out / "sample-data").glob("*.warc.gz"))
    assert (out / "report" / "index.html").is_file()


def test_a_stage_whose_module_is_missing_is_reported_not_built(tmp_path, monkeypatch):
    stages = [
        demo_module.DemoStage("future", "corpus.no_such_module", ()),
        demo_module.DemoStage("after", "infra.report", ("future",)),
    ]
    monkeypatch.setattr(demo_module, "STAGES", stages)
    config = load_config(None, {"demo": {"stages": ["future", "after"]}})
    results = demo_module.run_demo(config, tmp_path, echo=lambda _: None)
    assert results["future"]["status"] == "not built yet"
    assert results["after"] == {"status": "skipped", "reason": "needs future"}


@pytest.mark.heavy
def test_whole_demo_runs_every_stage(tmp_path):
    """The first README command's job on embedded defaults (CI runs it through .ci/run as well)."""
    result = CliRunner().invoke(app, ["demo", "--output", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "demo" / "demo-summary.json").read_text())
    assert {name: r["status"] for name, r in summary.items()} == {name: "ok" for name in summary}
