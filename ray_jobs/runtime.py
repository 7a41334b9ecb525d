"""A Ray runtime for local runs and clusters alike.

With no address it starts a local cluster on this machine and shuts it down on exit. A local cluster
is reachable from this machine only: token authentication stays on (Ray's default) with its token file
readable by its owner only (0600; Ray writes it with the umask, 0644), and every process of it (GCS,
raylet, workers, the dashboard and its agents, the Prometheus metrics endpoint) listens on 127.0.0.1.
With an address ('auto', 'ray://head:10001') it connects to a running cluster and leaves it running.

A local cluster's workers get the driver's object-store settings (`AWS_*`, `GOOGLE_*`: credentials,
region, endpoints such as `AWS_ENDPOINT_URL_S3`) in the job's runtime env, so `s3://` and `gs://`
read and write from Ray Data and Ray Train workers as they do in the driver. A running cluster keeps
its own credentials (instance roles, its own environment): nothing is shipped to it.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
import ray._private.ray_constants as ray_constants

from infra.core.config import RayConfig

# Environment variables a local cluster's workers take over from the driver (object-store access).
FORWARDED_ENV_PREFIXES = ("AWS_", "GOOGLE_")
LOOPBACK = "127.0.0.1"


def forwarded_env() -> dict[str, str]:
    """The driver's `AWS_*` / `GOOGLE_*` variables, for the workers of a cluster started here."""
    return {key: value for key, value in os.environ.items() if key.startswith(FORWARDED_ENV_PREFIXES)}


def auth_token_path() -> Path | None:
    """The file Ray reads its token from (`RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`); None when the token is
    given in `RAY_AUTH_TOKEN` and so no file is read."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    custom = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(custom).expanduser() if custom else Path.home() / ".ray" / "auth_token"


def secure_auth_token(create: bool) -> Path | None:
    """Make the token file private (0600): Ray's own `ray.init` writes `~/.ray/auth_token` with the umask, so any
    user of the machine could read the token and so submit jobs to the cluster. With `create` (a local cluster
    with token auth on) a missing default file is created here first, 0600 from its first byte, with the same
    256-bit hex token Ray would generate; Ray then reads it. Returns the file (None when there is none)."""
    path = auth_token_path()
    if path is None:
        return None
    if create and not path.exists() and "RAY_AUTH_TOKEN_PATH" not in os.environ:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile: tighten theirs below
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
    if path.is_file() and path.stat().st_uid == os.getuid() and stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    return path if path.is_file() else None


def _token_auth_on() -> bool:
    """Whether a local cluster started now uses token auth: Ray's default, unless RAY_AUTH_MODE says otherwise."""
    return os.environ.get("RAY_AUTH_MODE", "token").lower() == "token"


@contextmanager
def _loopback_node() -> Iterator[None]:
    """While a local cluster starts: its node address is 127.0.0.1, so every Ray process binds loopback only.

    Ray binds its gRPC servers, agents and metrics endpoint to all interfaces unless the node's address is the
    loopback one, and `ray.init(_node_ip_address="127.0.0.1")` is turned into the machine's routable address.
    Ray's single-machine mode (what it runs on macOS and Windows, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`) takes
    127.0.0.1 instead. The variable reaches the processes started now (and the workers their raylet starts
    later); Ray read it into a constant when it was imported, so that is set for this call too. Both are put back
    after, so a later connection to a real cluster from this process finds its routable address.
    """
    saved_env = os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR)
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = saved_env


def init_ray(config: RayConfig | None = None, **init_kwargs: Any) -> bool:
    """Start or join Ray. Returns True when this call started a local cluster (and so owns it)."""
    config = config or RayConfig()
    if ray.is_initialized():
        return False
    # Workers import this project's packages; ship the repo root on the path.
    project_root = str(Path(__file__).resolve().parent.parent)
    env_vars = {"PYTHONPATH": os.pathsep.join(filter(None, [project_root, os.environ.get("PYTHONPATH")]))}
    if config.address:
        secure_auth_token(create=False)
        ray.init(address=config.address, runtime_env={"env_vars": env_vars}, **init_kwargs)
        return False
    secure_auth_token(create=_token_auth_on())
    with _loopback_node():
        ray.init(
            num_cpus=config.num_cpus,
            include_dashboard=True,
            dashboard_host=LOOPBACK,
            dashboard_port=config.dashboard_port,
            _metrics_export_port=config.metrics_export_port,
            runtime_env={"env_vars": {**forwarded_env(), **env_vars}},
            **init_kwargs,
        )
    secure_auth_token(create=False)  # in case Ray wrote one after all (its cache said there was none)
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
