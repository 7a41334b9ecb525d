"""`corpus build` on a real Spark standalone cluster started here (one master, two one-core workers on 127.0.0.1),
through `rexbert submit spark` with the packed executor environment, against the same build run locally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyspark
import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.sample_crawl.generate import generate_sample_crawl
from tests.conftest import _free_port, stop_process_groups
from tests.corpus.test_classify import labeled_rows, write_jsonl

pytestmark = [pytest.mark.spark, pytest.mark.heavy]
SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"
REXBERT = Path(sys.executable).parent / "rexbert"


def _master_status(webui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{webui_port}/json/", timeout=5) as response:
        return json.load(response)


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(SPARK_CLASS), *args], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # its own process group: stopped with its JVM children


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """A master and two workers (1 core, 1.5 GiB each), on loopback; yields (master URL, web UI port)."""
    root = tmp_path_factory.mktemp("standalone")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_WORKER_DIR": str(root / "work"),
           "SPARK_LOG_DIR": str(root / "logs"), "SPARK_NO_DAEMONIZE": "1"}
    port, webui = _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    procs = [_start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                     "--webui-port", str(webui)], root / "master.log", env)]
    try:
        deadline = time.monotonic() + 120
        while True:  # the master first: workers that start before it retry with backoff and slow the start
            try:
                _master_status(webui)
                break
            except OSError:
                assert time.monotonic() < deadline, (root / "master.log").read_text()[-2000:]
                time.sleep(1)
        for i in range(2):
            procs.append(_start(["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
                                 "--memory", "1536m", "--webui-port", str(_free_port()),
                                 "--work-dir", str(root / f"work-{i}"), master_url], root / f"worker-{i}.log", env))
        while sum(w["state"] == "ALIVE" for w in _master_status(webui)["workers"]) < 2:
            assert time.monotonic() < deadline, "the two workers never registered with the master"
            time.sleep(1)
        yield master_url, webui
    finally:
        stop_process_groups(procs, timeout=30)


def _corpus(out: Path) -> tuple[list[str], dict]:
    doc_ids = sorted(doc_id for part in sorted((out / "corpus").glob("*.parquet"))
                     for doc_id in pq.read_table(part, columns=["doc_id"]).column("doc_id").to_pylist())
    return doc_ids, json.loads((out / "manifest.json").read_text())


def _untimed(value):
    """Counts without wall-clock fields (the only thing allowed to differ between the runs)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def test_corpus_build_on_a_standalone_cluster_matches_the_local_run(standalone_cluster, tmp_path):
    master_url, webui = standalone_cluster
    generate_sample_crawl(tmp_path / "crawl", docs=120, seed=11, docs_per_file=40, progress=False)
    classifier = tmp_path / "classifier.bin"
    trained = CliRunner().invoke(app, ["corpus", "train-classifier", "--output", str(classifier),
                                       "--labeled-jsonl", str(write_jsonl(labeled_rows(), tmp_path / "labels.jsonl"))])
    assert trained.exit_code == 0, trained.output
    build_args = ["--input", str(tmp_path / "crawl"), "--classifier", str(classifier)]

    # The local run, as the CLI runs it on one machine (local mode, asked for by the CLI's default master).
    local = subprocess.run([str(REXBERT), "corpus", "build", *build_args, "--output", str(tmp_path / "local"),
                            "--spark.master=local[2]"], capture_output=True, text=True, timeout=900)
    assert local.returncode == 0, local.stdout + local.stderr

    # The cluster run: relative paths on purpose (the driver makes them absolute; executors run elsewhere).
    events = tmp_path / "events"
    events.mkdir()
    cluster = subprocess.run(
        [str(REXBERT), "submit", "spark", "--master", master_url, "--executor-cores", "1",
         "--executor-memory", "1g", "--event-log-dir", events.as_uri(), "--log-file", str(tmp_path / "submit.log"),
         "build", "--", "--input", "crawl", "--classifier", "classifier.bin", "--output", "cluster"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)
    log = tmp_path / "submit.log"
    assert cluster.returncode == 0, cluster.stdout + cluster.stderr + (log.read_text()[-3000:] if log.exists() else "")
    assert "standalone master UI" in cluster.stdout

    local_ids, local_manifest = _corpus(tmp_path / "local")
    cluster_ids, cluster_manifest = _corpus(tmp_path / "cluster")
    assert cluster_ids == local_ids and len(local_ids) > 10
    assert _untimed(cluster_manifest["counts"]) == _untimed(local_manifest["counts"])
    assert _untimed(cluster_manifest["funnel"]) == _untimed(local_manifest["funnel"])

    # The master ran it as an application with executors on both workers...
    apps = _master_status(webui)["completedapps"]
    assert [(a["name"], a["state"]) for a in apps] == [("rexbert-corpus-build", "FINISHED")], apps
    # ... and the event log shows every task on an executor (never the driver), one executor per worker.
    events_seen = _event_log(events)
    executors = {e["Executor ID"] for e in events_seen if e["Event"] == "SparkListenerExecutorAdded"}
    task_executors = {e["Task Info"]["Executor ID"] for e in events_seen if e["Event"] == "SparkListenerTaskEnd"}
    assert len(executors) == 2 and task_executors == executors, (executors, task_executors)
    # Each worker unpacked the environment archive in its executor's folder: the interpreter the tasks ran.
    app_id = apps[0]["id"]
    for worker in (0, 1):
        assert list(Path(_cluster_root(tmp_path)).glob(f"work-{worker}/{app_id}/*/environment/bin/python")), worker


def _cluster_root(tmp_path: Path) -> Path:
    return next(tmp_path.parent.glob("standalone*"))


def _event_log(folder: Path) -> list[dict]:
    """The events of Spark's (rolling, zstd-compressed by default) event logs under `folder`."""
    events = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "appstatus"))):
        if path.suffix == ".zstd":
            with pa.CompressedInputStream(str(path), "zstd") as stream:
                text = stream.read().decode()
        else:
            text = path.read_text()
        events += [json.loads(line) for line in text.splitlines()]
    return events
