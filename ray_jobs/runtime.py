"""A Ray runtime for local runs and clusters alike.

With no address it starts a local cluster on this machine: token authentication stays on (Ray's
default), the dashboard listens on 127.0.0.1 only, and everything is shut down on exit. With an
address ('auto', 'ray://head:10001') it connects to a running cluster and leaves it running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from infra.core.config import RayConfig


def init_ray(config: RayConfig | None = None, **init_kwargs: Any) -> bool:
    """Start or join Ray. Returns True when this call started a local cluster (and so owns it)."""
    config = config or RayConfig()
    if ray.is_initialized():
        return False
    # Workers import this project's packages; ship the repo root on the path.
    project_root = str(Path(__file__).resolve().parent.parent)
    env_vars = {"PYTHONPATH": os.pathsep.join(filter(None, [project_root, os.environ.get("PYTHONPATH")]))}
    runtime_env = {"env_vars": env_vars}
    if config.address:
        ray.init(address=config.address, runtime_env=runtime_env, **init_kwargs)
        return False
    ray.init(
        num_cpus=config.num_cpus,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=config.dashboard_port,
        _metrics_export_port=config.metrics_export_port,
        runtime_env=runtime_env,
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
