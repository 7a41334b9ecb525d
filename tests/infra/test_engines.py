"""The engine helpers: a real local Spark session and a real local Ray cluster, set up as the machine needs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = []


@pytest.mark.spark
def test_local_spark_runs_workers_on_this_python_and_logs_events(spark):
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    assert os.environ["SPARK_LOCAL_IP"] == "127.0.0.1"
    # A Python UDF runs in a worker process: it must be this interpreter, with this project importable.
    executables = spark.sparkContext.parallelize(range(4), 2).map(lambda _: __import__("sys").executable).collect()
    assert set(executables) == {sys.executable}
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.eventLog.enabled") == "true"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"  # driver RPC and block manager on loopback


@pytest.mark.spark
def test_a_local_session_binds_loopback_whatever_the_shell_says(spark, monkeypatch):
    """A SPARK_LOCAL_IP left in the environment (0.0.0.0, a LAN address) would put the Spark UI there (Spark binds
    its UI to SPARK_LOCAL_IP, else to every interface): a local session sets it to 127.0.0.1 for its JVM."""
    from spark_jobs.session import build_spark_session

    monkeypatch.setenv("SPARK_LOCAL_IP", "0.0.0.0")
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    session = build_spark_session("rexbert-tests", master="local[2]", shuffle_partitions=4)
    assert session is spark  # the running session, reused
    assert os.environ["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert spark.sparkContext.uiWebUrl.startswith("http://127.0.0.1:")


@pytest.mark.ray
def test_local_ray_keeps_token_auth_on_and_dashboard_on_loopback(ray_cluster):
    import ray

    assert os.environ.get("RAY_AUTH_MODE") == "token"
    context = ray.get_runtime_context()
    assert context.get_node_id()
    assert ray.cluster_resources()["CPU"] == 2
    dashboard = ray.worker.get_dashboard_url() if hasattr(ray, "worker") else ""
    assert dashboard.startswith("127.0.0.1:")


@pytest.mark.ray
def test_ray_job_submission_round_trip_with_token_auth(ray_cluster):
    """`rexbert submit ray` against the real local cluster: submit, wait, read the logs."""
    import ray

    from infra.cloud.ray_submit import build_ray_job_request, job_client, submit_ray_job, wait_for_job

    address = "http://" + ray.worker.get_dashboard_url()
    request = build_ray_job_request([sys.executable, "-c", "print('hello from a rexbert job')"], working_dir=None)
    job_id = submit_ray_job(request, address)
    assert wait_for_job(job_id, address, timeout_s=180) == "SUCCEEDED"
    assert "hello from a rexbert job" in job_client(address).get_job_logs(job_id)


@pytest.mark.ray
def test_ray_job_runs_the_shipped_checkout_with_its_phases(ray_cluster):
    """The default submission ships this checkout as the working_dir: the job imports corpus, training,
    ray_jobs and infra from the uploaded copy (not from this machine's checkout) and loads a config whose
    phases are read from the shipped training/phases/."""
    import ray

    from infra.cloud.ray_submit import build_ray_job_request, job_client, submit_ray_job, wait_for_job
    from infra.core.paths import PROJECT_ROOT

    code = ("import corpus.extract.stage, training.data, ray_jobs.runtime, infra.core.config as c\n"
            "cfg = c.load_config('infra/configs/demo.yaml')\n"
            "print('phases', ','.join(cfg.pretrain.phases))\n"
            "print('from', c.__file__)")
    request = build_ray_job_request([sys.executable, "-c", code])
    assert request.runtime_env["working_dir"] == str(PROJECT_ROOT)

    address = "http://" + ray.worker.get_dashboard_url()
    job_id = submit_ray_job(request, address)
    status = wait_for_job(job_id, address, timeout_s=300)
    logs = job_client(address).get_job_logs(job_id)
    assert status == "SUCCEEDED", logs
    assert "phases general,context,decay" in logs
    shipped = next(line.split(" ", 1)[1] for line in logs.splitlines() if line.startswith("from "))
    assert not Path(shipped).resolve().is_relative_to(PROJECT_ROOT), shipped


def test_a_working_dir_without_the_code_is_refused(tmp_path):
    from infra.cloud.ray_submit import build_ray_job_request

    (tmp_path / "run.yaml").write_text("run:\n  name: x\n")
    with pytest.raises(ValueError, match="lacks corpus, training, ray_jobs, infra"):
        build_ray_job_request(["rexbert", "pretrain", "-c", "run.yaml"], working_dir=str(tmp_path))
    assert "working_dir" not in build_ray_job_request(["rexbert", "report"], working_dir=None).runtime_env
