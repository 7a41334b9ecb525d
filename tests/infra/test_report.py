"""The run report reads what stages leave behind and says whether every stage's counts add up."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from infra.cli import app
from infra.core.manifest import StageStats, build_manifest, write_manifest
from infra.report import build_report


def _stage(root, name, stats):
    write_manifest(root / name, build_manifest(name, stats))


def test_report_tabulates_manifests_plots_losses_and_checks_accounting(tmp_path):
    stats = StageStats(input=10, kept=6, duplicates=1)
    stats.drop("short_doc", 2)
    stats.error("bad_gzip")
    _stage(tmp_path, "ecom/filtered", stats)
    run = tmp_path / "runs" / "demo" / "general"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 10 - s}) for s in range(5)))
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "results.md").write_text("| model | task | score |\n|---|---|---|\n| a | page-type | 0.5 |\n")

    summary = build_report(tmp_path)

    assert summary["all_counts_add_up"] is True
    assert summary["counts"] == [
        {"stage": "ecom/filtered", "input": 10, "kept": 6, "filtered": 2, "duplicates": 1, "errors": 1, "adds_up": True}
    ]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "page-type" in page and "data:image/png;base64" in page
    assert (tmp_path / "report" / "training-loss.png").stat().st_size > 1000


def test_report_flags_a_manifest_whose_counts_do_not_add_up(tmp_path):
    manifest = build_manifest("x")
    manifest["counts"] = {"input": 5, "kept": 3, "filtered": {}, "duplicates": 0, "errors": {}}
    write_manifest(tmp_path / "x", manifest)
    assert build_report(tmp_path)["all_counts_add_up"] is False


def test_report_command_on_missing_root_fails_with_message(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "not found" in result.output


def test_grafana_panels_query_the_gauges_the_pretraining_job_exports(tmp_path):
    """Every training panel's metric is one the Ray metrics sink creates (ray_ + rexbert_pretrain_<key>)."""
    import inspect

    from infra.dashboards import TRAINING_PANELS, write_dashboards
    from training.metrics import MetricsProcessor

    source = inspect.getsource(MetricsProcessor)
    for _, expr, _ in TRAINING_PANELS:
        key = expr.removeprefix("ray_rexbert_pretrain_")
        assert f'"{key}"' in source, f"panel queries {expr}, which the trainer never logs"
    paths = write_dashboards(tmp_path, ["127.0.0.1:8080"])
    dashboard = json.loads(paths[0].read_text())
    assert len(dashboard["panels"]) >= len(TRAINING_PANELS)
