"""Stage counters sum across partitions and refuse counts that do not add up."""

from __future__ import annotations

import pytest

from infra.core.manifest import AccountingError, StageStats, build_manifest, read_manifest, write_manifest


def test_partition_counters_sum_and_check():
    a = StageStats(input=5, kept=3)
    a.drop("short_doc")
    a.error("timeout")
    b = StageStats(input=4, kept=2, duplicates=1)
    b.drop("short_doc")
    total = a + b
    total.check()
    assert total.to_dict()["filtered"] == {"short_doc": 2}
    assert StageStats.from_dict(total.to_dict()).to_dict() == total.to_dict()


def test_lost_record_is_an_accounting_error_and_no_manifest_is_built():
    stats = StageStats(input=3, kept=1)
    stats.drop("not_ecommerce")
    with pytest.raises(AccountingError, match="input 3"):
        build_manifest("filter", stats)


def test_manifest_round_trip_and_missing_manifest_message(tmp_path):
    write_manifest(tmp_path, build_manifest("dedup", StageStats(input=2, kept=1, duplicates=1), inputs=["a"]))
    manifest = read_manifest(tmp_path)
    assert manifest["counts"]["duplicates"] == 1 and manifest["versions"]["python"]
    with pytest.raises(FileNotFoundError, match="did not finish"):
        read_manifest(tmp_path / "nothing")


@pytest.mark.spark
def test_yield_per_page_type_accounts_for_every_page_of_a_generated_crawl(spark, tmp_path):
    """A real build over a small generated crawl: every page of the ground truth is entered under its page
    type, leaves at one exit or reaches the corpus, and the totals are the build manifest's."""
    import json
    from collections import Counter

    from corpus.extract.readers import iter_inputs
    from corpus.extract.stage import ExtractedDoc, ExtractStage
    from corpus.filter.classify import load_labeled_jsonl, train_classifier
    from infra.core.config import load_config
    from infra.sample_crawl.generate import GROUND_TRUTH_NAME, generate_sample_crawl
    from spark_jobs.build_job import build_corpus
    from spark_jobs.output import read_parquet_dir

    # The classifier learns from a second generated crawl, extracted in this process.
    generate_sample_crawl(tmp_path / "train", docs=120, seed=4, docs_per_file=120, progress=False)
    labels = {t["record_id"]: t["label"] for t in map(json.loads, (tmp_path / "train" / GROUND_TRUTH_NAME).open())}
    with (tmp_path / "labeled.jsonl").open("w") as fh:
        for doc in ExtractStage().run(iter_inputs([str(tmp_path / "train")])):
            if isinstance(doc, ExtractedDoc):
                fh.write(json.dumps({"text": doc.text, "url": doc.url, "title": doc.title,
                                     "html_signals": doc.html_signals,
                                     "label": "ecommerce" if labels[doc.record_id] == "ecommerce" else "other"}) + "\n")
    model = tmp_path / "model.bin"
    train_classifier(load_labeled_jsonl(tmp_path / "labeled.jsonl"), model)
    # The pre-classifier on: its drops and the other extract drops each leave at their own exit, page by page.
    config = load_config(None, {"run": {"seed": 3}, "corpus": {"extract": {"prefilter": "commerce_evidence"}}})
    # 200 pages: the generator then plants each kind of malformed record at least once.
    generate_sample_crawl(tmp_path / "crawl", docs=200, seed=3, docs_per_file=100, progress=False)
    inputs = sorted(str(p) for p in (tmp_path / "crawl").glob("*.warc.gz"))
    manifest = build_corpus(inputs, str(tmp_path / "out"), config, str(model), spark=spark)
    result = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())["yield"]

    assert result["page_types_from"] == "ground truth" and result["check"] == "ok"
    rows = {r["page_type"]: r for r in result["rows"]}
    for row in rows.values():
        assert row["entered"] == sum(row["exits"].values()) == sum(row["groups"].values())
        assert row["kept"] == row["exits"].get("corpus", 0) == row["groups"].get("corpus", 0)
    truth = [json.loads(line) for line in (tmp_path / "crawl" / GROUND_TRUTH_NAME).read_text().splitlines()]
    assert {t: r["entered"] for t, r in rows.items()} == dict(Counter(t["page_type"] for t in truth))
    counts = manifest["counts"]
    assert sum(r["entered"] for r in rows.values()) == counts["input"]
    assert sum(r["kept"] for r in rows.values()) == counts["kept"] > 0
    page_type = {t["url"]: t["page_type"] for t in truth}
    corpus = Counter(page_type[r["url"]] for r in read_parquet_dir(spark, str(tmp_path / "out" / "corpus")).collect())
    assert {t: r["kept"] for t, r in rows.items() if r["kept"]} == dict(corpus)
    assert rows.get("junk", {"kept": 0})["kept"] == 0
    extract_exits = Counter()
    for row in rows.values():
        extract_exits.update({e.removeprefix("extract:"): n for e, n in row["exits"].items()
                              if e.startswith("extract:") and not e.startswith("extract:error_")})
    assert extract_exits == Counter(manifest["stages"]["extracted"]["filtered"])
    assert extract_exits["no_commerce_evidence"] > 0
    assert sum(r["groups"].get("pre-classifier", 0) for r in rows.values()) == extract_exits["no_commerce_evidence"]
    assert all(r["groups"].get("pre-classifier", 0) == 0 for t, r in rows.items() if t in ("product", "category"))
    exits = Counter()
    for row in rows.values():
        exits.update(row["groups"])
    assert exits["classifier"] and exits["language"] and exits["reader error"], exits
    report = tmp_path / "out" / "report"
    assert (report / "yield.png").stat().st_size > 0 and "Yield per page type" in (report / "index.html").read_text()


def test_each_exit_lands_in_its_yield_column_and_a_count_that_does_not_add_up_is_named():
    from spark_jobs.corpus_report import _check_yield, exit_group

    assert [exit_group(e) for e in ("extract:error_bad_gzip", "extract:no_commerce_evidence", "extract:non_html",
                                    "filter:empty_text",
                                    "filter:wrong_language", "filter:not_ecommerce", "filter:gopher_short_doc",
                                    "filter:commerce_structured_dup_frac", "filter:error_valueerror",
                                    "dedup:duplicate", "corpus")] == [
        "reader error", "pre-classifier", "extract", "empty text", "language", "classifier", "quality rule",
        "quality rule", "filter error", "dedup", "corpus"]
    table = [{"page_type": "product", "entered": 3, "kept": 1,
              "exits": {"corpus": 1, "filter:gopher_short_doc": 1, "dedup:duplicate": 1}}]
    manifest = {"counts": {"input": 3, "kept": 1, "duplicates": 1},
                "stages": {"filtered": {"filtered": {"gopher_short_doc": 1}, "errors": {}}}}
    assert _check_yield(table, manifest) == "ok"
    manifest["counts"]["input"] = 4
    assert _check_yield(table, manifest) == "entered 3 != input 4"
