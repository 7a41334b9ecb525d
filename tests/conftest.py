"""Shared fixtures: the real reference data, one local Spark session and one local Ray cluster per run.

Tests that read ../shared/data skip with a reason when it is absent (a user's own clone); CI sets
REXBERT_REQUIRE_SHARED_DATA=1, which turns that absence into an error.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from infra.core.paths import shared_data_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_groups(procs: list, timeout: float = 60) -> None:
    """Stop processes started with `start_new_session=True`, whole groups (their JVM / raylet children with
    them): SIGTERM in reverse start order, then SIGKILL for any group still there after `timeout` seconds."""
    import signal
    import subprocess

    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "README.md").is_file():
        message = f"shared reference data not found at {path} (set REXBERT_SHARED_DATA)"
        if os.environ.get("REXBERT_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One real local Spark session for the whole test run (JVM start-up is paid once)."""
    from spark_jobs.session import build_spark_session

    session = build_spark_session(
        "rexbert-tests",
        master="local[2]",
        driver_memory="2g",
        shuffle_partitions=4,
        event_log_dir=tmp_path_factory.mktemp("spark-events"),
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """One real local Ray cluster for the whole test run, token auth on, shut down at the end.

    It starts after the S3 endpoint (`s3_server`), so its workers get the endpoint and test credentials as a
    local cluster gets its driver's (`ray_jobs.runtime.forwarded_env`): Ray Data tasks read and write `s3://`."""
    import ray

    from infra.core.config import RayConfig
    from ray_jobs.runtime import init_ray

    # Free ports, so a test run never collides with a Ray cluster already running on this machine.
    started = init_ray(RayConfig(num_cpus=2, dashboard_port=_free_port(), metrics_export_port=_free_port()))
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 endpoint on 127.0.0.1 (moto in server mode stands in for the cloud) and a bucket on it.

    Yields the bucket's URI (`s3://rexbert-test`). The AWS variables point every S3 client at it: boto3,
    pyarrow (infra.core.fs) and, through `s3_env`, Ray workers started with that runtime env.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1").create_bucket(
        Bucket="rexbert-test")
    try:
        yield "s3://rexbert-test"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture
def s3_env(s3_server) -> dict[str, str]:
    """The AWS variables of `s3_server`, for processes that do not inherit this one's (Ray runtime_env)."""
    keys = ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
            "AWS_EC2_METADATA_DISABLED")
    return {key: os.environ[key] for key in keys}
