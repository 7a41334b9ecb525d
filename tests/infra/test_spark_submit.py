"""`rexbert submit spark`: the spark-submit line it builds, the executor environment it ships, and the paths it
hands to executors. The run on a real standalone cluster is tests/spark_jobs/test_standalone_cluster.py (heavy)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.cloud.packaging import (
    SPARK_EXECUTOR_DISTRIBUTIONS,
    env_archive_key,
    env_archive_path,
    spark_executor_requirements,
)
from infra.cloud.spark_submit import build_spark_submission, code_zip
from infra.core import fs
from infra.core.paths import PROJECT_ROOT

runner = CliRunner()


def _submit_line(output: str) -> list[str]:
    return shlex.split(output.strip().splitlines()[-1])


def _confs(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, word in enumerate(argv) if word == "--conf")


def test_dry_run_prints_the_spark_submit_line_with_code_and_environment(tmp_path):
    archive = tmp_path / "env.tar.gz"
    archive.write_bytes(b"not unpacked by a dry run")
    result = runner.invoke(app, ["submit", "spark", "--master", "spark://127.0.0.1:7077", "--env-archive",
                                 str(archive), "--executor-memory", "1g", "--event-log-dir", "s3://logs/spark",
                                 "--dry-run", "build", "--", "--input", "crawl/", "--output", "out/"])
    assert result.exit_code == 0, result.output
    argv = _submit_line(result.output)
    assert argv[0].startswith("SPARK_LOCAL_IP=127.0.0.1")  # a cluster on this machine: the driver stays on loopback
    argv = argv[1:]
    assert Path(argv[0]).name == "spark-submit"
    assert argv[argv.index("--master") + 1] == "spark://127.0.0.1:7077"
    assert argv[argv.index("--deploy-mode") + 1] == "client"
    assert argv[argv.index("--archives") + 1] == f"{archive}#environment"
    assert argv[argv.index("--py-files") + 1].endswith("rexbert-pyfiles.zip")
    assert argv[argv.index("--executor-memory") + 1] == "1g"
    confs = _confs(argv)
    assert confs["spark.pyspark.python"] == "./environment/bin/python"  # the unpacked archive, on every executor
    assert Path(confs["spark.pyspark.driver.python"]).parent == Path(os.sys.executable).parent
    assert confs["spark.eventLog.enabled"] == "true" and confs["spark.eventLog.dir"] == "s3://logs/spark"
    main = argv.index(str(PROJECT_ROOT / "spark_jobs" / "build_job.py"))
    assert argv[main + 1:] == ["--input", "crawl/", "--output", "out/"]


def test_dry_run_names_the_cached_archive_without_building_it(tmp_path, monkeypatch):
    result = runner.invoke(app, ["submit", "spark", "--master", "yarn", "--dry-run", "dedup", "--",
                                 "--input", "a", "--output", "b"])
    assert result.exit_code == 0, result.output
    archive = _submit_line(result.output)[_submit_line(result.output).index("--archives") + 1]
    assert archive == f"{env_archive_path()}#environment"


def test_cluster_deploy_mode_runs_the_driver_on_the_packed_python_too(tmp_path):
    submission = build_spark_submission("dedup", [], "yarn", tmp_path / "code.zip", "hdfs:///envs/env.tar.gz",
                                        deploy_mode="cluster")
    confs = _confs(submission.argv)
    assert "spark.pyspark.driver.python" not in confs and confs["spark.pyspark.python"] == "./environment/bin/python"
    assert submission.env == {}  # a remote cluster: nothing pinned to loopback


def test_no_env_ships_no_archive():
    result = runner.invoke(app, ["submit", "spark", "--master", "k8s://https://k8s.example:443", "--no-env",
                                 "--dry-run", "filter", "--", "--input", "a", "--output", "b"])
    assert result.exit_code == 0, result.output
    argv = _submit_line(result.output)
    assert "--archives" not in argv and "spark.pyspark.python" not in _confs(argv)


@pytest.mark.parametrize("args, message", [
    (["--master", "spark//head:7077", "build"], "is not a Spark master URL"),
    (["--master", "yarn", "--deploy-mode", "remote", "--no-env", "build"], "client or cluster"),
    (["--master", "yarn", "--no-env", "dedupe"], "unknown Spark job 'dedupe'"),
    (["--master", "spark://h:7077", "--deploy-mode", "cluster", "--no-env", "build"], "client mode only"),
    (["--master", "yarn", "--env-archive", "missing.tar.gz", "build"], "no such environment archive"),
])
def test_bad_submissions_are_one_line_errors(args, message):
    result = runner.invoke(app, ["submit", "spark", "--dry-run", *args])
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_executor_requirements_are_pyprojects_pins():
    pins = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements = spark_executor_requirements()
    assert len(requirements) == len(SPARK_EXECUTOR_DISTRIBUTIONS) and set(requirements) <= set(pins)
    assert all("==" in r for r in requirements)
    assert not any(r.startswith(("pyspark", "torch", "ray")) for r in requirements)  # Spark ships its own pyspark


def test_archive_key_follows_the_pins():
    requirements = spark_executor_requirements()
    assert env_archive_key(requirements) == env_archive_key(list(reversed(requirements)))
    bumped = [r.replace("pyarrow==", "pyarrow==0.") for r in requirements]
    assert env_archive_key(bumped) != env_archive_key(requirements)


def test_code_zip_carries_the_phase_files_and_the_block_model_the_jobs_read(tmp_path):
    import zipfile

    archive = code_zip(tmp_path)
    names = zipfile.ZipFile(archive).namelist()
    assert {"training/__init__.py", "training/phases/general.yaml", "spark_jobs/build_job.py",
            "corpus/extract/block_model.json"} <= set(names)
    # an executor imports the extractor from the zip alone, and the block model loads from inside it
    code = ("import corpus.extract.block_model as m; assert '.zip' in m.__file__, m.__file__; "
            "print(type(m.load_block_model()).__name__)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(archive)},
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "BlockModel", run.stderr[-2000:]


def test_job_paths_are_made_absolute_for_executors(tmp_path, monkeypatch):
    """Executors run in their own work folders: a relative path from the user's shell is resolved on the driver."""
    monkeypatch.chdir(tmp_path)
    assert fs.absolute("crawl/part.warc.gz") == str(tmp_path / "crawl" / "part.warc.gz")
    assert fs.absolute("s3://bucket/crawl") == "s3://bucket/crawl"
    assert fs.absolute("file:///data/x") == "/data/x"
