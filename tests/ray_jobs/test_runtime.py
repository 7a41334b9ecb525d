"""The Ray runtime: a local cluster's workers see the driver's object-store variables (AWS_*, GOOGLE_*), and the
cluster lives on 127.0.0.1 (its ports and token file: tests/infra/test_exposure.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from infra.core.paths import PROJECT_ROOT
from ray_jobs.runtime import forwarded_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_forwarded_env_takes_the_object_store_variables_only(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/sa.json")
    monkeypatch.setenv("UNRELATED_TOKEN", "x")
    env = forwarded_env()
    assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/secrets/sa.json"
    assert "UNRELATED_TOKEN" not in env


@pytest.mark.ray
def test_a_local_cluster_gives_its_workers_the_drivers_s3_endpoint():
    """In a fresh process (one local cluster per process): the job's runtime env carries the variables and a
    worker task reads them."""
    code = f"""
import os, ray
import ray._private.ray_constants as ray_constants
from infra.core.config import RayConfig
from ray_jobs.runtime import ray_runtime
with ray_runtime(RayConfig(num_cpus=1, dashboard_port={_free_port()}, metrics_export_port={_free_port()})):
    job_env = ray.get_runtime_context().runtime_env["env_vars"]
    worker = ray.get(ray.remote(lambda: os.environ.get("AWS_ENDPOINT_URL_S3")).remote())
    worker_ip = ray.get(ray.remote(lambda: ray.util.get_node_ip_address()).remote())
    node_ip = ray.nodes()[0]["NodeManagerAddress"]
print("job", job_env.get("AWS_ENDPOINT_URL_S3"), "worker", worker)
print("node", node_ip, "worker node", worker_ip)
print("after", ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR))
"""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9000"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "job http://127.0.0.1:9000 worker http://127.0.0.1:9000" in done.stdout
    # The node (and so each of its servers) is on loopback, its workers agree, and the single-machine switch that
    # put it there is undone: a later `ray.init(address=...)` from this process finds its routable address again.
    assert "node 127.0.0.1 worker node 127.0.0.1" in done.stdout
    assert "after True None" in done.stdout
