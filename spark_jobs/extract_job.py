"""The extract stage on Spark: WARC / HTML / JSONL / Parquet inputs -> `extracted/` Parquet.

    spark-submit spark_jobs/extract_job.py --input crawl/ more.warc.gz --output out/extracted [--config run.yaml]

Files are listed through Hadoop's FileSystem and read with `sc.binaryFiles` (WARC, HTML) or
`spark.read.json/parquet` (already-extracted text), so `s3a://` and `gs://` paths work on clusters
as local paths do here. Each partition runs `corpus.extract.stage.ExtractStage` unchanged and emits
documents, error records and its counters as rows; the result is persisted once, so documents,
errors (`_errors/`) and the summed counters come from one pass. The manifest is checked
(input = kept + filtered + errors) and written last, inside `atomic_output`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from corpus.extract.readers import input_kind, iter_html_file, iter_warc, select_inputs, text_record
from corpus.extract.stage import ExtractStage
from corpus.record import PRODUCT_COLUMNS, ErrorRecord, ExtractedDoc
from infra.core.config import ExtractConfig
from infra.core.manifest import StageStats, build_manifest
from spark_jobs.output import atomic_output, write_stage_manifest

ERRORS_DIR = "_errors"
PRODUCT_SCHEMA = T.StructType([T.StructField(name, T.StringType()) for name in PRODUCT_COLUMNS])
DOC_SCHEMA = T.StructType(
    [
        T.StructField("doc_id", T.StringType(), False),
        T.StructField("url", T.StringType()),
        T.StructField("domain", T.StringType()),
        T.StructField("fetch_date", T.StringType()),
        T.StructField("source", T.StringType()),
        T.StructField("title", T.StringType()),
        T.StructField("text", T.StringType()),
        T.StructField("lang", T.StringType()),
        T.StructField("lang_score", T.DoubleType()),
        T.StructField("extractor", T.StringType()),
        T.StructField("html_bytes", T.LongType()),
        T.StructField("product", PRODUCT_SCHEMA),
        T.StructField("price_value", T.DoubleType()),
        T.StructField("has_product_markup", T.StringType()),
        T.StructField("html_signals", T.StringType()),
        T.StructField("domain_label", T.StringType()),
        T.StructField("record_id", T.StringType()),
    ]
)
ERROR_SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType(), False),
        T.StructField("source", T.StringType()),
        T.StructField("file", T.StringType()),
        T.StructField("offset", T.LongType()),
        T.StructField("url", T.StringType()),
        T.StructField("record_id", T.StringType()),
        T.StructField("message", T.StringType()),
    ]
)


def list_input_files(spark: SparkSession, inputs: list[str]) -> list[tuple[str, str]]:
    """(kind, file URI) for every input file: files as given, folders recursively, globs expanded."""
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    found: list[tuple[str, str]] = []
    for given in inputs:
        path = jvm.org.apache.hadoop.fs.Path(given)
        fs = path.getFileSystem(conf)
        statuses = fs.globStatus(path)
        if not statuses:
            raise FileNotFoundError(f"input not found: {given}")
        for status in statuses:
            if status.isDirectory():
                listing, files = fs.listFiles(status.getPath(), True), []
                while listing.hasNext():
                    files.append(listing.next().getPath().toString())
                found.extend(select_inputs(files))
            else:
                file = status.getPath().toString()
                if input_kind(file) is None:
                    raise ValueError(
                        f"unknown input kind for {file}: expected .warc(.gz), .html(.gz), .jsonl, .parquet"
                    )
                found.append((input_kind(file), file))
    return list(dict.fromkeys(found))  # a folder and a file inside it name that file once


def _emit(stage: ExtractStage, results) -> Iterator[tuple]:
    extractors, langs, markup = Counter(), Counter(), Counter()
    for result in results:
        if isinstance(result, ExtractedDoc):
            row = result.to_row()
            extractors[result.extractor] += 1
            langs[result.lang or "unknown"] += 1
            markup[result.has_product_markup or "none"] += 1
            yield ("doc", tuple(row[field.name] for field in DOC_SCHEMA.fields), None)
        elif isinstance(result, ErrorRecord):
            row = result.to_row()
            yield ("error", None, tuple(row[field.name] for field in ERROR_SCHEMA.fields))
    counts = {
        "stats": stage.stats.to_dict(),
        "non_document_records": dict(stage.non_document_records),
        "extractors": dict(extractors),
        "langs": dict(langs),
        "product_markup": dict(markup),
    }
    yield ("stats", None, json.dumps(counts))


def _extract_files(config_json: str, files: Iterator[tuple[str, bytes]]) -> Iterator[tuple]:
    """Partition function over (path, bytes) of WARC / HTML files."""
    stage = ExtractStage(ExtractConfig.model_validate_json(config_json))

    def records():
        for path, data in files:
            if input_kind(path) == "warc":
                yield from iter_warc(data, path)
            else:
                yield from iter_html_file(data, path)

    start = time.perf_counter()
    for item in _emit(stage, stage.run(records())):
        if item[0] == "stats":
            stage.stats.seconds = time.perf_counter() - start
            counts = json.loads(item[2])
            counts["stats"]["seconds"] = round(stage.stats.seconds, 3)
            item = ("stats", None, json.dumps(counts))
        yield item


def _extract_rows(config_json: str, rows: Iterator[Any]) -> Iterator[tuple]:
    """Partition function over rows of JSONL / Parquet text inputs (`_file`, `_index` added)."""
    from corpus.extract.readers import source_name
    from corpus.record import InputRecord

    config = ExtractConfig.model_validate_json(config_json)
    stage = ExtractStage(config)

    def records():
        for row in rows:
            data = row.asDict(recursive=True)
            file, index = data.pop("_file"), data.pop("_index")
            corrupt = data.pop("_corrupt_record", None)
            if corrupt is not None:
                kind = input_kind(file) or "jsonl"
                yield InputRecord(
                    "error", source_name(kind, file), file, index, reason="bad_json", message=corrupt[:200]
                )
                continue
            yield text_record(data, file, index, config.text_column, config.url_column, config.domain_column)

    yield from _emit(stage, stage.run(records()))


def _text_frame(spark: SparkSession, kind: str, files: list[str], config: ExtractConfig) -> DataFrame:
    if kind == "parquet":
        frame = spark.read.option("mergeSchema", "true").parquet(*files)  # files may differ in their columns
    else:
        frame = spark.read.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", "_corrupt_record")
        frame = frame.json(files)
    wanted = {config.text_column, config.url_column, config.domain_column, "title", "id", "date", "fetch_date",
              "_corrupt_record"}
    columns = [F.col(f"`{c}`").cast("string") for c in frame.columns if c in wanted]
    return frame.select(*columns, F.input_file_name().alias("_file"), F.monotonically_increasing_id().alias("_index"))


def run_extract(spark: SparkSession, inputs: list[str], output: str, config: Any) -> dict[str, Any]:
    """Extract every input into `output` (Parquet + `_errors/` + manifest.json); return the manifest.

    Args:
        config: the `corpus:` section (`CorpusConfig`); its `extract` sub-section is used.
    """
    extract_config: ExtractConfig = getattr(config, "extract", config)
    start = time.perf_counter()
    sc = spark.sparkContext
    config_json = extract_config.model_dump_json()
    model = extract_config.langid_model
    if model and "://" not in model and not Path(model).is_file():
        raise FileNotFoundError(f"corpus.extract.html.langid_model not found: {model}")
    files = list_input_files(spark, inputs)
    page_files = [file for kind, file in files if kind in ("warc", "html")]
    parts = []
    if page_files:
        partitions = extract_config.partitions or min(len(page_files), sc.defaultParallelism * 4)
        binary = sc.binaryFiles(",".join(page_files), minPartitions=max(1, partitions))
        parts.append(binary.mapPartitions(lambda it: _extract_files(config_json, it)))
    for kind in ("jsonl", "parquet"):
        text_files = [file for k, file in files if k == kind]
        if text_files:
            frame = _text_frame(spark, kind, text_files, extract_config)
            parts.append(frame.rdd.mapPartitions(lambda it: _extract_rows(config_json, it)))
    if not parts:
        raise FileNotFoundError(f"no WARC, HTML, JSONL or Parquet files in {inputs}")
    results = sc.union(parts) if len(parts) > 1 else parts[0]
    results = results.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with atomic_output(output) as staging:
            docs = spark.createDataFrame(results.filter(lambda r: r[0] == "doc").map(lambda r: r[1]), DOC_SCHEMA)
            docs.write.mode("overwrite").parquet(staging)
            errors = results.filter(lambda r: r[0] == "error").map(lambda r: r[2])
            spark.createDataFrame(errors, ERROR_SCHEMA).coalesce(1).write.mode("overwrite").parquet(
                f"{staging}/{ERRORS_DIR}"
            )
            summary = _sum_counts(results.filter(lambda r: r[0] == "stats").map(lambda r: r[2]).collect())
            stats: StageStats = summary.pop("stats")
            seconds = time.perf_counter() - start
            manifest = build_manifest(
                "extract",
                stats,
                config=config,
                inputs=list(inputs),
                outputs={"documents": output, "errors": f"{output.rstrip('/')}/{ERRORS_DIR}"},
                extra={
                    **summary,
                    "files": dict(Counter(kind for kind, _ in files)),
                    "wall_seconds": round(seconds, 2),
                    "docs_per_s": round(stats.input / max(seconds, 1e-9), 2),
                },
            )
            write_stage_manifest(spark, staging, manifest)
    finally:
        results.unpersist()
    return manifest


def _sum_counts(rows: list[str]) -> dict[str, Any]:
    stats, sums = (
        StageStats(),
        {k: Counter() for k in ("non_document_records", "extractors", "langs", "product_markup")},
    )
    for raw in rows:
        counts = json.loads(raw)
        stats = stats + StageStats.from_dict(counts["stats"])
        for key, counter in sums.items():
            counter.update(counts[key])
    return {"stats": stats, **{key: dict(sorted(counter.items())) for key, counter in sums.items()}}


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.build_job import load_job_config
    from spark_jobs.session import spark_session_from_config

    parser = argparse.ArgumentParser(description="Extract text and product data into extracted/ Parquet.")
    parser.add_argument("--input", nargs="+", required=True, help="WARC / HTML / JSONL / Parquet files or folders.")
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", default=None, help="Run config YAML (its corpus: and spark: sections).")
    args = parser.parse_args(argv)
    config = load_job_config(args.config)
    spark = spark_session_from_config("rexbert-extract", config.spark)
    try:
        manifest = run_extract(spark, args.input, args.output, config.corpus)
    finally:
        spark.stop()
    print(json.dumps(manifest["counts"], indent=2))


if __name__ == "__main__":
    main()
