"""The filter stage on real local Spark: every row kept with its reason, counts that add up."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.filter.classify import load_labeled_jsonl, train_classifier
from infra.core.config import CorpusConfig
from spark_jobs.filter_job import run_filter
from spark_jobs.output import read_parquet_dir
from tests.corpus.test_classify import labeled_rows, write_jsonl

pytestmark = pytest.mark.spark

SHOP = (
    "Waxed cotton field jacket\n$189.00\nIn stock\nAdd to cart\nFree shipping on orders over $50.\n"
    "The jacket is made of waxed cotton and has been tested in the rain for many hours. "
    "It keeps you dry and warm on long walks, and the hood folds into the collar when you do not need it. "
    "Two deep pockets hold a phone and keys, and the zip is covered so that water stays out. "
    "We ship it within two days and you can return it for free within thirty days of delivery.\n"
)
NEWS = (
    "The council said on Tuesday that the research was published after the election. "
    "We think the results were clear, and they said the museum will open more rooms next week. "
    "The report says the history of the town is longer than most people think, and the weather was mild. "
    "They have been working on it for years and the thread of the story was easy to follow for everyone.\n"
)
_PRODUCT = pa.struct([(k, pa.string()) for k in ("name", "brand", "description", "price", "currency", "sku", "gtin")])
SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("url", pa.string()), ("domain", pa.string()), ("fetch_date", pa.string()),
    ("source", pa.string()), ("title", pa.string()), ("text", pa.string()), ("lang", pa.string()),
    ("lang_score", pa.float64()), ("extractor", pa.string()), ("html_bytes", pa.int64()), ("product", _PRODUCT),
    ("has_product_markup", pa.string()),
])


def extracted_rows() -> list[dict]:
    base = {"fetch_date": "2026-01-01", "source": "test", "extractor": "trafilatura", "html_bytes": 1000,
            "lang": "en", "lang_score": 0.99, "product": None, "has_product_markup": None}
    product = {"name": "Field jacket", "brand": "Acme", "description": None, "price": "189.00", "currency": "USD",
               "sku": "J1", "gtin": None}
    return [
        {**base, "doc_id": "shop", "url": "https://shop.example/products/jacket", "domain": "shop.example",
         "title": "Field jacket", "text": SHOP, "product": product, "has_product_markup": "jsonld"},
        {**base, "doc_id": "news", "url": "https://news.example/2026/council", "domain": "news.example",
         "title": "Council news", "text": NEWS},
        {**base, "doc_id": "german", "url": "https://shop.example/de/jacke", "domain": "shop.example",
         "title": "Jacke", "text": SHOP, "lang": "de", "product": product},
        {**base, "doc_id": "short", "url": "https://shop.example/products/sock", "domain": "shop.example",
         "title": "Sock", "text": "Sock $3.99 Add to cart"},
        {**base, "doc_id": "empty", "url": "https://shop.example/products/empty", "domain": "shop.example",
         "title": None, "text": None},
    ]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clf")
    examples = load_labeled_jsonl(write_jsonl(labeled_rows(), tmp / "labeled.jsonl"))
    train_classifier(examples, tmp / "model.bin")
    return str(tmp / "model.bin")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    path = tmp_path_factory.mktemp("extracted")
    pq.write_table(pa.Table.from_pylist(extracted_rows(), schema=SCHEMA), path / "part-0.parquet")
    (path / "manifest.json").write_text("{}")  # stage folders hold their manifest beside the data
    return str(path)


def test_filter_keeps_every_row_with_its_reason_and_counts_add_up(spark, extracted, model, tmp_path):
    out = tmp_path / "filtered"
    manifest = run_filter(spark, extracted, str(out), CorpusConfig(), model)
    rows = {r["doc_id"]: r for r in read_parquet_dir(spark, str(out)).collect()}
    assert set(rows) == {"shop", "news", "german", "short", "empty"}
    assert rows["shop"]["filter_reason"] is None and rows["shop"]["ecom_score"] >= 0.5
    assert rows["shop"]["category"] == "fashion" and rows["shop"]["quality_score"] > 0
    assert rows["news"]["filter_reason"] == "not_ecommerce" and rows["news"]["ecom_score"] < 0.5
    assert rows["german"]["filter_reason"] == "wrong_language" and rows["german"]["ecom_score"] is None  # not scored
    assert rows["short"]["filter_reason"] in {"gopher_short_doc", "gopher_rep_top_2_gram"}
    assert rows["empty"]["filter_reason"] == "empty_text" and rows["empty"]["word_count"] == 0
    counts = manifest["counts"]
    assert counts["input"] == 5 and counts["kept"] == 1
    assert counts["input"] == counts["kept"] + sum(counts["filtered"].values()) + sum(counts["errors"].values())
    assert json.loads((out / "manifest.json").read_text())["counts"] == counts


def test_ecommerce_filter_off_keeps_general_text(spark, extracted, tmp_path):
    config = CorpusConfig.model_validate({"filter": {"ecommerce_filter": False}})
    manifest = run_filter(spark, extracted, str(tmp_path / "general"), config, None)
    rows = {r["doc_id"]: r for r in read_parquet_dir(spark, str(tmp_path / "general")).collect()}
    assert rows["news"]["filter_reason"] is None and rows["news"]["ecom_score"] is None
    assert manifest["counts"]["kept"] == 2


def test_missing_classifier_fails_with_a_clear_message(spark, extracted, tmp_path):
    with pytest.raises(ValueError, match="no classifier"):
        run_filter(spark, extracted, str(tmp_path / "x"), CorpusConfig(), None)
    assert not (tmp_path / "x").exists()


SPECS = SHOP + "".join(f"Size {i}: {30 + i} x {40 + i} cm, {i}.5 kg, $ {19 + i}.99, 100 % cotton\n" for i in range(12))


def test_commerce_pages_get_commerce_rules_and_every_row_says_which(spark, tmp_path):
    """The same spec-heavy text: kept on a page whose raw HTML shows a shop, dropped by datatrove's alpha
    ratio on a page with no commerce signals; `page_kind` and `quality_rules` say why."""
    schema = SCHEMA.append(pa.field("html_signals", pa.string()))
    base = {**extracted_rows()[0], "text": SPECS, "product": None, "has_product_markup": None}
    rows = [{**base, "doc_id": "shop", "html_signals": "markup_none listed_0 cart_button price_many"},
            {**base, "doc_id": "plain", "url": "https://plain.example/specs", "html_signals": "markup_none listed_0"}]
    (tmp_path / "extracted").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "extracted" / "part-0.parquet")
    (tmp_path / "extracted" / "manifest.json").write_text("{}")
    config = CorpusConfig.model_validate({"filter": {"ecommerce_filter": False}})
    manifest = run_filter(spark, str(tmp_path / "extracted"), str(tmp_path / "out"), config, None)
    out = {r["doc_id"]: r for r in read_parquet_dir(spark, str(tmp_path / "out")).collect()}
    assert (out["shop"]["filter_reason"], out["shop"]["quality_rules"], out["shop"]["page_kind"]) == (
        None, "commerce", "commerce")
    assert (out["plain"]["filter_reason"], out["plain"]["quality_rules"], out["plain"]["page_kind"]) == (
        "gopher_below_alpha_threshold", "general", "unknown")
    assert manifest["counts"]["kept"] == 1 and manifest["counts"]["filtered"] == {"gopher_below_alpha_threshold": 1}
