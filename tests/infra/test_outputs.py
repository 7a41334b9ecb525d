"""Stage output folders appear whole or not at all, and never replace what the platform did not write."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time

import pytest

from infra.core import fs
from infra.core.manifest import STOP_SIGNALS, InputError, StageStats, build_manifest, check_upstream, write_manifest
from infra.core.outputs import (
    OutputError,
    check_output,
    handle_sigterm,
    owner_stage,
    record_ctrl_c,
    staged_output,
    unmark,
)


def _finish(folder: str, stage: str, name: str) -> None:
    fs.write_text(fs.join(folder, name), "rows")
    write_manifest(folder, build_manifest(stage, StageStats(input=1, kept=1)))


def test_rerun_replaces_a_previous_output_of_the_same_stage_whole(tmp_path):
    target = tmp_path / "filtered"
    with staged_output(target, "filter") as staging:
        _finish(staging, "filter", "old.parquet")
    with staged_output(target, "filter") as staging:
        _finish(staging, "filter", "new.parquet")
    assert sorted(p.name for p in target.iterdir()) == ["_stage.json", "manifest.json", "new.parquet"]
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


def test_an_unfinished_output_of_the_same_stage_is_replaced_and_another_stages_is_refused(tmp_path):
    target = tmp_path / "deduped"
    with staged_output(target, "dedup") as staging:
        _finish(staging, "dedup", "part-0.parquet")
    unmark(target)  # what `corpus build` does before it rewrites the stages before this one
    assert not (target / "manifest.json").exists() and owner_stage(target) == "dedup"
    with pytest.raises(OutputError, match="unfinished 'dedup' stage output"):
        check_output(target, "corpus")
    with staged_output(target, "dedup") as staging:
        _finish(staging, "dedup", "part-1.parquet")
    assert sorted(p.name for p in target.iterdir()) == ["_stage.json", "manifest.json", "part-1.parquet"]


def test_leftovers_of_a_killed_run_are_removed_by_the_next_run_and_nothing_else(tmp_path):
    target = tmp_path / "corpus"
    killed = [tmp_path / ".corpus.tmp-0123abcd", tmp_path / ".corpus.old-89abcdef"]
    for folder in killed:
        folder.mkdir()
        (folder / "part-0.parquet").write_text("half")
    mine = tmp_path / ".corpus.tmp-mine"  # not a name the platform makes
    mine.mkdir()
    with staged_output(target, "corpus") as staging:
        _finish(staging, "corpus", "part-0.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".corpus.tmp-mine", "corpus"]


@pytest.fixture
def stop_signals_handled():
    """`handle_sigterm` for one test: the previous handlers and an empty stop record afterwards."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    handle_sigterm()
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    STOP_SIGNALS.clear()


def test_sigterm_inside_a_stage_removes_its_temporary_folder(tmp_path, stop_signals_handled):
    with pytest.raises(KeyboardInterrupt), staged_output(tmp_path / "tokens", "pack") as staging:
        fs.write_text(fs.join(staging, "train", "part-00000.parquet"), "half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal interrupts this
    assert list(tmp_path.iterdir()) == []


class _SignalledInFinaliser:
    """Python ignores (prints) an exception raised in `__del__`, as it does in py4j's weakref callbacks."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        os.kill(os.getpid(), self.signum)
        time.sleep(5)  # the handler's KeyboardInterrupt lands here, and is swallowed


def _like_pysparks_ctrl_c(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt  # pyspark's handler cancels the Spark jobs, then does this


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed interrupt, on purpose
@pytest.mark.parametrize(("signum", "later_handler"), [(signal.SIGTERM, False), (signal.SIGINT, False),
                                                       (signal.SIGINT, True)],
                         ids=["sigterm", "sigint", "sigint-after-pyspark-took-it"])
def test_a_stop_signal_swallowed_by_a_finaliser_still_keeps_the_stage_from_finishing(tmp_path, stop_signals_handled,
                                                                                      signum, later_handler):
    """The CI flake this guards against: SIGTERM landed in a py4j finaliser and the extract stage finished."""
    if later_handler:  # a SparkContext started after handle_sigterm; spark_jobs.session then calls record_ctrl_c
        signal.signal(signal.SIGINT, _like_pysparks_ctrl_c)
        record_ctrl_c()
    target = tmp_path / "corpus"
    with staged_output(target, "corpus") as staging:
        _finish(staging, "corpus", "part-0.parquet")
    before = sorted(p.name for p in target.iterdir())
    with pytest.raises(KeyboardInterrupt, match=f"signal {int(signum)}"), \
            staged_output(target, "corpus") as staging:
        fs.write_text(fs.join(staging, "part-0.parquet"), "half")
        _SignalledInFinaliser(signum)  # dropped at once: its finaliser runs, and the block carries on
        with pytest.raises(KeyboardInterrupt):
            write_manifest(staging, build_manifest("corpus", StageStats()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # the previous output, untouched
    assert sorted(p.name for p in target.iterdir()) == before and (target / "part-0.parquet").read_text() != "half"


def test_upstream_records_finished_stage_folders_and_leaves_plain_folders_out(tmp_path):
    extracted, crawl = tmp_path / "extracted", tmp_path / "crawl"
    with staged_output(extracted, "extract") as staging:
        _finish(staging, "extract", "part-0.parquet")
    crawl.mkdir()
    (crawl / "a.warc.gz").write_bytes(b"")
    manifest = build_manifest("filter", StageStats(), inputs=[str(extracted), str(crawl / "a.warc.gz")])
    digest = hashlib.sha256((extracted / "manifest.json").read_bytes()).hexdigest()
    assert manifest["upstream"] == [{"path": str(extracted), "stage": "extract", "sha256": digest}]
    assert check_upstream([str(crawl), str(crawl / "*.warc.gz")]) == []  # a user's folder is read as it is


def test_unfinished_and_out_of_date_inputs_are_refused_in_one_line(tmp_path):
    extracted, filtered = tmp_path / "extracted", tmp_path / "filtered"
    with staged_output(extracted, "extract") as staging:
        _finish(staging, "extract", "part-0.parquet")
    with staged_output(filtered, "filter", [extracted]) as staging:
        fs.write_text(fs.join(staging, "part-0.parquet"), "rows")
        write_manifest(staging, build_manifest("filter", StageStats(input=1, kept=1), inputs=[str(extracted)]))
    assert [e["stage"] for e in check_upstream([str(filtered)])] == ["filter"]
    with staged_output(extracted, "extract") as staging:  # extract is rerun: filtered/ is now out of date
        _finish(staging, "extract", "part-1.parquet")
    with pytest.raises(InputError, match=r"is out of date: .*extracted was rewritten \('extract'\)") as err:
        check_upstream([str(filtered)])
    assert "\n" not in str(err.value)
    unmark(extracted)
    with pytest.raises(InputError, match=r"part-1.parquet \(in .*extracted\) is an unfinished 'extract' output"):
        check_upstream([str(extracted / "part-1.parquet")])  # a file of the folder speaks for it too
    with pytest.raises(InputError, match="which is unfinished"):
        check_upstream([str(filtered)])
