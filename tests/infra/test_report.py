"""The run report checks every stage's manifest (one schema, counts that add up) and shows each result."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from infra.cli import app
from infra.core import fs
from infra.core.manifest import StageStats, build_manifest, write_manifest
from infra.report import PIPELINE_STAGES, build_report

# Where each stage writes in a demo-shaped run root (pretraining: one folder per phase).
STAGE_FOLDERS = {
    "sample-data": "sample-data",
    "extract": "ecom/extracted",
    "filter": "ecom/filtered",
    "dedup": "ecom/deduped",
    "corpus": "ecom/corpus",
    "build": "ecom",
    "train-tokenizer": "tokenizer",
    "pack": "tokens/general-128",
    "evaluate": "eval",
}
PHASES = ("general", "context", "decay")


def _stats(input: int = 10) -> StageStats:
    stats = StageStats(input=input, kept=input - 4, duplicates=1)
    stats.drop("short_doc", 2)
    stats.error("bad_gzip")
    return stats


def _write_run(root: str) -> None:
    """A manifest from `build_manifest` for every stage of the pipeline, each phase of pretraining included."""
    for stage, folder in STAGE_FOLDERS.items():
        write_manifest(fs.join(root, folder), build_manifest(stage, _stats(), inputs=["in"], outputs={"path": folder}))
    for phase in PHASES:
        manifest = build_manifest(f"pretrain.{phase}", _stats(20), extra={"final_loss": 3.2})
        write_manifest(fs.join(root, "runs", "demo", phase), manifest)


def _rows_by_folder(summary: dict) -> dict[str, dict]:
    return {row["folder"]: row for row in summary["stages"]}


def test_every_stage_and_every_phase_is_checked_and_shown(tmp_path):
    _write_run(str(tmp_path))
    run = tmp_path / "runs" / "demo" / "general"
    (run / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 10 - s}) for s in range(5)))
    (tmp_path / "eval" / "results.md").write_text("| model | task | score |\n|---|---|---|\n| a | page-type | 0.5 |\n")

    summary = build_report(str(tmp_path))

    assert summary["all_stages_pass"] is True
    rows = _rows_by_folder(summary)
    assert set(rows) == set(STAGE_FOLDERS.values()) | {f"runs/demo/{p}" for p in PHASES}
    assert rows["ecom/filtered"] == {"folder": "ecom/filtered", "stage": "filter", "input": 10, "kept": 6,
                                     "filtered": 2, "duplicates": 1, "errors": 1, "problem": None}
    assert rows["runs/demo/decay"]["stage"] == "pretrain.decay" and rows["runs/demo/decay"]["input"] == 20
    lines = {line["stage"]: line for line in summary["pipeline"]}
    expected = [s for s in PIPELINE_STAGES if s != "pretrain"] + [f"pretrain.{p}" for p in PHASES]
    assert [line["stage"] for line in summary["pipeline"]][-4:] == ["pretrain.context", "pretrain.decay",
                                                                    "pretrain.general", "evaluate"]
    assert set(lines) == set(expected)
    assert all(line["result"] == "ok" and line["manifests"] == 1 for line in lines.values())
    page = (tmp_path / "report" / "index.html").read_text()
    for stage in expected:
        assert f"<td>{stage}</td>" in page
    assert "page-type" in page and "data:image/png;base64" in page and "#f8d0d0" not in page
    assert (tmp_path / "report" / "training-loss.png").stat().st_size > 1000
    assert json.loads((tmp_path / "report" / "report.json").read_text())["all_stages_pass"] is True


def test_counts_that_do_not_add_up_are_a_failed_stage(tmp_path):
    _write_run(str(tmp_path))
    manifest = build_manifest("dedup", _stats())
    manifest["counts"]["kept"] -= 1  # a record lost: write_manifest would refuse, so write the file as is
    fs.write_text(fs.join(str(tmp_path), "ecom", "deduped", "manifest.json"), json.dumps(manifest))

    summary = build_report(str(tmp_path))

    assert summary["all_stages_pass"] is False
    problem = _rows_by_folder(summary)["ecom/deduped"]["problem"]
    assert "input 10 != kept 5" in problem
    assert {line["stage"]: line["result"] for line in summary["pipeline"]}["dedup"] == "FAILED"
    assert "#f8d0d0" in (tmp_path / "report" / "index.html").read_text()


def test_a_manifest_without_the_schema_is_a_failure_not_skipped(tmp_path):
    _write_run(str(tmp_path))
    old = {"stage": "pack", "seq_len": 128, "splits": {"train": {"sequences": 4}}}  # an old-style manifest
    fs.write_text(fs.join(str(tmp_path), "tokens", "general-128", "manifest.json"), json.dumps(old))
    fs.write_text(fs.join(str(tmp_path), "odd", "manifest.json"), "{not json")
    fs.write_text(fs.join(str(tmp_path), "nameless", "manifest.json"), json.dumps({"counts": {"input": 1}}))

    summary = build_report(str(tmp_path))

    rows = _rows_by_folder(summary)
    assert "not a stage manifest (missing created_utc" in rows["tokens/general-128"]["problem"]
    assert rows["odd"]["problem"].startswith("unreadable manifest")
    assert "missing stage" in rows["nameless"]["problem"]
    results = {line["stage"]: line["result"] for line in summary["pipeline"]}
    assert results["pack"] == "FAILED"
    assert results["? (odd)"] == "FAILED" and results["? (nameless)"] == "FAILED"
    assert summary["all_stages_pass"] is False


def test_a_stage_that_did_not_run_says_so(tmp_path):
    write_manifest(fs.join(str(tmp_path), "ecom", "extracted"), build_manifest("extract", _stats()))
    results = {line["stage"]: line["result"] for line in build_report(str(tmp_path))["pipeline"]}
    assert results["extract"] == "ok"
    assert results["pretrain"] == "not in this run" and results["evaluate"] == "not in this run"


def test_an_unfinished_write_in_a_staging_folder_is_not_a_stage(tmp_path):
    write_manifest(fs.join(str(tmp_path), "ecom", "extracted"), build_manifest("extract", _stats()))
    fs.write_text(fs.join(str(tmp_path), "ecom", "filtered.tmp-1234abcd", "manifest.json"), "{}")
    assert set(_rows_by_folder(build_report(str(tmp_path)))) == {"ecom/extracted"}


def test_report_over_an_s3_run_root(s3_server):
    root = f"{s3_server}/report-run"
    _write_run(root)
    summary = build_report(root)
    assert summary["all_stages_pass"] is True and len(summary["stages"]) == len(STAGE_FOLDERS) + len(PHASES)
    assert "<td>pretrain.context</td>" in fs.read_text(f"{root}/report/index.html")


def test_report_command_exit_codes(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "not found" in result.output

    _write_run(str(tmp_path))
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "12 stage manifests, 0 failed" in result.output

    fs.write_text(fs.join(str(tmp_path), "eval", "manifest.json"), json.dumps({"stage": "evaluate"}))
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "1 failed the check: eval" in result.output


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
