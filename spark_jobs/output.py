"""Atomic stage outputs: a rerun replaces the folder whole, a failed run leaves nothing that looks complete.

Locally a stage writes into `<dir>.tmp-<id>` and renames it over `<dir>` only after its manifest is
written. On object stores (s3://, gs://) there is no rename: the stage writes in place and the
manifest, written last, is the completeness marker (readers call `corpus.manifest.read_manifest`).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession


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


def read_parquet_dir(spark: SparkSession, path: str) -> DataFrame:
    """A stage folder's Parquet: its manifest.json, config and `_errors/` beside the part files are skipped."""
    return spark.read.option("pathGlobFilter", "*.parquet").parquet(path)
