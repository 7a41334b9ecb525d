"""The Spark extract job on real WARCs plus a generated crawl: accounting, columns, atomic reruns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.core.config import CorpusConfig
from infra.core.manifest import read_manifest
from spark_jobs.extract_job import DOC_SCHEMA, ERRORS_DIR, run_extract
from spark_jobs.output import read_parquet_dir

pytestmark = [pytest.mark.spark, pytest.mark.shared_data]

CONTRACT = {"doc_id", "url", "domain", "fetch_date", "source", "title", "text", "lang", "lang_score", "extractor",
            "html_bytes", "product", "has_product_markup", "html_signals"}  # fmt: skip


@pytest.fixture(scope="module")
def inputs(shared_data, tmp_path_factory):
    from infra.sample_crawl.generate import generate_sample_crawl

    crawl = tmp_path_factory.mktemp("crawl")
    generate_sample_crawl(crawl, docs=200, seed=7, docs_per_file=100, progress=False)
    texts = tmp_path_factory.mktemp("texts") / "ffw.jsonl"
    rows = [
        {
            "text": "Organic cotton sheets, 300 thread count, in six colours.",
            "url": "https://s.test/1",
            "domain": "home",
        },
        {"text": "", "url": "https://s.test/2", "domain": "home"},
    ]
    texts.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    return {"warc": str(shared_data / "warc"), "crawl": str(crawl), "texts": str(texts)}


def _read(spark, path: Path):
    """A stage folder's Parquet, read as the next stages read it."""
    return read_parquet_dir(spark, str(path))


def _leftovers(path: Path) -> list[str]:
    return [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]


def test_extract_job_accounts_for_every_record(spark, inputs, tmp_path):
    out = tmp_path / "extracted"
    manifest = run_extract(spark, [inputs["warc"], inputs["crawl"], inputs["texts"]], str(out), CorpusConfig())
    counts = manifest["counts"]
    errors = counts["errors"]
    assert counts["input"] == counts["kept"] + sum(counts["filtered"].values()) + sum(errors.values())
    truth = [json.loads(line) for line in Path(inputs["crawl"], "ground-truth.jsonl").read_text().splitlines()]
    defects = [t["defect"] for t in truth if t["defect"]]
    # real WARCs: 16 + 29 responses and the clipped record; generated pages; 3 JSONL lines
    assert counts["input"] == 16 + 29 + 1 + len(truth) + 3
    assert errors["truncated_record"] == 1 + defects.count("truncated")
    assert errors["bad_gzip"] == defects.count("bad_gzip") and errors["undecodable"] == defects.count("undecodable")
    assert errors["bad_json"] == 1 and counts["filtered"]["empty_text"] >= 1
    assert manifest["non_document_records"]["request"] >= 17 + len(truth)
    assert read_manifest(out)["counts"] == counts

    docs = _read(spark, out)
    assert CONTRACT <= set(docs.columns)
    assert [(f.name, f.dataType.simpleString()) for f in docs.schema] == [
        (f.name, f.dataType.simpleString()) for f in DOC_SCHEMA
    ]
    assert docs.count() == counts["kept"]
    assert docs.select("doc_id").distinct().count() == counts["kept"]
    product = docs.where("product.sku is not null").select("product.*", "price_value", "has_product_markup").first()
    assert product["name"] and product["price_value"] > 0 and product["has_product_markup"] in ("jsonld", "microdata")
    assert docs.where("extractor = 'precomputed'").count() == 1
    assert {r["source"].split(":")[0] for r in docs.select("source").distinct().collect()} == {"warc", "jsonl"}
    error_rows = spark.read.parquet(str(out / ERRORS_DIR))
    assert error_rows.count() == sum(errors.values())
    assert error_rows.where("kind = 'truncated_record' and url like 'http://www.houstonpress.com/%'").count() == 1


def test_rerun_replaces_output_and_failed_run_leaves_nothing(spark, inputs, shared_data, tmp_path):
    out = tmp_path / "extracted"
    one_file = [str(shared_data / "warc" / "warcfile.warc.gz")]
    first = run_extract(spark, one_file, str(out), CorpusConfig())
    (out / "stale-marker").write_text("from the first run")
    second = run_extract(spark, one_file, str(out), CorpusConfig())
    assert second["counts"]["kept"] == first["counts"]["kept"] == _read(spark, out).count()
    assert not (out / "stale-marker").exists() and _leftovers(out) == []

    # a corrupt language-id model fails the job inside the workers: the old output stays whole,
    # a fresh output folder never appears, and no staging folder is left behind
    bad_model = tmp_path / "lid.bin"
    bad_model.write_bytes(b"not a fasttext model")
    broken = CorpusConfig.model_validate({"extract": {"langid_model": str(bad_model)}})
    for target in (out, tmp_path / "fresh"):
        with pytest.raises(Exception, match="wrong file format"):
            run_extract(spark, one_file, str(target), broken)
        assert _leftovers(target) == []
    assert read_manifest(out)["created_utc"] == second["created_utc"]
    assert not (tmp_path / "fresh").exists()


def test_slow_pages_are_timeout_errors_in_spark(spark, shared_data, tmp_path):
    config = CorpusConfig.model_validate({"extract": {"timeout_s": 0.0005}})
    manifest = run_extract(spark, [str(shared_data / "warc" / "warcfile.warc.gz")], str(tmp_path / "x"), config)
    counts = manifest["counts"]
    assert counts["errors"].get("timeout", 0) >= 4  # pages that reach extraction need far more than 0.5 ms
    assert (
        counts["input"] == 16 and counts["kept"] + counts["errors"]["timeout"] + sum(counts["filtered"].values()) == 16
    )


def test_a_file_named_twice_is_read_once(shared_data):
    """The extract job lists its inputs with infra.core.fs.list_inputs: a folder and a file in it name it once."""
    from infra.core import fs

    folder = shared_data / "warc"
    one = sorted(folder.glob("*.warc.gz"))[0]
    files = fs.list_inputs([str(folder), str(one)])
    assert len(files) == len(set(files)) == len(list(folder.glob("*.warc.gz")))


def test_parquet_files_with_different_columns_keep_them_all(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = "Soft merino wool runners with a cushioned sole, machine washable and made for all day comfort. " * 3
    folder = tmp_path / "texts"
    folder.mkdir()
    pq.write_table(pa.table({"text": [text], "url": ["https://a.example/1"]}), folder / "a.parquet")
    pq.write_table(pa.table({"text": [text + "Blue."], "url": ["https://b.example/2"],
                             "fetch_date": ["2026-01-02"]}), folder / "b.parquet")
    manifest = run_extract(spark, [str(folder)], str(tmp_path / "out"), CorpusConfig())
    assert manifest["counts"]["kept"] == 2
    dates = {r["url"]: r["fetch_date"] for r in read_parquet_dir(spark, str(tmp_path / "out")).collect()}
    assert dates == {"https://a.example/1": None, "https://b.example/2": "2026-01-02"}
