"""A Ray runtime for local runs and clusters alike.

With no address it starts a local cluster on this machine: token authentication stays on (Ray's
default), the dashboard listens on 127.0.0.1 only, and everything is shut down on exit. With an
address ('auto', 'ray://head:10001') it connects to a running cluster and leaves it running.

A local cluster's workers get the driver's object-store settings (`AWS_*`, `GOOGLE_*`: credentials,
region, endpoints such as `AWS_ENDPOINT_URL_S3`) in the job's runtime env, so `s3://` and `gs://`
read and write from Ray Data and Ray Train workers as they do in the driver. A running cluster keeps
its own credentials (instance roles, its own environment): nothing is shipped to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from infra.core.config import RayConfig

# Environment variables a local cluster's workers take over from the driver (object-store access).
FORWARDED_ENV_PREFIXES = ("AWS_", "GOOGLE_")


def forwarded_env() -> dict[str, str]:
    """The driver's `AWS_*` / `GOOGLE_*` variables, for the workers of a cluster started here."""
    return {key: value for key, value in os.environ.items() if key.startswith(FORWARDED_ENV_PREFIXES)}


def init_ray(config: RayConfig | None = None, **init_kwargs: Any) -> bool:
    """Start or join Ray. Returns True when this call started a local cluster (and so owns it)."""
    config = config or RayConfig()
    if ray.is_initialized():
        return False
    # Workers import this project's packages; ship the repo root on the path.
    project_root = str(Path(__file__).resolve().parent.parent)
    env_vars = {"PYTHONPATH": os.pathsep.join(filter(None, [project_root, os.environ.get("PYTHONPATH")]))}
    if config.address:
        ray.init(address=config.address, runtime_env={"env_vars": env_vars}, **init_kwargs)
        return False
    ray.init(
        num_cpus=config.num_cpus,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=config.dashboard_port,
        _metrics_export_port=config.metrics_export_port,
        runtime_env={"env_vars": {**forwarded_env(), **env_vars}},
        **init_kwargs,
    )
    return True


@contextmanager
def ray_runtime(config: RayConfig | None = None, **init_kwargs: Any) -> Iterator[None]:
    """Ray for the duration of a block; a cluster started here is shut down at the end."""
    started = init_ray(config, **init_kwargs)
    try:
        yield
    finally:
        if started:
            ray.shutdown()
