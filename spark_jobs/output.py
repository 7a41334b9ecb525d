"""Stage folders on any filesystem: Parquet written and read on the executors through `infra.core.fs`.

Spark's own readers and writers go through Hadoop connectors (s3a://, gs://), which a cluster may lack and
this machine does not have. Here the executors read and write with pyarrow through `infra.core.fs`, so a
stage that works on a local folder works on `s3://` and `gs://` unchanged:

- `write_parquet(df, out_dir)`: each partition becomes `part-<partition>-<schema digest>.parquet` (zstd),
  written by the task that computed it; returns the rows written per file, so a stage counts what it wrote.
- `read_parquet_dir(spark, uri)` / `read_table_files(spark, files)`: a stage folder's Parquet (or a list of
  Parquet and JSONL files) as a DataFrame, one partition per file, read on the executors.

Each stage writes its folder inside `infra.core.outputs.staged_output`, so it appears whole or not at all.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from corpus.extract.readers import jsonl_lines
from infra.core import fs

PART_SUFFIX = ".parquet"
TABLE_KINDS = ("parquet", "jsonl")
BATCH_ROWS = 8192
SCHEMA_SAMPLE_LINES = 1000  # JSONL lines the driver reads to infer a JSONL input's schema
_WRITTEN = pa.schema([pa.field("file", pa.string()), pa.field("rows", pa.int64())])


# --- writing ------------------------------------------------------------------------------------------


def _open_output(uri: str):
    """A binary output stream for `uri` (local parent folders are made first)."""
    if not fs.is_remote(uri):
        fs.makedirs(fs.parent_of(uri))
    filesystem, path = fs.resolve(uri)
    return filesystem.open_output_stream(path, compression=None)  # bytes as given, whatever the suffix


def _write_partition_fn(out_dir: str, token: str) -> Callable:
    """A mapInArrow function: one partition's batches -> one Parquet file; yields its (file, rows)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq
        from pyspark import TaskContext

        first = next(batches, None)
        if first is None:  # an empty partition writes nothing (an empty stage gets one file from the driver)
            return
        uri = fs.join(out_dir, f"part-{TaskContext.get().partitionId():05d}-{token}{PART_SUFFIX}")
        rows = 0
        with _open_output(uri) as stream, pq.ParquetWriter(stream, first.schema, compression="zstd") as writer:
            for batch in itertools.chain([first], batches):
                writer.write_batch(batch)
                rows += batch.num_rows
        yield pa.RecordBatch.from_pylist([{"file": uri, "rows": rows}], schema=_WRITTEN)

    return run


def write_parquet(df: DataFrame, out_dir: str) -> dict[str, int]:
    """Write `df` as Parquet part files (zstd) under `out_dir` from the executors; return rows per file.

    One file per non-empty partition. Names carry the partition and a digest of the schema, so a retried
    task overwrites its own file rather than adding a second. A DataFrame without rows still gets one empty
    file, so the folder keeps its schema for the next stage.
    """
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import to_arrow_schema

    out_dir = str(out_dir)
    token = hashlib.sha1(df.schema.json().encode()).hexdigest()[:10]
    written = df.mapInArrow(_write_partition_fn(out_dir, token), "file string, rows long").collect()
    files = {row["file"]: int(row["rows"]) for row in written}
    if not files:
        uri = fs.join(out_dir, f"part-00000-{token}{PART_SUFFIX}")
        with _open_output(uri) as stream:
            pq.write_table(to_arrow_schema(df.schema).empty_table(), stream, compression="zstd")
        files[uri] = 0
    return dict(sorted(files.items()))


# --- reading ------------------------------------------------------------------------------------------


def _jsonl_rows(uri: str) -> Iterator[dict]:
    """A JSONL file's objects, one per line; a line that is not one becomes a row of nulls (as Spark's
    PERMISSIVE mode reads it), so the stage counts it instead of losing it."""
    for _, line in jsonl_lines(uri):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        yield row if isinstance(row, dict) else {}


def _file_schema(kind: str, uri: str) -> pa.Schema:
    """The Arrow schema of one input file: Parquet's own; JSONL's inferred from its first lines."""
    import pyarrow.parquet as pq

    if kind == "parquet":
        with fs.open_input(uri) as stream:
            return pq.read_schema(stream)
    rows = list(itertools.islice(_jsonl_rows(uri), SCHEMA_SAMPLE_LINES))
    schema = pa.Table.from_pylist(rows).schema if rows else pa.schema([])
    # a column that is null in every sampled line is read as text
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in schema])


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with exactly `schema`'s columns, in order: missing ones null, others cast."""
    columns = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        column = batch.column(index) if index >= 0 else pa.nulls(batch.num_rows, field.type)
        columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _read_files_fn(schema: pa.Schema) -> Callable:
    """A mapInArrow function: rows of (kind, file) -> that file's rows in `schema`, batch by batch."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        for batch in batches:
            for kind, uri in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                if kind == "parquet":
                    with fs.open_input(uri) as stream:
                        for part in pq.ParquetFile(stream).iter_batches(batch_size=BATCH_ROWS):
                            yield _conform(part, schema)
                    continue
                rows = _jsonl_rows(uri)
                while chunk := list(itertools.islice(rows, BATCH_ROWS)):
                    yield pa.RecordBatch.from_pylist(chunk, schema=schema)

    return run


def read_table_files(spark: SparkSession, files: list[tuple[str, str]]) -> DataFrame:
    """(kind, file) Parquet and JSONL files as one DataFrame, one partition per file, read on the executors.

    The schema is the first file's (Parquet footer, or JSONL's first lines); other files are read into it:
    missing columns are null, extra ones left out, types cast (an impossible cast fails naming the type).
    """
    if not files:
        raise FileNotFoundError("no Parquet or JSONL files to read")
    unknown = sorted({kind for kind, _ in files} - set(TABLE_KINDS))
    if unknown:
        raise ValueError(f"cannot read {unknown} files as a table (only {TABLE_KINDS})")
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    spark_schema = from_arrow_schema(_file_schema(*files[0]))
    # Spark's own Arrow form of the schema (string widths, timestamp units), as mapInArrow expects it
    arrow_schema = to_arrow_schema(spark_schema)
    paths = spark.sparkContext.parallelize([tuple(f) for f in files], len(files))
    return paths.toDF("kind string, file string").mapInArrow(_read_files_fn(arrow_schema), spark_schema)


def read_parquet_dir(spark: SparkSession, uri: str) -> DataFrame:
    """A stage folder's Parquet (or one Parquet file): manifest, config and `_errors/` beside it are skipped."""
    files = fs.list_files(uri, suffixes=(PART_SUFFIX,))
    if not files:
        raise FileNotFoundError(f"no Parquet files in {uri}")
    return read_table_files(spark, [("parquet", file) for file in files])


# --- side files --------------------------------------------------------------------------------------


def ship_file(spark: SparkSession, uri: str, prefix: str) -> str:
    """Send a model file (local or any URI) to every executor; returns its name for `SparkFiles.get`.

    The bytes are read through `infra.core.fs` (no Hadoop connector needed) and staged under a
    content-addressed name: Spark refuses a second `addFile` of one name with other bytes, and a session
    (tests, the demo) may use several models in turn.
    """
    import tempfile

    data = fs.read_bytes(uri)
    name = f"{prefix}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
    staged = Path(tempfile.gettempdir()) / "rexbert-models" / name
    if not staged.exists():
        staged.parent.mkdir(parents=True, exist_ok=True)
        fs.write_bytes(str(staged), data)
    spark.sparkContext.addFile(str(staged))
    return name
