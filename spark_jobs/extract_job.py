"""The extract stage on Spark: WARC / HTML / JSONL / Parquet inputs -> `extracted/` Parquet.

    spark-submit spark_jobs/extract_job.py --input crawl/ more.warc.gz --output out/extracted [--config run.yaml]

Inputs are listed on the driver with `infra.core.fs.list_inputs` (local paths, s3://, gs://; folders,
files, globs) and the file URIs are distributed; each executor task reads its files through the same
filesystem layer (`corpus.extract.readers.iter_file`) and runs `corpus.extract.stage.ExtractStage`
unchanged, emitting documents, error records and its counters as rows. The result is persisted once, so
documents, errors (`_errors/`), dropped records (`_dropped/`: non-HTML, too short, ...) and the summed
counters come from one pass; the Parquet is written from
the executors (`spark_jobs.output.write_parquet`) and the rows written are checked against the counters.
The manifest (input = kept + filtered + errors) is written last, inside `infra.core.outputs.staged_output`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pyspark import SparkFiles, StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from corpus.extract.readers import iter_file
from corpus.extract.stage import PRODUCT_COLUMNS, DroppedRecord, ErrorRecord, ExtractedDoc, ExtractStage
from infra.core import fs
from infra.core.config import CorpusConfig, ExtractConfig, load_config
from infra.core.manifest import StageStats, build_manifest, check_upstream, write_manifest
from infra.core.outputs import check_output, handle_sigterm, staged_output
from spark_jobs.output import ship_file, write_parquet

STAGE = "extract"  # the manifest's stage and the output's owner: a rerun replaces only its own folder
ERRORS_DIR = "_errors"
DROPPED_DIR = "_dropped"  # one row per record dropped before it became a document: where the yield report finds it
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
_RECORD_AT = [  # where an error or dropped record was: its rows share these columns
    T.StructField("source", T.StringType()),
    T.StructField("file", T.StringType()),
    T.StructField("offset", T.LongType()),
    T.StructField("url", T.StringType()),
    T.StructField("record_id", T.StringType()),
]
ERROR_SCHEMA = T.StructType(
    [T.StructField("kind", T.StringType(), False), *_RECORD_AT, T.StructField("message", T.StringType())])
DROPPED_SCHEMA = T.StructType([T.StructField("reason", T.StringType(), False), *_RECORD_AT])
_SIDE_ROWS = {ErrorRecord: ("error", ERROR_SCHEMA), DroppedRecord: ("dropped", DROPPED_SCHEMA)}


def _emit(stage: ExtractStage, results, start: float) -> Iterator[tuple]:
    """Rows ("doc", row, None), ("error", None, row) and ("dropped", None, row), then one ("stats", None, json)
    for the partition."""
    extractors, langs, markup = Counter(), Counter(), Counter()
    for result in results:
        if isinstance(result, ExtractedDoc):
            row = result.to_row()
            extractors[result.extractor] += 1
            langs[result.lang or "unknown"] += 1
            markup[result.has_product_markup or "none"] += 1
            yield ("doc", tuple(row[field.name] for field in DOC_SCHEMA.fields), None)
        else:  # an ErrorRecord or a DroppedRecord
            kind, schema = _SIDE_ROWS[type(result)]
            row = result.to_row()
            yield (kind, None, tuple(row[field.name] for field in schema.fields))
    stage.stats.seconds = time.perf_counter() - start
    counts = {
        "stats": stage.stats.to_dict(),
        "non_document_records": dict(stage.non_document_records),
        "extractors": dict(extractors),
        "langs": dict(langs),
        "product_markup": dict(markup),
    }
    yield ("stats", None, json.dumps(counts))


def _extract_partition(config_json: str, langid_name: str | None, files: Iterator[tuple[str, str]]) -> Iterator[tuple]:
    """Partition function over (kind, file URI): read each file through infra.core.fs, extract, count."""
    config = ExtractConfig.model_validate_json(config_json)
    if langid_name is not None:  # the language-id model was shipped to this executor
        config = config.model_copy(update={"langid_model": SparkFiles.get(langid_name)})
    stage = ExtractStage(config)
    columns = {"text_column": config.text_column, "url_column": config.url_column,
               "domain_column": config.domain_column}

    def records():
        for kind, uri in files:
            yield from iter_file(kind, uri, **columns)

    yield from _emit(stage, stage.run(records(), with_drops=True), time.perf_counter())


def _ship_langid_model(spark: SparkSession, config: ExtractConfig) -> str | None:
    model = config.langid_model
    if not model:
        return None
    if not fs.is_file(model):
        raise FileNotFoundError(f"corpus.extract.langid_model not found: {model}")
    return ship_file(spark, model, "langid")


def run_extract(spark: SparkSession, inputs: list[str], output: str, config: CorpusConfig) -> dict[str, Any]:
    """Extract every input into `output` (Parquet + `_errors/` + manifest.json); return the manifest.

    Args:
        inputs: files, folders or globs on any filesystem (see `infra.core.fs.list_inputs`).
        config: the `corpus:` section; its `extract` sub-section drives the stage.
    """
    extract_config = config.extract
    start = time.perf_counter()
    check_output(output, STAGE, inputs)  # before any work: never a user's folder, an input or a file
    upstream = check_upstream(inputs)  # an unfinished or out-of-date stage folder is no input
    sc = spark.sparkContext
    langid_name = _ship_langid_model(spark, extract_config)
    files = fs.list_inputs(inputs)
    if not files:
        raise FileNotFoundError(f"no WARC, HTML, JSONL or Parquet files in {inputs}")
    partitions = extract_config.partitions or min(len(files), sc.defaultParallelism * 4)
    config_json = extract_config.model_dump_json()
    results = sc.parallelize(files, max(1, partitions)).mapPartitions(
        lambda it: _extract_partition(config_json, langid_name, it))
    results = results.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with staged_output(output, STAGE, inputs) as staging:
            docs = spark.createDataFrame(results.filter(lambda r: r[0] == "doc").map(lambda r: r[1]), DOC_SCHEMA)
            written = write_parquet(docs, staging)
            errors = spark.createDataFrame(results.filter(lambda r: r[0] == "error").map(lambda r: r[2]),
                                           ERROR_SCHEMA)
            errors_written = write_parquet(errors.coalesce(1), fs.join(staging, ERRORS_DIR))
            dropped = spark.createDataFrame(results.filter(lambda r: r[0] == "dropped").map(lambda r: r[2]),
                                            DROPPED_SCHEMA)
            dropped_written = write_parquet(dropped.coalesce(1), fs.join(staging, DROPPED_DIR))
            summary = _sum_counts(results.filter(lambda r: r[0] == "stats").map(lambda r: r[2]).collect())
            stats: StageStats = summary.pop("stats")
            _check_written(stats, sum(written.values()), sum(errors_written.values()), sum(dropped_written.values()))
            seconds = time.perf_counter() - start
            manifest = build_manifest(
                STAGE,
                stats,
                config=config,
                inputs=list(inputs),
                upstream=upstream,
                outputs={"documents": output, "errors": fs.join(output, ERRORS_DIR),
                         "dropped": fs.join(output, DROPPED_DIR), "rows": stats.kept,
                         "parts": len(written)},
                seconds=seconds,
                extra={
                    **summary,
                    "files": dict(Counter(kind for kind, _ in files)),
                    "docs_per_s": round(stats.input / max(seconds, 1e-9), 2),
                },
            )
            write_manifest(staging, manifest)
    finally:
        results.unpersist()
    return manifest


def _check_written(stats: StageStats, documents: int, errors: int, dropped: int) -> None:
    """What landed in the Parquet files must be what the counters say was kept, errored and dropped."""
    if documents != stats.kept or errors != sum(stats.errors.values()) or dropped != sum(stats.filtered.values()):
        raise RuntimeError(f"extract wrote {documents} documents, {errors} error rows and {dropped} dropped rows, "
                           f"but counted {stats.kept} kept, {sum(stats.errors.values())} errors and "
                           f"{sum(stats.filtered.values())} dropped")


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
    from spark_jobs.session import run_stage_job

    handle_sigterm()  # a cancelled spark-submit (SIGTERM) removes its staging folder as Ctrl-C does
    parser = argparse.ArgumentParser(description="Extract text and product data into extracted/ Parquet.")
    parser.add_argument("--input", type=fs.absolute, nargs="+", required=True,
                        help="WARC / HTML / JSONL / Parquet files or folders.")
    parser.add_argument("--output", type=fs.absolute, required=True)
    parser.add_argument("--config", type=fs.absolute, default=None,
                        help="Run config YAML, local or a URI (corpus: and spark:).")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    manifest = run_stage_job("rexbert-extract", config, args.output,
                             lambda spark: run_extract(spark, args.input, args.output, config.corpus))
    print(json.dumps(manifest["counts"], indent=2))


if __name__ == "__main__":
    main()
