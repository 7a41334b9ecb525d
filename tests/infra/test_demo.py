"""`rexbert demo`: stages run in order under one root, each leaving its folder, config and numbers."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from infra import demo as demo_module
from infra.cli import app
from infra.core.config import load_config
from infra.core.paths import PROJECT_ROOT


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


ENGINE_NOISE = re.compile(r"\bINFO\b|\[Stage \d+|Running Dataset|log4j|\(pid=\d+\)|\(RayTrainWorker")


@pytest.mark.heavy  # three CLI stages in subprocesses (a JVM and a Ray cluster each): ~3-5 min
@pytest.mark.spark
@pytest.mark.ray
def test_engine_logs_go_to_files_and_the_console_stays_readable(tmp_path):
    """A real Spark stage (corpus) and a real Ray Data stage (tokenize) through the CLI, in a fresh process so
    the JVM's own output is seen too: the console has no engine INFO line or progress wall, the log files do."""
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "infra.cli", "demo", "--output", str(out), "--docs", "40",
               "--demo.classifier_docs=40", "--demo.stages=[sample-data, corpus, tokenize]",
               "--demo.corpora={general: false}", "--tokenize.corpora={general: general/corpus}",
               "--tokenize.sets={general-64: {seq_len: 64, mixture: {general: 1.0}}}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=PROJECT_ROOT)
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-3000:]
    summary = json.loads((out / "demo-summary.json").read_text())
    assert summary["corpus"]["status"] == summary["tokenize"]["status"] == "ok"

    noisy = [line for line in console.splitlines() if ENGINE_NOISE.search(line)]
    assert not noisy, noisy[:5]
    spark_log = (out / "logs" / "spark.log").read_text()
    assert " INFO SparkContext: Running Spark version" in spark_log
    ray_log = (out / "logs" / "ray.log").read_text()
    assert "INFO" in ray_log and "Started a local Ray instance" in ray_log
    assert (out / "logs" / "ray" / "raylet.out").is_file()  # the session's worker and raylet logs, kept
    listed = dict(reversed(line.split(maxsplit=1)) for line in result.stdout.splitlines()
                  if line.startswith(f"  {out}") and len(line.split(maxsplit=1)) == 2)
    assert listed["Spark logs"] == str(out / "logs" / "spark.log")
    assert listed["packed token sets"] == str(out / "tokens" / "general-64")


@pytest.mark.shared_data
def test_shared_pretraining_text_keeps_no_evaluation_item_and_the_report_says_so(shared_data, tmp_path):
    import pyarrow.parquet as pq

    from infra.core.manifest import check_manifest
    from infra.demo_corpus import wdc_offers, wikitext_articles, write_hygiene
    from infra.report import build_report
    from training.evaluation.hygiene import Decontaminator, evaluation_items, normalized_text

    config = load_config(None, {"tokenize": {"corpora": {"shared-ecom": "shared-text/ecom"}}, "demo": {"corpora": {}}})
    offers = shared_data / "text" / "wdc-offers"
    wikitext = shared_data / "text" / "wikitext-2" / "valid.txt"
    sources = {"ecom": [wdc_offers(offers), wikitext_articles(wikitext)], "general": [wikitext_articles(wikitext)]}
    summary = write_hygiene(config, tmp_path, sources)

    out = tmp_path / "shared-text" / "ecom"
    assert not (tmp_path / "shared-text" / "general").exists()  # not named in tokenize.corpora: not built
    texts = pq.read_table(out / "part-00000.parquet").column("text").to_pylist()
    items = evaluation_items(shared_data)
    evaluation = {normalized_text(i.text) for i in items if i.text}
    assert texts and not {normalized_text(t) for t in texts} & evaluation
    assert not any(Decontaminator(items).check_batch(texts))
    counts = check_manifest(json.loads((out / "manifest.json").read_text()))  # input = kept + filtered + dups
    documents = sum(1 for _ in wdc_offers(offers)) + sum(1 for _ in wikitext_articles(wikitext))
    assert counts.input == documents and counts.kept == len(texts)
    assert counts.filtered["eval_exact"] > 1000 and counts.filtered["eval_near_duplicate"] > 0
    hygiene = json.loads((tmp_path / "hygiene.json").read_text())
    assert hygiene["shared_text_overlap"]["documents_dropped"] == summary["shared_text_dropped"] == sum(
        v for k, v in counts.filtered.items() if k.startswith("eval_"))

    build_report(str(tmp_path))
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Evaluation overlap (data hygiene)" in page
    assert f"{summary['shared_text_dropped']:,} of " in page


def test_phase_progress_follows_metrics_lines_as_they_are_written(tmp_path):
    metrics = tmp_path / "general" / "metrics.jsonl"
    metrics.parent.mkdir()
    progress = demo_module.PhaseProgress(tmp_path)
    metrics.write_text('{"step": 1, "loss": 10.5}\n{"step": 2, "loss": 9.75}\n{"step": 3, "lo')
    progress.poll()
    bar = progress.bars[metrics]
    assert bar.n == 2 and bar.postfix == "loss=9.750"  # the line still being written is not read yet
    with metrics.open("a") as handle:
        handle.write('ss": 9.0}\n')
    progress.poll()
    assert bar.n == 3 and bar.postfix == "loss=9.000"
    metrics.write_text('{"step": 1, "loss": 8.0}\n')  # a rerun rewrites the file
    progress.poll()
    assert bar.postfix == "loss=8.000"
    bar.close()
