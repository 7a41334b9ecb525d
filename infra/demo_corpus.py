"""The demo's corpus stage: a classifier from a second generated crawl, then one corpus build per demo corpus.

Demo-only: it generates data with `infra.sample_crawl` (never shipped to executors), so it lives in infra/
and calls the Spark jobs, not the reverse. Everything it does is set in `config.demo`:

    classifier/          fastText model trained on `demo.classifier_docs` pages of a crawl seeded run.seed + 1
    <name>/ per corpus   `spark_jobs.build_job.build_corpus` over `sample-data/`, with the e-commerce
                         filter on or off as `demo.corpora[name]` says (off: general web text for phase 1)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from infra.core import fs
from infra.core.config import RexbertConfig
from infra.sample_crawl.generate import GROUND_TRUTH_NAME, generate_sample_crawl
from spark_jobs.build_job import build_corpus
from spark_jobs.extract_job import run_extract
from spark_jobs.output import read_parquet_dir
from spark_jobs.session import stage_session
from spark_jobs.train_classifier_job import format_metrics, train_from_sources

LABELED_COLUMNS = ("url", "title", "text", "product", "html_signals")


def crawl_to_jsonl(spark: SparkSession, crawl_dir: Path, out_jsonl: Path, config: RexbertConfig) -> int:
    """Extract a generated crawl with the extract stage and join its ground truth into labelled JSONL."""
    truth = {}
    with (crawl_dir / GROUND_TRUTH_NAME).open() as fh:
        for line in fh:
            row = json.loads(line)
            truth[row["url"]] = "ecommerce" if row["label"] == "ecommerce" else "non_ecommerce"
    extracted = crawl_dir.parent / "train-extracted"
    run_extract(spark, [str(crawl_dir)], str(extracted), config.corpus)
    rows = read_parquet_dir(spark, str(extracted)).select(*LABELED_COLUMNS).collect()
    n = 0
    with out_jsonl.open("w") as fh:
        for row in rows:
            label = truth.get(row["url"])
            if label is None or not row["text"]:
                continue
            product = row["product"].asDict() if row["product"] is not None else None
            record = {"text": row["text"], "label": label, "url": row["url"], "title": row["title"],
                      "product": product, "html_signals": row["html_signals"]}
            fh.write(json.dumps(record) + "\n")
            n += 1
    return n


def train_demo_classifier(
    spark: SparkSession, config: RexbertConfig, out_dir: Path, docs: int | None = None
) -> dict[str, Any]:
    """The demo's classifier, from a crawl generated with seed run.seed + 1 (needs no ../shared/data).

    Args:
        docs: pages of that crawl (default `config.demo.classifier_docs`).
    """
    docs = config.demo.classifier_docs if docs is None else docs
    out_dir = Path(out_dir)
    crawl = out_dir / "train-crawl"
    # Several files so extraction runs in parallel (Spark distributes input files).
    generate_sample_crawl(crawl, docs=docs, seed=config.run.seed + 1, docs_per_file=max(25, docs // 4),
                          progress=False)
    labeled = out_dir / "labeled.jsonl"
    crawl_to_jsonl(spark, crawl, labeled, config)
    metrics = train_from_sources(out_dir / "model.bin", labeled_jsonl=labeled, seed=config.run.seed,
                                 threshold=config.corpus.filter.ecommerce_threshold)
    print(f"demo classifier: {format_metrics(metrics)}")
    return metrics


def run_corpus_stage(config: RexbertConfig, root: str | Path, spark: SparkSession | None = None) -> dict[str, Any]:
    """Train the demo classifier, then build every corpus of `config.demo.corpora` from `root/sample-data`.

    Returns the classifier's held-out metrics and, per corpus, its funnel, counts and folder.
    """
    start = time.perf_counter()
    root = Path(root)
    crawl = root / "sample-data"
    inputs = [file for _, file in fs.list_inputs([crawl], kinds=("warc",))] if crawl.is_dir() else []
    if not inputs:
        raise FileNotFoundError(f"no sample crawl in {crawl}: generate it first")
    summary: dict[str, Any] = {}
    with stage_session("rexbert-demo-corpus", config.spark, root, spark) as spark:
        summary["classifier"] = train_demo_classifier(spark, config, root / "classifier")
        for name, ecommerce_filter in config.demo.corpora.items():
            corpus_config = config.model_copy(deep=True)
            corpus_config.corpus.filter.ecommerce_filter = ecommerce_filter
            manifest = build_corpus(inputs, str(root / name), corpus_config, summary["classifier"]["model"],
                                    spark=spark)
            summary[name] = {"funnel": manifest["funnel"], "counts": manifest["counts"], "path": str(root / name),
                             "ecommerce_filter": ecommerce_filter}
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary
