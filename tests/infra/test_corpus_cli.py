"""`rexbert corpus` through typer's CliRunner: help, bad options, training and a build."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from infra.cli import app
from infra.core.manifest import check_manifest, read_manifest
from infra.sample_crawl.generate import generate_sample_crawl
from tests.corpus.test_classify import labeled_rows, write_jsonl

runner = CliRunner()


def test_corpus_help_lists_the_commands():
    result = runner.invoke(app, ["corpus", "--help"])
    assert result.exit_code == 0, result.output
    for name in ("train-classifier", "build", "extract", "filter", "dedup"):
        assert name in result.output


def test_bad_option_fails_non_zero(tmp_path):
    result = runner.invoke(app, ["corpus", "build", "--input", "x", "--output", str(tmp_path), "--bogus"])
    assert result.exit_code != 0


def test_train_classifier_needs_labels(tmp_path):
    result = runner.invoke(app, ["corpus", "train-classifier", "--output", str(tmp_path / "m.bin")])
    assert result.exit_code != 0


def test_train_classifier_from_jsonl_prints_precision_and_recall(tmp_path):
    data = write_jsonl(labeled_rows(), tmp_path / "labeled.jsonl")
    result = runner.invoke(app, ["corpus", "train-classifier", "--labeled-jsonl", str(data),
                                 "--output", str(tmp_path / "m.bin")])
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and "recall" in result.output
    assert (tmp_path / "m.bin").is_file()
    assert json.loads((tmp_path / "m.bin.metrics.json").read_text())["precision"] >= 0.9


@pytest.mark.spark
def test_build_runs_with_a_config_override(spark, tmp_path):
    generate_sample_crawl(tmp_path / "crawl", docs=15, seed=7, progress=False)
    out = tmp_path / "out"
    # the folder: its crawl file and the file of planted malformed records (the truncated last page among them)
    result = runner.invoke(app, ["corpus", "build", "--input", str(tmp_path / "crawl"),
                                 "--output", str(out), "--corpus.filter.ecommerce_filter=false"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["input"] >= 15 and manifest["ecommerce_filter"] is False
    assert "corpus" in result.output and (out / "report" / "index.html").is_file()


@pytest.mark.spark
def test_a_stage_run_alone_writes_its_manifest_and_the_runs_resolved_config(spark, tmp_path):
    text = "the quick brown fox jumps over the lazy dog and runs far away into the green hills " * 3
    rows = [{"doc_id": "a", "url": "http://x.test/a", "text": text},
            {"doc_id": "b", "url": "http://x.test/b", "text": text},
            {"doc_id": "c", "url": "http://x.test/c", "text": "socks and shoes on sale with free shipping " * 4}]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "deduped"
    result = runner.invoke(app, ["corpus", "dedup", "-i", str(docs), "-o", str(out), "--corpus.dedup.bands=7"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    stats = check_manifest(manifest)
    assert manifest["stage"] == "dedup" and (stats.input, stats.kept, stats.duplicates) == (3, 2, 1)
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert resolved["corpus"]["dedup"]["bands"] == 7  # the override, in the whole run's config
