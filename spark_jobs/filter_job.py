"""Classify + filter stage on Spark: e-commerce score, category, quality signals and a drop reason per row.

Reads `extracted/` Parquet and writes `filtered/` with EVERY input row plus `ecom_score`, `category`,
the quality signal columns, `page_kind` (the extractor's own guess), `quality_rules` (commerce / general)
and `filter_reason` (null when kept), so each dropped document keeps its reason. The decisions are
`corpus.filter.quality.DocumentFilter` (datatrove's filters, read with `CommerceRules` on commerce pages)
and `corpus.filter.classify.EcomClassifier` (fastText), run unchanged inside `mapInArrow` partitions.

    spark-submit spark_jobs/filter_job.py --input OUT/extracted --output OUT/filtered --classifier model.bin
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

from pyspark import SparkFiles
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from corpus.filter.quality import SIGNAL_COLUMNS
from infra.core import fs
from infra.core.config import CorpusConfig, load_config
from infra.core.manifest import StageStats, build_manifest, check_upstream, write_manifest
from infra.core.outputs import check_output, handle_sigterm, staged_output
from spark_jobs.output import read_parquet_dir, ship_file, write_parquet

STAGE = "filter"  # the manifest's stage and the output's owner: a rerun replaces only its own folder
ERROR_PREFIX = "error_"
_SIGNAL_TYPES = {"word_count": T.LongType(), "stop_word_count": T.LongType()}


def filter_schema(input_schema: T.StructType) -> T.StructType:
    """The input's columns plus the filter's: score, category, quality signals, the extractor's page kind
    (`signal_page_kind`), which quality rules read the page ("commerce" / "general") and the drop reason."""
    added = [T.StructField("ecom_score", T.DoubleType()), T.StructField("category", T.StringType())]
    added += [T.StructField(c, _SIGNAL_TYPES.get(c, T.DoubleType())) for c in SIGNAL_COLUMNS]
    added += [T.StructField("page_kind", T.StringType()), T.StructField("quality_rules", T.StringType())]
    added.append(T.StructField("filter_reason", T.StringType()))
    names = {f.name for f in added}
    return T.StructType([f for f in input_schema.fields if f.name not in names] + added)


def _product_text(product: dict | None) -> str:
    if not product:
        return ""
    return " ".join(str(product.get(k) or "") for k in ("name", "brand", "description"))


def make_partition_fn(config: CorpusConfig, model_name: str | None, labels: dict[str, str], schema: T.StructType):
    """The per-partition function: load the model and datatrove filters once, then decide row by row."""
    filter_config = config.filter
    field_names = schema.fieldNames()

    def run(batches):
        import pyarrow as pa

        from corpus.filter.classify import EcomClassifier, page_features
        from corpus.filter.quality import DocumentFilter, categorize, quality_signals, signal_page_kind

        classifier = EcomClassifier(SparkFiles.get(model_name)) if model_name else None
        decide = DocumentFilter(filter_config)
        arrow_schema = None
        for batch in batches:
            rows = batch.to_pylist()
            scores: list[float | None] = [None] * len(rows)
            failed: dict[int, Exception] = {}  # rows whose features could not be built: counted as errors below
            if classifier is not None:
                # Pages the cheap checks drop (empty, another language) are not scored (nor categorised below).
                features, scored = [], []
                for i, r in enumerate(rows):
                    try:
                        if decide.precheck(r.get("text"), r.get("lang"), r.get("lang_score")) is None:
                            features.append(page_features(r.get("text"), r.get("url"), r.get("title"),
                                                          r.get("product"), r.get("html_signals")))
                            scored.append(i)
                    except Exception as exc:  # one bad row is counted (below), never the end of the job
                        failed[i] = exc
                for i, score in zip(scored, classifier.score_lines(features), strict=True):
                    scores[i] = score
            for i, (row, score) in enumerate(zip(rows, scores, strict=True)):
                text = row.get("text") or ""
                row["ecom_score"] = score
                try:
                    if i in failed:
                        raise failed[i]
                    row.update(quality_signals(text))
                    row["page_kind"] = signal_page_kind(row.get("has_product_markup"), row.get("html_signals"))
                    row["quality_rules"] = decide.rules_for(row)
                    verdict = decide.filter(row)
                    row["filter_reason"] = verdict.reason
                    label = labels.get(row.get("url") or "") or labels.get(row.get("doc_id") or "")
                    row["category"] = label
                    if verdict.reason is None:
                        row["text"] = verdict.text
                        # Categories describe the corpus: only kept pages need the keyword rules.
                        row["category"] = label or categorize(row.get("title"), text, _product_text(row.get("product")))
                except Exception as exc:  # one bad document is counted, never the end of the job
                    row.update({c: None for c in SIGNAL_COLUMNS})
                    row["filter_reason"] = f"{ERROR_PREFIX}{type(exc).__name__.lower()}"
            if arrow_schema is None:
                from pyspark.sql.pandas.types import to_arrow_schema

                arrow_schema = to_arrow_schema(schema)
            yield pa.RecordBatch.from_pylist([{k: r.get(k) for k in field_names} for r in rows], schema=arrow_schema)

    return run


def resolve_classifier(config: CorpusConfig, classifier: str | None) -> str | None:
    model = classifier or config.filter.classifier
    if config.filter.ecommerce_filter and model is None:
        raise ValueError(
            "the e-commerce filter is on but no classifier was given: pass --classifier MODEL.bin "
            "(train one with `rexbert corpus train-classifier`) or set corpus.filter.ecommerce_filter=false"
        )
    if model is not None and not fs.is_file(model):
        raise FileNotFoundError(f"classifier model not found: {model}")
    return model


def stats_from_reasons(counts: dict[str | None, int], seconds: float = 0.0) -> StageStats:
    """Stage counts from a filter_reason histogram: null is kept, error_* are errors, the rest filtered."""
    stats = StageStats(seconds=seconds)
    for reason, n in counts.items():
        stats.input += n
        if reason is None:
            stats.kept += n
        elif reason.startswith(ERROR_PREFIX):
            stats.error(reason.removeprefix(ERROR_PREFIX), n)
        else:
            stats.drop(reason, n)
    return stats


def run_filter(
    spark: SparkSession, input: str, output: str, config: CorpusConfig, classifier: str | None = None
) -> dict[str, Any]:
    """Score, categorise and filter `input` (extracted/ Parquet) into `output` (filtered/); returns the manifest."""
    from corpus.filter.quality import load_category_labels

    start = time.perf_counter()
    check_output(output, STAGE, [input])  # before any work: never a user's folder, an input or a file
    upstream = check_upstream([input])  # extracted/ must be finished, and built from what is there now
    model = resolve_classifier(config, classifier)
    model_name = ship_file(spark, model, "ecom") if model is not None else None
    labels = load_category_labels(config.filter.category_labels) if config.filter.category_labels else {}
    df = read_parquet_dir(spark, input)
    n_input = df.count()
    # Several even partitions per core: Parquet splits follow file sizes, and one long partition would
    # leave the other cores idle at the end (measured: 2 uneven partitions cost 30% of the stage's time).
    target = spark.sparkContext.defaultParallelism * 4
    if df.rdd.getNumPartitions() < target:
        df = df.repartition(target)
    schema = filter_schema(df.schema)
    out_df = df.mapInArrow(make_partition_fn(config, model_name, labels, schema), schema)
    with staged_output(output, STAGE, [input]) as staging:
        rows_written = sum(write_parquet(out_df, staging).values())
        # The counts come from what was written: one pass over the filter_reason column of the output.
        written = read_parquet_dir(spark, staging).select("filter_reason")
        reasons = {r["filter_reason"]: r["count"] for r in written.groupBy("filter_reason").count().collect()}
        stats = stats_from_reasons(reasons, time.perf_counter() - start)
        if not stats.input == rows_written == n_input:
            raise RuntimeError(f"filter wrote {rows_written} rows ({stats.input} read back) for {n_input} input rows")
        manifest = build_manifest(
            STAGE,
            stats,
            config=config.filter,
            inputs=[input],
            upstream=upstream,
            outputs={"path": output, "rows": stats.input},
            extra={
                "classifier": str(model) if model else None,
                "ecommerce_filter": config.filter.ecommerce_filter,
                "ecommerce_threshold": config.filter.ecommerce_threshold,
                "docs_per_s": round(stats.input / max(stats.seconds, 1e-9), 2),
            },
        )
        write_manifest(staging, manifest)
    return manifest


def reason_counts(manifest: dict) -> Counter:
    counts = manifest["counts"]
    return Counter(counts.get("filtered", {})) + Counter(counts.get("errors", {}))


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.session import run_stage_job

    handle_sigterm()  # a cancelled spark-submit (SIGTERM) removes its staging folder as Ctrl-C does
    parser = argparse.ArgumentParser(description="Classify + filter stage (extracted/ -> filtered/).")
    parser.add_argument("--input", type=fs.absolute, required=True)
    parser.add_argument("--output", type=fs.absolute, required=True)
    parser.add_argument("--classifier", type=fs.absolute, default=None)
    parser.add_argument("--config", type=fs.absolute, default=None,
                        help="Run config YAML, local or a URI (corpus: and spark:).")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    manifest = run_stage_job("rexbert-filter", config, args.output,
                             lambda spark: run_filter(spark, args.input, args.output, config.corpus, args.classifier))
    print(manifest["counts"])


if __name__ == "__main__":
    main()
