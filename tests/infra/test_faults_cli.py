"""Bad input through the `rexbert` command (issue 16, "Raw tracebacks and late checks").

Every expected failure ends as one line naming the problem and exit code 2; the traceback only with `--debug`.
Cheap checks run before the expensive work: no Spark session, Ray cluster or extraction starts for a missing
input, an output that cannot be written, an empty corpus, a missing classifier or shards of the wrong length;
an error no retry can fix is not retried by Ray Train.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.commands.errors import problem_of
from infra.core.config import load_config
from infra.core.manifest import StageStats, build_manifest, write_manifest
from infra.core.paths import PROJECT_ROOT
from infra.sample_crawl.generate import generate_sample_crawl
from tests.training.shard_fixtures import TOKEN_SETS, demo_tokens, smoke_overrides  # noqa: F401  (session fixture)

runner = CliRunner()
REXBERT = Path(sys.executable).with_name("rexbert")
DEMO_CONFIG = str(PROJECT_ROOT / "infra" / "configs" / "demo.yaml")


def one_error_line(result, *needles: str) -> str:
    """The command failed with exit code 2 and one `error:` line naming the problem, without a traceback."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def invoke_watching_ray(args: list[str]):
    """The command's result, and whether it left Ray initialised when it was not before (a cluster it started)."""
    import ray

    before = ray.is_initialized()
    result = runner.invoke(app, args)
    return result, ray.is_initialized() and not before


@pytest.fixture()
def crawl(tmp_path) -> Path:
    generate_sample_crawl(tmp_path / "crawl", docs=10, seed=3, progress=False)
    return tmp_path / "crawl"


# --- a missing input -----------------------------------------------------------------------------------------------


def test_missing_input_is_one_line_on_stderr_before_spark_starts(tmp_path):
    missing, out = tmp_path / "no-such-crawl", tmp_path / "out"
    started = time.perf_counter()
    proc = subprocess.run([str(REXBERT), "corpus", "extract", "-i", str(missing), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"error: input not found: {missing}\n"  # not one line of Spark's or Java's
    assert not out.exists() and time.perf_counter() - started < 60


@pytest.mark.parametrize("command", [
    ["corpus", "build", "--corpus.filter.ecommerce_filter=false"],
    ["corpus", "dedup"],
    ["corpus", "filter", "--corpus.filter.ecommerce_filter=false"],
])
def test_every_corpus_command_names_a_missing_input(tmp_path, command):
    missing = tmp_path / "missing.jsonl"
    result = runner.invoke(app, [*command, "-i", str(missing), "-o", str(tmp_path / "out")])
    one_error_line(result, f"input not found: {missing}")
    assert not (tmp_path / "out").exists()


def test_missing_glob_folder_and_unreadable_labels_are_named(tmp_path):
    result = runner.invoke(app, ["corpus", "extract", "-i", str(tmp_path / "nope" / "*.warc.gz"),
                                 "-o", str(tmp_path / "out")])
    one_error_line(result, "input not found", "*.warc.gz")
    result = runner.invoke(app, ["corpus", "train-classifier", "--labeled-jsonl", str(tmp_path / "labels.jsonl"),
                                 "--output", str(tmp_path / "m.bin")])
    one_error_line(result, f"input not found: {tmp_path / 'labels.jsonl'}")


# --- an output that cannot be written ------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_output_under_proc_is_one_line_not_a_java_stack(crawl):
    result = runner.invoke(app, ["corpus", "extract", "-i", str(crawl), "-o", "/proc/rexbert-out"])
    one_error_line(result, "output /proc/rexbert-out cannot be written")


def test_output_under_a_file_or_that_is_a_file_is_refused_before_spark(crawl, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    result = runner.invoke(app, ["corpus", "extract", "-i", str(crawl), "-o", str(blocker / "out")])
    one_error_line(result, f"output {blocker / 'out'} cannot be created", "is a file")
    result = runner.invoke(app, ["corpus", "build", "-i", str(crawl), "-o", str(blocker),
                                 "--corpus.filter.ecommerce_filter=false"])
    one_error_line(result, f"output {blocker} is a file")
    assert blocker.read_text() == "mine"
    result = runner.invoke(app, ["tokenize", "train-tokenizer", "--corpus", str(crawl / "ground-truth.jsonl"),
                                 "-o", str(blocker / "tok")])
    one_error_line(result, "cannot be created")
    assert not list(tmp_path.glob(".*probe*"))  # the writability probe leaves nothing behind


# --- empty or unusable input ---------------------------------------------------------------------------------------


def _tokenizer(tmp_path: Path) -> Path:
    from training.tokenizer import train_tokenizer

    return train_tokenizer(["a cheap usb cable", "a red phone case"] * 20, tmp_path / "tok", vocab_size=320)


def test_empty_corpus_for_pack_is_one_line_before_ray_starts(tmp_path):
    tokenizer = _tokenizer(tmp_path)
    (tmp_path / "empty-jsonl").mkdir()
    (tmp_path / "empty-jsonl" / "part-0.jsonl").write_text("\n\n")
    (tmp_path / "empty-parquet").mkdir()
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "empty-parquet" / "part-0.parquet")
    with gzip.open(tmp_path / "empty.jsonl.gz", "wt") as handle:
        handle.write("")
    for corpus in ("empty-jsonl", "empty-parquet", "empty.jsonl.gz"):
        out = tmp_path / f"tokens-{corpus}"
        result, started = invoke_watching_ray(["tokenize", "pack", "--corpus", str(tmp_path / corpus),
                                               "--tokenizer", str(tokenizer), "--seq-len", "64", "-o", str(out)])
        one_error_line(result, f"corpus {tmp_path / corpus} is empty")
        assert not started and not out.exists()
    result = runner.invoke(app, ["tokenize", "train-tokenizer", "--corpus", str(tmp_path / "empty-jsonl"),
                                 "-o", str(tmp_path / "tok2")])
    one_error_line(result, "is empty")
    assert not (tmp_path / "tok2").exists()


def test_corpus_with_no_corpus_files_and_a_missing_tokenizer_are_named(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "notes.txt").write_text("not a corpus")
    result = runner.invoke(app, ["tokenize", "pack", "--corpus", str(tmp_path / "corpus"), "--tokenizer",
                                 str(tmp_path / "tok"), "-o", str(tmp_path / "out")])
    one_error_line(result, "no .parquet or .jsonl corpus files")
    (tmp_path / "corpus" / "part.jsonl").write_text(json.dumps({"text": "a red phone case"}) + "\n")
    result = runner.invoke(app, ["tokenize", "pack", "--corpus", str(tmp_path / "corpus"), "--tokenizer",
                                 str(tmp_path / "tok"), "-o", str(tmp_path / "out")])
    one_error_line(result, f"tokenizer not found: {tmp_path / 'tok'}")


def test_object_store_inputs_get_the_same_checks(s3_server, tmp_path):
    import io

    from infra.core import fs

    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), buffer)
    fs.write_bytes(f"{s3_server}/empty/part-0.parquet", buffer.getvalue())
    tokenizer = _tokenizer(tmp_path)
    result, started = invoke_watching_ray(["tokenize", "pack", "--corpus", f"{s3_server}/empty", "--tokenizer",
                                           str(tokenizer), "-o", f"{s3_server}/tokens"])
    one_error_line(result, f"corpus {s3_server}/empty is empty")
    assert not started and not fs.exists(f"{s3_server}/tokens")
    result = runner.invoke(app, ["corpus", "dedup", "-i", f"{s3_server}/absent", "-o", f"{s3_server}/deduped"])
    one_error_line(result, f"input not found: {s3_server}/absent")


@pytest.mark.spark
def test_dedup_input_with_only_bad_lines_is_one_line(spark, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"not json\n{broken\n\xff\xfe\n")
    result = runner.invoke(app, ["corpus", "dedup", "-i", str(bad), "-o", str(tmp_path / "deduped")])
    one_error_line(result, "dedup input")
    assert not (tmp_path / "deduped").exists() and not list(tmp_path.glob(".deduped.tmp-*"))


def test_non_utf8_task_file_is_one_line(tmp_path):
    from tests.training.tiny_models import build_tiny_encoder

    model = build_tiny_encoder(_tokenizer(tmp_path), tmp_path / "model", hidden=32, layers=1)
    task = tmp_path / "texts.jsonl"
    task.write_bytes(b'{"text": "caf\xe9 cr\xe8me br\xfbl\xe9e"}\n')  # Latin-1, not UTF-8
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--task", f"fill-mask:{task}",
                                 "--output", str(tmp_path / "eval")])
    one_error_line(result, f"fill-mask: data {task} is not UTF-8 text")
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--task", f"fill-mask:{tmp_path / 'nope.jsonl'}",
                                 "--output", str(tmp_path / "eval2")])
    one_error_line(result, f"task data not found: {tmp_path / 'nope.jsonl'}")
    assert not (tmp_path / "eval2").exists()


# --- Spark's and Ray's wrappers ------------------------------------------------------------------------------------


@pytest.mark.spark
def test_a_java_stack_becomes_its_first_meaningful_line(spark, tmp_path):
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import AnalysisException

    missing = "/proc/rexbert-missing-input"
    with pytest.raises(Py4JJavaError) as java:
        spark.sparkContext.textFile(missing).count()
    assert len(str(java.value).splitlines()) > 20  # what used to be printed
    line = problem_of(java.value)
    assert line is not None and missing in line and "\n" not in line and len(line) < 300
    with pytest.raises(AnalysisException) as analysis:
        spark.read.parquet(str(tmp_path / "absent"))
    line = problem_of(analysis.value)
    assert line is not None and "absent" in line and "\n" not in line and "JVM stacktrace" not in line


@pytest.mark.spark
def test_a_python_worker_error_is_expected_only_when_its_cause_is(spark):
    from pyspark.errors import PythonException

    def bad_row(x):
        raise ValueError(f"row {x} has no text")

    def bug(x):
        raise RuntimeError("a bug")

    with pytest.raises(PythonException) as bad:  # a task's Python traceback, carried as text through the JVM
        spark.sparkContext.parallelize([7], 1).map(bad_row).collect()
    assert problem_of(bad.value) == "row 7 has no text"
    with pytest.raises(PythonException) as buggy:
        spark.sparkContext.parallelize([7], 1).map(bug).collect()
    assert problem_of(buggy.value) is None  # unexpected: keeps its traceback


def test_ray_wrappers_are_looked_through_and_bugs_keep_their_traceback():
    from ray.exceptions import RayTaskError
    from ray.train.v2._internal.exceptions import UserExceptionWithTraceback

    from infra.core.config import ConfigError

    wrapped = RayTaskError("read", "Traceback ...\nValueError: corpus has no text", ValueError("corpus has no text"))
    assert problem_of(wrapped.as_instanceof_cause()) == "corpus has no text"
    assert problem_of(RayTaskError("read", "Traceback ...", RuntimeError("x")).as_instanceof_cause()) is None
    assert problem_of(UserExceptionWithTraceback(FileNotFoundError("no shards"), "Traceback ...")) == "no shards"
    config_error = ConfigError("invalid config (x):\n  spark.master: bad")
    assert problem_of(config_error) == "invalid config (x): spark.master: bad"
    assert problem_of(RuntimeError("a bug")) is None and problem_of(KeyError("k")) is None


# --- a missing model, before extraction ----------------------------------------------------------------------------


def test_build_without_classifier_fails_before_extraction(crawl, tmp_path):
    out = tmp_path / "built"
    started = time.perf_counter()
    result = runner.invoke(app, ["corpus", "build", "-i", str(crawl), "-o", str(out)])
    one_error_line(result, "no classifier was given", "--classifier")
    assert not out.exists()  # no extracted/, no config.resolved.yaml: nothing ran
    assert time.perf_counter() - started < 30
    result = runner.invoke(app, ["corpus", "build", "-i", str(crawl), "-o", str(out), "--classifier",
                                 str(tmp_path / "absent.bin")])
    one_error_line(result, f"classifier model not found: {tmp_path / 'absent.bin'}")
    result = runner.invoke(app, ["corpus", "filter", "-i", str(crawl), "-o", str(out)])
    one_error_line(result, "no classifier was given")
    assert not out.exists()


# --- shards of the wrong length, and errors no retry fixes ---------------------------------------------------------


def _token_set(root: Path, seq_len: int) -> Path:
    """A token set folder as far as the driver's check reads it: its pack manifest (demo.yaml's mixture)."""
    folder = root / "tokens" / "general-128"
    sources = {name: {"weight": weight} for name, weight in TOKEN_SETS["general-128"][1].items()}
    manifest = build_manifest("pack", StageStats(), outputs={"path": str(folder)},
                              extra={"seq_len": seq_len, "tokenizer": {"path": "tokenizer"}, "splits": {},
                                     "sources": sources})
    write_manifest(folder, manifest)
    return folder


def test_phase_seq_len_other_than_the_shards_fails_on_the_driver_before_ray(tmp_path):
    _token_set(tmp_path, seq_len=256)
    result, started = invoke_watching_ray(["pretrain", "--config", DEMO_CONFIG, "--phase", "general",
                                           f"--run.output={tmp_path}", f"--pretrain.data.root={tmp_path / 'tokens'}"])
    one_error_line(result, "phase 'general' wants seq_len 128", "have 256")
    assert not started and not (tmp_path / "runs").exists()  # nothing written, no Ray, no Train workers


def test_all_phases_check_every_phases_shards_before_the_first_trains(tmp_path):
    _token_set(tmp_path, seq_len=128)  # general fits; context and decay have no shards
    result, started = invoke_watching_ray(["pretrain", "--config", DEMO_CONFIG, f"--run.output={tmp_path}",
                                           f"--pretrain.data.root={tmp_path / 'tokens'}"])
    one_error_line(result, "no shard manifest", "context-256")
    assert not started and not (tmp_path / "runs").exists()


def test_callback_stops_retries_only_for_errors_no_retry_fixes():
    from ray.train.v2._internal.exceptions import UserExceptionWithTraceback

    from ray_jobs.pretrain import StopOnUnrecoverable, UnrecoverableWorkerError

    callback = StopOnUnrecoverable()
    with pytest.raises(UnrecoverableWorkerError) as stopped:
        callback.after_exception(None, {1: UserExceptionWithTraceback(ValueError("bad shards"), "Traceback ...")})
    assert stopped.value.rank == 1 and str(stopped.value.error) == "bad shards"
    callback.after_exception(None, {0: UserExceptionWithTraceback(RuntimeError("gloo: connection reset"), "...")})


@pytest.mark.ray
@pytest.mark.shared_data
def test_worker_error_no_retry_can_fix_is_raised_once_not_retried(ray_cluster, demo_tokens, tmp_path):  # noqa: F811
    """The Trainer refuses fsdp=off on 2 workers inside every worker; with 3 retries allowed, the run still
    ends at the first failure (a ControllerError from the callback, not a WorkerGroupError after 3 restarts)."""
    import ray.train

    from ray_jobs.pretrain import run_phase

    config = load_config(DEMO_CONFIG, smoke_overrides({
        "run": {"name": "t", "output": str(tmp_path)},
        "pretrain": {"data": {"root": str(demo_tokens / "tokens")}, "parallelism": {"fsdp": "off"},
                     "checkpoint": {"max_failures": 3}, "phase_overrides": {"general": {"max_steps": 2}}},
    }))
    with pytest.raises(ValueError, match="fsdp=off with 2 workers") as failed:
        run_phase(config, "general", workers=2, export=False)
    assert isinstance(failed.value.__cause__, ray.train.ControllerError)
    assert problem_of(failed.value) == "parallelism.fsdp=off with 2 workers: use 'auto' or 'on'"


# --- masters and addresses -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("master", ["", "spark://no-port", "local[0]", "loca", "http://host:7077"])
def test_empty_or_malformed_spark_master_is_refused(crawl, tmp_path, master):
    result = runner.invoke(app, ["corpus", "extract", "-i", str(crawl), "-o", str(tmp_path / "out"),
                                 f"--spark.master={master}"])
    one_error_line(result, "spark.master", "is not a Spark master URL")
    assert not (tmp_path / "out").exists()


def test_a_session_is_never_built_on_an_empty_master():
    from spark_jobs.session import build_spark_session

    with pytest.raises(ValueError, match="is not a Spark master URL"):
        build_spark_session("rexbert-test", master="")


@pytest.mark.parametrize("command", [
    ["pretrain", "--phase", "general", "--address="],
    ["pretrain", "--phase", "general", "--ray.address=ray://"],
    ["evaluate", "--model", "m", "--output", "o", "--address", ""],
    ["tokenize", "run", "--ray.address=not an address"],
    ["jobs", "list", "--address", ""],
    ["submit", "ray", "--address", "", "--dry-run", "--", "echo"],
])
def test_empty_or_malformed_ray_address_is_refused(tmp_path, command):
    result = runner.invoke(app, command)
    one_error_line(result, "is not a Ray")


# --- --debug -------------------------------------------------------------------------------------------------------


def test_a_secret_quoted_in_the_error_line_is_redacted(tmp_path):
    result = runner.invoke(app, ["corpus", "extract", "-i", str(tmp_path), "-o", str(tmp_path / "out"),
                                 "--spark.master=spark://head:7077 password=hunter2"])  # the value is quoted back
    line = one_error_line(result, "is not a Spark master URL", "password=<redacted>")
    assert "hunter2" not in result.output and "spark://head:7077" in line


def test_debug_flag_shows_the_traceback_and_keeps_the_exit_code(tmp_path):
    missing = tmp_path / "missing"
    result = runner.invoke(app, ["--debug", "corpus", "extract", "-i", str(missing), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.output and "FileNotFoundError" in result.output
    assert result.output.rstrip().splitlines()[-1] == f"error: input not found: {missing}"

