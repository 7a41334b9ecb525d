"""Stage outputs appear whole or not at all."""

from __future__ import annotations

import pytest

from spark_jobs.output import atomic_output


def test_rerun_replaces_the_folder_whole(tmp_path):
    target = tmp_path / "filtered"
    with atomic_output(target) as staging:
        (tmp_path / staging).mkdir()
        (tmp_path / staging / "old.parquet").write_text("1")
    with atomic_output(target) as staging:
        (tmp_path / staging).mkdir()
        (tmp_path / staging / "new.parquet").write_text("2")
    assert [p.name for p in target.iterdir()] == ["new.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filtered"]


def test_failed_run_leaves_previous_output_and_no_staging(tmp_path):
    target = tmp_path / "deduped"
    target.mkdir()
    (target / "manifest.json").write_text("{}")
    with pytest.raises(RuntimeError), atomic_output(target) as staging:
        (tmp_path / staging).mkdir()
        (tmp_path / staging / "part-0.parquet").write_text("partial")
        raise RuntimeError("executor lost")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deduped"]
    assert [p.name for p in target.iterdir()] == ["manifest.json"]


@pytest.mark.spark
def test_manifest_is_written_through_hadoop_filesystem(spark, tmp_path):
    """The path stages take on s3a:// and gs:// (Hadoop's FileSystem), exercised here with a file: URI."""
    from spark_jobs.output import write_hadoop_text

    uri = f"{tmp_path.as_uri()}/deduped/manifest.json"
    write_hadoop_text(spark, uri, '{"counts": 1}')
    write_hadoop_text(spark, uri, '{"counts": 2}')  # replaced, not appended
    assert (tmp_path / "deduped" / "manifest.json").read_text() == '{"counts": 2}'
