"""Submit and watch Ray jobs on any Ray cluster (local, cluster launcher, KubeRay) through the Jobs API.

Token authentication stays on: the client runs with RAY_AUTH_MODE=token and reads the cluster's token
from RAY_AUTH_TOKEN or ~/.ray/auth_token (`ray get-auth-token` prints it on the head node).

The code a job's driver and workers import travels with the job as its `working_dir`: this checkout
(corpus/, training/, ray_jobs/, infra/ side by side, as `infra.core.config` expects to find
`training/phases/`), less environments, outputs and caches. Ray puts the working_dir first on every job
process's path, so the job runs this code, not whatever the cluster image has installed. Run configs
travel as URIs (`--config s3://...`) or as files inside the checkout. Code that lives elsewhere (a local
package folder, a wheel) travels as `py_modules`, uploaded the same way.

`follow_job` streams a job's driver output to the console until the job ends, with no time cap: a pretraining
job runs for hours, and Ctrl-C on the console leaves it running on the cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import time
from collections.abc import Callable
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
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# `--entrypoint-memory` units: binary (GiB) as Kubernetes and Ray's docs write them, decimal (GB) as well.
_BYTE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
               "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2,
               "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def missing_packages(working_dir: str) -> list[str]:
    """The packages a job needs that `working_dir` does not hold (its upload would not carry them)."""
    return [p for p in RAY_PACKAGES if not (Path(working_dir) / p / "__init__.py").is_file()]


def parse_bytes(text: str) -> int:
    """A memory size as Ray's `entrypoint_memory` takes it (bytes) from `4GiB`, `512MiB`, `8GB` or `1073741824`."""
    match = _SIZE.fullmatch(str(text))
    unit = match.group(2).lower() if match else None
    if unit not in _BYTE_UNITS:
        raise ValueError(f"{text!r} is not a memory size: give bytes or a number with a unit, e.g. 4GiB, 512MiB")
    size = int(float(match.group(1)) * _BYTE_UNITS[unit])
    if size <= 0:
        raise ValueError(f"memory size {text!r} must be more than 0 bytes")
    return size


def check_py_module(module: str) -> str:
    """A `py_modules` entry: a URI (s3://, gs://, https:// zip or wheel, as Ray fetches it) stays as it is; a
    local package folder or `.whl` file becomes an absolute path (the client uploads it on submission)."""
    if "://" in module:
        return module
    path = Path(module).expanduser().resolve()
    if path.is_dir() or (path.is_file() and path.suffix == ".whl"):
        return str(path)
    if path.is_file():
        raise ValueError(f"py_module {module} is a file but not a wheel (.whl): give a package folder or a wheel")
    raise ValueError(f"no such py_module: {module}")


@dataclass
class RayJobRequest:
    """The body of a Ray Jobs submission (JobSubmissionClient.submit_job keyword arguments)."""

    entrypoint: str
    submission_id: str | None = None
    runtime_env: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None

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
    entrypoint_memory: int | None = None,
    py_modules: list[str] | None = None,
) -> RayJobRequest:
    """The submission for `entrypoint`; its runtime_env ships `working_dir` (default: this checkout).

    `working_dir=None` ships nothing: the cluster image's installed code runs. A working_dir that lacks
    one of `RAY_PACKAGES` is an error, since the job would run a mix of shipped and installed code.
    `py_modules` are more local package folders or wheels (or URIs) put on the job's path; the entrypoint's
    CPUs, GPUs and memory (bytes) are what the cluster reserves for the driver process itself.
    """
    if not entrypoint:
        raise ValueError("a Ray job needs an entrypoint command, e.g. -- rexbert pretrain --config run.yaml")
    for name, amount in (("entrypoint_num_cpus", entrypoint_num_cpus), ("entrypoint_num_gpus", entrypoint_num_gpus),
                         ("entrypoint_memory", entrypoint_memory)):
        if amount is not None and amount < 0:
            raise ValueError(f"{name} must be 0 or more, got {amount}")
    runtime_env: dict[str, Any] = {}
    if working_dir:
        missing = missing_packages(working_dir)
        if missing:
            raise ValueError(f"working_dir {working_dir} lacks {', '.join(missing)}: submit the project folder "
                             f"({PROJECT_ROOT}), or none to run the cluster image's code; configs can be URIs")
        runtime_env["working_dir"] = working_dir
        runtime_env["excludes"] = list(WORKING_DIR_EXCLUDES)
    if py_modules:
        runtime_env["py_modules"] = [check_py_module(m) for m in py_modules]
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
        entrypoint_memory=entrypoint_memory,
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


def wait_for_job(job_id: str, address: str = DEFAULT_ADDRESS, timeout_s: float | None = None,
                 poll_s: float = 1.0) -> str:
    """Poll until the job ends; returns its final status name (SUCCEEDED, FAILED, STOPPED).

    No time cap unless `timeout_s` is given (a training job runs for hours); past it, TimeoutError."""
    client = job_client(address)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while deadline is None or time.monotonic() < deadline:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL:
            return status
        time.sleep(poll_s)
    raise TimeoutError(f"job {job_id} still running after {timeout_s}s")


def _stdout(chunk: str) -> None:
    print(chunk, end="", flush=True)


def follow_job(job_id: str, address: str = DEFAULT_ADDRESS, write: Callable[[str], None] = _stdout,
               retry_s: float = 2.0, retries: int = 5):
    """Write the job's logs as the driver prints them (from the start), until the job ends; returns its JobInfo.

    The log stream (a websocket to the dashboard) ends when the job does. A stream that drops while the job
    still runs (a proxy's idle timeout, a dashboard restart) is opened again; a new stream replays the log
    from its beginning, so what was written already is skipped. After `retries` drops in a row with nothing
    new, RuntimeError. An unknown job id is a RuntimeError from the Jobs API (status 404).
    """
    import aiohttp

    client = job_client(address)
    client.get_job_info(job_id)  # an unknown id fails here, with the API's message
    shown = 0  # characters of the log written so far

    async def tail() -> None:
        nonlocal shown
        replayed = 0
        async for chunk in client.tail_job_logs(job_id):
            fresh = chunk[max(0, shown - replayed):]
            replayed += len(chunk)
            if fresh:
                write(fresh)
                shown += len(fresh)

    drops = 0
    while True:
        before, error = shown, None
        try:
            asyncio.run(tail())
        except (RuntimeError, aiohttp.ClientError) as exc:
            error = exc
        info = client.get_job_info(job_id)
        if str(info.status.value) in TERMINAL:
            return info
        drops = 0 if shown > before else drops + 1
        if drops > retries:
            raise RuntimeError(f"lost the log stream of job {job_id} ({error or 'closed while running'}); it may "
                               "still run: see `rexbert jobs status`")
        time.sleep(retry_s)


def status_line(job_id: str, info) -> str:
    """`<id>: SUCCEEDED`, or `<id>: FAILED (<why>)` on one line: Ray's message appends the log's last lines."""
    status = str(info.status.value)
    if status == "SUCCEEDED":
        return f"{job_id}: {status}"
    message = (info.message or "").strip().split("\n", 1)[0]
    message = message.split(", last available logs", 1)[0].rstrip(":").strip()
    return f"{job_id}: {status} ({message or 'no message'})"


def interrupted_line(job_id: str, address: str) -> str:
    """What Ctrl-C while following prints: the job keeps running on the cluster, and how to reach it again."""
    where = "" if address == DEFAULT_ADDRESS else f" --address {shlex.quote(address)}"
    return (f"stopped following; job {job_id} keeps running on the cluster. Follow it: rexbert jobs logs {job_id} "
            f"--follow{where}  Stop it: rexbert jobs stop {job_id}{where}")
