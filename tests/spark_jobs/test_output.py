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
