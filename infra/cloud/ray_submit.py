"""Submit and watch Ray jobs on any Ray cluster (local, cluster launcher, KubeRay) through the Jobs API.

Token authentication stays on: the client runs with RAY_AUTH_MODE=token and reads the cluster's token
from RAY_AUTH_TOKEN or ~/.ray/auth_token (`ray get-auth-token` prints it on the head node).

The code a job's driver and workers import travels with the job as its `working_dir`: this checkout
(corpus/, training/, ray_jobs/, infra/ side by side, as `infra.core.config` expects to find
`training/phases/`), less environments, outputs and caches. Ray puts the working_dir first on every job
process's path, so the job runs this code, not whatever the cluster image has installed. Run configs
travel as URIs (`--config s3://...`) or as files inside the checkout.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.core.paths import PROJECT_ROOT

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# What a job's working_dir upload leaves out: environments, outputs and caches are not code.
WORKING_DIR_EXCLUDES = [".venv", ".git", "demo-output", "bench/results", "**/__pycache__", "*.egg-info",
                        ".pytest_cache", ".ruff_cache"]
# What the job's processes import: the Ray drivers and what they call (the CLI, the config and filesystem
# layer, training, document logic).
RAY_PACKAGES = ("corpus", "training", "ray_jobs", "infra")


def missing_packages(working_dir: str) -> list[str]:
    """The packages a job needs that `working_dir` does not hold (its upload would not carry them)."""
    return [p for p in RAY_PACKAGES if not (Path(working_dir) / p / "__init__.py").is_file()]


@dataclass
class RayJobRequest:
    """The body of a Ray Jobs submission (JobSubmissionClient.submit_job keyword arguments)."""

    entrypoint: str
    submission_id: str | None = None
    runtime_env: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def build_ray_job_request(
    entrypoint: list[str],
    working_dir: str | None = str(PROJECT_ROOT),
    pip: list[str] | None = None,
    env_vars: dict[str, str] | None = None,
    submission_id: str | None = None,
    entrypoint_num_cpus: float | None = None,
    entrypoint_num_gpus: float | None = None,
) -> RayJobRequest:
    """The submission for `entrypoint`; its runtime_env ships `working_dir` (default: this checkout).

    `working_dir=None` ships nothing: the cluster image's installed code runs. A working_dir that lacks
    one of `RAY_PACKAGES` is an error, since the job would run a mix of shipped and installed code.
    """
    if not entrypoint:
        raise ValueError("a Ray job needs an entrypoint command, e.g. -- rexbert pretrain --config run.yaml")
    runtime_env: dict[str, Any] = {}
    if working_dir:
        missing = missing_packages(working_dir)
        if missing:
            raise ValueError(f"working_dir {working_dir} lacks {', '.join(missing)}: submit the project folder "
                             f"({PROJECT_ROOT}), or none to run the cluster image's code; configs can be URIs")
        runtime_env["working_dir"] = working_dir
        runtime_env["excludes"] = list(WORKING_DIR_EXCLUDES)
    if pip:
        runtime_env["pip"] = list(pip)
    if env_vars:
        runtime_env["env_vars"] = dict(env_vars)
    return RayJobRequest(
        entrypoint=shlex.join(entrypoint),
        submission_id=submission_id,
        runtime_env=runtime_env,
        metadata={"app": "rexbert"},
        entrypoint_num_cpus=entrypoint_num_cpus,
        entrypoint_num_gpus=entrypoint_num_gpus,
    )


def job_client(address: str = DEFAULT_ADDRESS):
    """A JobSubmissionClient with token auth on (Ray 2.60 clusters require it by default)."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)


def submit_ray_job(request: RayJobRequest, address: str = DEFAULT_ADDRESS, agent_wait_s: float = 120) -> str:
    """Submit; a cluster that has just started may not have its job agent up yet, so wait for it a while."""
    client = job_client(address)
    kwargs = {k: v for k, v in asdict(request).items() if v not in (None, {}, [])}
    deadline = time.monotonic() + agent_wait_s
    while True:
        try:
            return client.submit_job(**kwargs)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def wait_for_job(job_id: str, address: str = DEFAULT_ADDRESS, timeout_s: float = 600, poll_s: float = 1.0) -> str:
    """Poll until the job ends; returns its final status name (SUCCEEDED, FAILED, STOPPED)."""
    client = job_client(address)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = str(client.get_job_status(job_id).value)
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            return status
        time.sleep(poll_s)
    raise TimeoutError(f"job {job_id} still running after {timeout_s}s")
