"""A Ray runtime for local runs and clusters alike.

With no address it starts a local cluster on this machine and shuts it down on exit. A local cluster
is reachable from this machine only: token authentication stays on (Ray's default) with its token file
readable by its owner only (0600; Ray writes it with the umask, 0644), and every process of it (GCS,
raylet, workers, the dashboard and its agents, the Prometheus metrics endpoint) listens on 127.0.0.1.
With an address ('auto', 'ray://head:10001') it connects to a running cluster and leaves it running.

Quiet console (`log_dir`): Ray's own INFO logs go to files, not the terminal. The driver's Ray loggers
(`ray`, `ray.data`, `ray.tune`, `ray.train`) write to `<log_dir>/ray.log` and print errors only; Ray Data's
progress bars and its non-interactive progress lines are off (`DataContext.enable_progress_bars`, which the
datasets carry into the Train workers that run them); worker output is not forwarded (`log_to_driver=False`)
and, when the cluster started here shuts down, its session log folder (workers, raylet, GCS, dashboard) is
copied to `<log_dir>/ray/`. Errors still reach the driver: a failed task or worker raises there.

A local cluster's workers get the driver's object-store settings (`AWS_*`, `GOOGLE_*`: credentials,
region, endpoints such as `AWS_ENDPOINT_URL_S3`) in the job's runtime env, so `s3://` and `gs://`
read and write from Ray Data and Ray Train workers as they do in the driver. A running cluster keeps
its own credentials (instance roles, its own environment): nothing is shipped to it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
import ray._private.ray_constants as ray_constants

from infra.core.config import RayConfig

# The driver-side loggers of Ray's libraries (Ray Data's does not propagate to `ray`, so each is handled).
RAY_LOGGERS = ("ray", "ray.data", "ray.tune", "ray.train", "ray.air")
RAY_LOG_NAME = "ray.log"
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


def route_ray_logs(log_dir: str | Path) -> Path:
    """Send the driver's Ray logs (INFO and above) to `<log_dir>/ray.log`; their console handlers keep errors only,
    and Ray Data shows no progress bars. Idempotent; returns the log file."""
    import ray.data  # its import configures the `ray.data` loggers: after it, so that is not undone
    import ray.train  # noqa: F401 - the same for Train's and Tune's loggers
    import ray.tune  # noqa: F401

    log_file = Path(log_dir).resolve() / RAY_LOG_NAME
    log_file.parent.mkdir(parents=True, exist_ok=True)
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.ERROR)
        if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == log_file for h in logger.handlers):
            handler = logging.FileHandler(log_file, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            handler.setLevel(logging.INFO)
            logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    return log_file


def session_log_folder() -> Path | None:
    """The running local Ray session's log folder (None when Ray is not up or is a remote cluster's)."""
    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return None
    return Path(node.get_session_dir_path()) / "logs"


def copy_ray_logs(session_logs: Path | None, log_dir: str | Path) -> Path | None:
    """Copy a finished session's log folder to `<log_dir>/ray/` (sockets and other non-files are left out)."""
    if session_logs is None or not session_logs.is_dir():
        return None
    target = Path(log_dir) / "ray"
    shutil.copytree(session_logs, target, dirs_exist_ok=True,
                    ignore=lambda folder, names: [n for n in names if not (Path(folder) / n).is_file()
                                                  and not (Path(folder) / n).is_dir()])
    return target


def init_ray(config: RayConfig | None = None, log_dir: str | Path | None = None, **init_kwargs: Any) -> bool:
    """Start or join Ray. Returns True when this call started a local cluster (and so owns it).

    Args:
        log_dir: a local folder for Ray's logs (see the module docstring: quiet console); None prints them.
    """
    config = config or RayConfig()
    if log_dir is not None:
        route_ray_logs(log_dir)
        init_kwargs.setdefault("log_to_driver", False)
    if ray.is_initialized():
        return False
    # Workers import this project's packages; ship the repo root on the path.
    project_root = str(Path(__file__).resolve().parent.parent)
    env_vars = {"PYTHONPATH": os.pathsep.join(filter(None, [project_root, os.environ.get("PYTHONPATH")]))}
    if config.address:
        secure_auth_token(create=False)
        ray.init(address=config.address, runtime_env={"env_vars": env_vars}, **init_kwargs)
        if log_dir is not None:
            route_ray_logs(log_dir)  # ray.init re-formats the `ray` logger's handlers: route after it too
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
    if log_dir is not None:
        route_ray_logs(log_dir)
    return True


def shutdown_ray(log_dir: str | Path | None = None) -> Path | None:
    """Shut down the cluster this process started; with `log_dir`, keep its session logs in `<log_dir>/ray/`."""
    session_logs = session_log_folder() if log_dir is not None else None
    ray.shutdown()
    return copy_ray_logs(session_logs, log_dir) if log_dir is not None else None


@contextmanager
def ray_runtime(config: RayConfig | None = None, log_dir: str | Path | None = None,
                **init_kwargs: Any) -> Iterator[None]:
    """Ray for the duration of a block; a cluster started here is shut down at the end."""
    started = init_ray(config, log_dir=log_dir, **init_kwargs)
    try:
        yield
    finally:
        if started:
            shutdown_ray(log_dir)
