"""Stage output folders appear whole or not at all, and never replace what the platform did not write."""

from __future__ import annotations

import json

import pytest

from infra.core import fs
from infra.core.manifest import StageStats, build_manifest, write_manifest
from infra.core.outputs import OutputError, check_output, staged_output


def _finish(folder: str, stage: str, name: str) -> None:
    fs.write_text(fs.join(folder, name), "rows")
    write_manifest(folder, build_manifest(stage, StageStats(input=1, kept=1)))


def test_rerun_replaces_a_previous_output_of_the_same_stage_whole(tmp_path):
    target = tmp_path / "filtered"
    with staged_output(target, "filter") as staging:
        _finish(staging, "filter", "old.parquet")
    with staged_output(target, "filter") as staging:
        _finish(staging, "filter", "new.parquet")
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "new.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filtered"]  # no staging left beside it


def test_failed_run_leaves_the_previous_output_and_no_staging(tmp_path):
    target = tmp_path / "deduped"
    with staged_output(target, "dedup") as staging:
        _finish(staging, "dedup", "part-0.parquet")
    before = (target / "manifest.json").read_text()
    with pytest.raises(RuntimeError), staged_output(target, "dedup") as staging:
        fs.write_text(fs.join(staging, "part-0.parquet"), "partial")
        raise RuntimeError("executor lost")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deduped"]
    assert (target / "manifest.json").read_text() == before and (target / "part-0.parquet").read_text() == "rows"


def test_a_folder_the_platform_did_not_write_is_refused_and_kept(tmp_path):
    target = tmp_path / "mine"
    (target / "mydata").mkdir(parents=True)
    (target / "important.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not a finished stage output"):
        with staged_output(target, "extract"):
            pass
    assert (target / "important.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_another_stages_output_a_file_and_an_input_are_refused(tmp_path):
    other = tmp_path / "extracted"
    with staged_output(other, "extract") as staging:
        _finish(staging, "extract", "part-0.parquet")
    with pytest.raises(OutputError, match="'extract' stage output"):
        check_output(other, "dedup")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output(tmp_path / "file.txt", "extract")
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    with pytest.raises(OutputError, match="overlaps the input"):
        check_output(crawl, "extract", [str(crawl / "a.warc.gz")])
    with pytest.raises(OutputError, match="overlaps the input"):
        check_output(crawl / "out", "extract", [str(crawl)])


def test_on_s3_the_previous_output_is_unmarked_then_replaced(s3_server):
    target = fs.join(s3_server, "outputs", "corpus")
    with staged_output(target, "corpus") as folder:
        _finish(folder, "corpus", "a.parquet")
    with staged_output(target, "corpus") as folder:
        assert not fs.exists(fs.join(target, "manifest.json"))  # never complete while being rewritten
        _finish(folder, "corpus", "b.parquet")
    assert [fs.name_of(f) for f in fs.list_files(target)] == ["b.parquet", "manifest.json"]
    assert json.loads(fs.read_text(fs.join(target, "manifest.json")))["stage"] == "corpus"
