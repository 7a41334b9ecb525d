"""Atomic stage outputs: a rerun replaces the folder whole, a failed run leaves nothing that looks complete.

Locally a stage writes into `<dir>.tmp-<id>` and renames it over `<dir>` only after its manifest is
written. On object stores (s3://, gs://) there is no rename: the stage writes in place and the
manifest, written last, is the completeness marker (readers call `infra.core.manifest.read_manifest`).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from infra.core.manifest import MANIFEST_NAME, write_manifest


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


@contextmanager
def atomic_output(final: str | Path) -> Iterator[str]:
    """Yield a staging path to write into; on success it becomes `final`, on error it is removed."""
    final_str = str(final)
    if is_remote(final_str):
        yield final_str
        return
    final_path = Path(final_str.removeprefix("file://")).resolve()
    final_path.parent.mkdir(parents=True, exist_ok=True)
    staging = final_path.with_name(f"{final_path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield str(staging)
        if final_path.exists():
            old = final_path.with_name(f"{final_path.name}.old-{uuid.uuid4().hex[:8]}")
            final_path.rename(old)
            staging.rename(final_path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_hadoop_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write one small text file through Hadoop's FileSystem (s3a://, gs://, hdfs://, file:), replacing it."""
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(uri)
    stream = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def write_stage_manifest(spark: SparkSession, out_dir: str, manifest: dict) -> str:
    """A stage's manifest.json: a local file, or on an object store through the cluster's Hadoop connector
    (a local `Path` would land on the driver's disk instead). Returns where it went."""
    if not is_remote(out_dir):
        return str(write_manifest(out_dir, manifest))
    uri = f"{out_dir.rstrip('/')}/{MANIFEST_NAME}"
    write_hadoop_text(spark, uri, json.dumps(manifest, indent=2, default=str))
    return uri


def read_parquet_dir(spark: SparkSession, path: str) -> DataFrame:
    """A stage folder's Parquet: its manifest.json, config and `_errors/` beside the part files are skipped."""
    return spark.read.option("pathGlobFilter", "*.parquet").parquet(path)
