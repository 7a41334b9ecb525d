"""Stage folders written and read on the executors through the filesystem layer."""

from __future__ import annotations

import pytest


@pytest.mark.spark
def test_parquet_is_written_per_partition_and_read_back_whole(spark, tmp_path):
    """Executors write one zstd part file per partition and say how many rows each holds; a stage folder
    reads back with its schema, leaving the manifest and `_errors/` beside the part files out."""
    import pyarrow.parquet as pq

    from spark_jobs.output import read_parquet_dir, write_parquet

    df = spark.createDataFrame([(f"d{i}", i, {"name": f"n{i}"} if i % 2 else None) for i in range(50)],
                               "doc_id string, n long, product struct<name:string>").repartition(3)
    out = tmp_path / "stage"
    files = write_parquet(df, str(out))
    assert len(files) == 3 and sum(files.values()) == 50
    assert all(pq.read_metadata(f).num_rows == n for f, n in files.items())
    assert pq.ParquetFile(next(iter(files))).metadata.row_group(0).column(0).compression == "ZSTD"
    assert write_parquet(df, str(out)) == files  # a retried or repeated task writes the same names
    write_parquet(df.limit(2), str(out / "_errors"))
    (out / "manifest.json").write_text("{}")
    back = read_parquet_dir(spark, str(out))
    assert back.schema.simpleString() == df.schema.simpleString()
    assert back.rdd.getNumPartitions() == 3
    assert sorted(r["doc_id"] for r in back.collect()) == sorted(r["doc_id"] for r in df.collect())
    assert back.where("product.name = 'n7'").count() == 1


@pytest.mark.spark
def test_an_empty_stage_still_has_its_schema(spark, tmp_path):
    from spark_jobs.output import read_parquet_dir, write_parquet

    df = spark.createDataFrame([("a", 1.0)], "doc_id string, score double").where("score < 0")
    files = write_parquet(df, str(tmp_path / "empty"))
    assert list(files.values()) == [0]
    back = read_parquet_dir(spark, str(tmp_path / "empty"))
    assert back.count() == 0 and back.columns == ["doc_id", "score"]


@pytest.mark.spark
def test_jsonl_and_parquet_files_read_into_the_first_files_schema(spark, tmp_path):
    """A broken JSONL line is a row of nulls (counted downstream, never dropped); a later file's missing
    column is null."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from spark_jobs.output import read_table_files

    (tmp_path / "a.jsonl").write_text(json.dumps({"url": "u1", "text": "t1", "q": 1.5}) + "\n{broken\n")
    pq.write_table(pa.table({"url": ["u2"], "text": ["t2"]}), tmp_path / "b.parquet")
    df = read_table_files(spark, [("jsonl", str(tmp_path / "a.jsonl")), ("parquet", str(tmp_path / "b.parquet"))])
    assert df.columns == ["url", "text", "q"]
    rows = sorted((tuple(r) for r in df.collect()), key=str)
    assert rows == sorted([("u1", "t1", 1.5), (None, None, None), ("u2", "t2", None)], key=str)
