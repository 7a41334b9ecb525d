"""`build_corpus` end to end on the real WARCs plus a small generated crawl: counts add up across stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.core.config import load_config
from infra.core.manifest import (
    InputError,
    StageStats,
    build_manifest,
    check_manifest,
    check_upstream,
    read_manifest,
    write_manifest,
)
from infra.core.outputs import OutputError
from infra.demo_corpus import train_demo_classifier
from infra.sample_crawl.generate import generate_sample_crawl
from spark_jobs.build_job import STAGE_OWNERS, STAGES, build_corpus
from spark_jobs.output import read_parquet_dir

pytestmark = [pytest.mark.spark, pytest.mark.shared_data]


def _adds_up(counts: dict) -> bool:
    return counts["input"] == (
        counts["kept"] + sum(counts["filtered"].values()) + counts["duplicates"] + sum(counts["errors"].values())
    )


@pytest.fixture(scope="module")
def built(spark, shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    config = load_config(None, {"run": {"seed": 3}})
    generate_sample_crawl(tmp / "crawl", docs=40, seed=3, progress=False)
    classifier = train_demo_classifier(spark, config, tmp / "classifier", docs=80)
    inputs = sorted(str(p) for p in (tmp / "crawl").glob("*.warc.gz"))
    inputs += sorted(str(p) for p in (shared_data / "warc").glob("*.warc.gz"))
    manifest = build_corpus(inputs, str(tmp / "out"), config, classifier["model"], spark=spark)
    return tmp / "out", manifest, classifier


def test_manifest_adds_up_within_and_across_stages(built):
    out, manifest, _ = built
    assert _adds_up(manifest["counts"])
    assert json.loads((out / "manifest.json").read_text())["counts"] == manifest["counts"]
    stage_counts = {name: read_manifest(out / name)["counts"] for name in STAGES}
    for name, counts in stage_counts.items():
        assert _adds_up(counts), name
        check_manifest(read_manifest(out / name), name)  # the one schema for every stage
    check_manifest(read_manifest(out), "build")
    assert (out / "config.resolved.yaml").is_file()
    assert stage_counts["filtered"]["input"] == stage_counts["extracted"]["kept"]
    assert stage_counts["deduped"]["input"] == stage_counts["filtered"]["kept"]
    assert stage_counts["corpus"]["kept"] == manifest["counts"]["kept"] > 0
    assert stage_counts["extracted"]["errors"], "the clipped WARC and the crawl defects are counted as errors"
    funnel = [step["documents"] for step in manifest["funnel"]]
    assert funnel == sorted(funnel, reverse=True)


def test_corpus_holds_only_kept_non_duplicate_documents(spark, built):
    out, manifest, _ = built
    corpus = read_parquet_dir(spark, str(out / "corpus"))
    assert corpus.columns == ["doc_id", "url", "text", "ecom_score", "category", "source"]
    ids = {r["doc_id"] for r in corpus.select("doc_id").collect()}
    assert len(ids) == manifest["counts"]["kept"]
    filtered = read_parquet_dir(spark, str(out / "filtered"))
    kept = {r["doc_id"] for r in filtered.where("filter_reason IS NULL").select("doc_id").collect()}
    dups = {r["doc_id"] for r in read_parquet_dir(spark, str(out / "deduped")).where("is_duplicate")
            .select("doc_id").collect()}
    assert ids == kept - dups
    threshold = manifest["config"]["corpus"]["filter"]["ecommerce_threshold"]
    assert min(r["ecom_score"] for r in corpus.select("ecom_score").collect()) >= threshold


def test_report_files_exist(built):
    out, manifest, _ = built
    report = out / "report"
    for name in ("index.html", "funnel.png", "reasons.png", "categories.png", "ecom_score.png",
                 "quality_signals.png"):
        assert (report / name).stat().st_size > 0, name
    assert "Funnel" in (report / "index.html").read_text()
    assert Path(manifest["report"]) == report / "index.html"


@pytest.mark.heavy
def test_demo_corpus_stage_builds_ecom_and_general_corpora(spark, tmp_path):
    from infra.demo_corpus import run_corpus_stage

    config = load_config(None, {"run": {"seed": 0}})
    generate_sample_crawl(tmp_path / "sample-data", docs=400, seed=0, progress=False)
    result = run_corpus_stage(config, tmp_path, spark=spark)
    clf = result["classifier"]
    print(f"demo classifier held-out: precision {clf['precision']} recall {clf['recall']}; {result['seconds']}s")
    assert clf["precision"] >= 0.8 and clf["recall"] >= 0.8
    assert (tmp_path / "classifier" / "model.bin").is_file()
    for name in ("ecom", "general"):
        for folder in ("extracted", "filtered", "deduped", "corpus", "report"):
            assert (tmp_path / name / folder).is_dir(), (name, folder)
        assert _adds_up(read_manifest(tmp_path / name)["counts"])
    assert result["general"]["counts"]["kept"] > result["ecom"]["counts"]["kept"] > 0
    assert "not_ecommerce" not in json.dumps(result["general"]["counts"]["filtered"])


def test_a_rerun_missing_its_classifier_fails_before_it_touches_the_previous_build(spark, shared_data, tmp_path):
    out = tmp_path / "out"
    write_manifest(out, build_manifest("build", StageStats()))  # what an earlier, finished build left
    before = (out / "manifest.json").read_bytes()
    inputs = [str(sorted((shared_data / "warc").glob("*.warc.gz"))[0])]
    with pytest.raises(FileNotFoundError, match="classifier"):
        build_corpus(inputs, str(out), load_config(None, {}), str(tmp_path / "missing.bin"), spark=spark, report=False)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] and (out / "manifest.json").read_bytes() == before


def test_a_rerun_that_fails_after_filtered_leaves_nothing_downstream_that_looks_complete(spark, tmp_path):
    """The issue's case: a rerun stopped after filtered/ must not leave the old deduped/ and corpus/ (nor the
    old top-level manifest) looking complete; downstream stages refuse them; the next rerun replaces them."""
    generate_sample_crawl(tmp_path / "crawl", docs=15, seed=5, progress=False)
    inputs = [str(tmp_path / "crawl" / "crawl-00000.warc.gz")]
    out = tmp_path / "out"
    good = load_config(None, {"corpus": {"filter": {"ecommerce_filter": False}}})
    first = build_corpus(inputs, str(out), good, spark=spark, report=False)
    old = {name: read_manifest(out / name)["run_id"] for name in STAGES}
    broken = load_config(None, {"corpus": {"filter": {"ecommerce_filter": False}, "dedup": {"text_column": "nope"}}})
    with pytest.raises(ValueError, match="no 'nope' column"):  # dedup fails: extracted/ and filtered/ are new
        build_corpus(inputs, str(out), broken, spark=spark, report=False)
    assert not (out / "manifest.json").exists()
    for name in ("extracted", "filtered"):
        assert read_manifest(out / name)["run_id"] != old[name], name  # rewritten by the failed rerun
    for name in ("deduped", "corpus"):
        assert not (out / name / "manifest.json").exists(), name  # the old run's: no longer complete
        with pytest.raises(InputError, match=f"unfinished '{STAGE_OWNERS[name]}' output"):
            check_upstream([str(out / name)])
    again = build_corpus(inputs, str(out), good, spark=spark, report=False)
    assert read_manifest(out)["run_id"] == again["run_id"] != first["run_id"]
    assert again["funnel"] == first["funnel"]  # same input, same config: the same corpus
    assert check_upstream([str(out / "corpus")])[0]["stage"] == "corpus"  # every stage consistent again
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_a_root_holding_a_users_folder_or_an_input_is_refused_before_spark_runs(tmp_path):
    out = tmp_path / "out"
    write_manifest(out, build_manifest("build", StageStats()))  # a previous build's root...
    (out / "corpus").mkdir()
    (out / "corpus" / "notes.txt").write_text("mine")  # ...whose corpus/ the corpus stage did not write
    config = load_config(None, {"corpus": {"filter": {"ecommerce_filter": False}}})
    with pytest.raises(OutputError, match=r"out/corpus is not empty and is not a finished stage output"):
        build_corpus([str(tmp_path / "crawl.warc.gz")], str(out), config)
    with pytest.raises(OutputError, match="overlaps the input"):
        build_corpus([str(tmp_path)], str(out), config)
    assert (out / "corpus" / "notes.txt").read_text() == "mine" and (out / "manifest.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["corpus", "manifest.json"]
