"""`rexbert dashboard`: where to watch a run — Ray dashboard, Grafana, TensorBoard, Spark history server."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from infra.commands.common import OVERRIDES, ConfigOption, check_jobs_address, resolve_config
from infra.core import fs
from infra.core.config import RexbertConfig, resolve_run_dir
from infra.dashboards import (
    DEFAULT_PROMETHEUS_URL,
    DEFAULT_RAY_SESSION_DIR,
    check_prometheus_url,
    check_scrape_interval,
    check_target,
    write_dashboards,
)

app = typer.Typer(
    help="Dashboards for watching runs: Grafana files, TensorBoard, the local URLs.", no_args_is_help=True
)


def _checked(check: Callable[[str], str]) -> Callable[[object], object]:
    """A typer callback running one of the infra.dashboards checks (a ValueError becomes a usage error)."""

    def callback(value: object) -> object:
        try:
            if isinstance(value, list | tuple):
                return [check(item) for item in value]
            return None if value is None else check(value)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None

    return callback


@app.command("grafana")
def grafana(
    out: Path = typer.Option(Path("dashboards"), help="Folder for the dashboard, provisioning files, prometheus.yml."),
    prometheus_url: str = typer.Option(DEFAULT_PROMETHEUS_URL, callback=_checked(check_prometheus_url),
                                       help="Prometheus URL of the Grafana datasource."),
    ray_session_dir: Path = typer.Option(Path(DEFAULT_RAY_SESSION_DIR),
                                         help="Ray session folder of the head node, with Ray's service-discovery "
                                              "file (prom_metrics_service_discovery.json) Prometheus reads."),
    target: list[str] = typer.Option([], callback=_checked(check_target),
                                     help="Extra metrics endpoint (HOST:PORT) Prometheus scrapes; repeatable."),
    scrape_interval: str = typer.Option("10s", callback=_checked(check_scrape_interval),
                                        help="Prometheus scrape interval (10s, 500ms, 1m)."),
) -> None:
    """Write the Grafana dashboard (training + cluster panels), its provisioning files and a Prometheus config.

    Start Prometheus on the Ray head node with `prometheus --config.file OUT/prometheus.yml`, and Grafana with
    GF_PATHS_PROVISIONING=OUT/provisioning."""
    try:
        files = write_dashboards(out, target, prometheus_url=prometheus_url, ray_session_dir=ray_session_dir,
                                 scrape_interval=scrape_interval)
    except ValueError as err:  # the session folder is a file
        raise typer.BadParameter(str(err), param_hint="--ray-session-dir") from None
    for path in files:
        typer.echo(f"wrote {path}")


def ray_dashboard_url(config: RexbertConfig) -> str:
    """The Ray dashboard of the run's cluster: `ray.address`'s host (127.0.0.1 for a local cluster) on
    `ray.dashboard_port`, or the address itself when it is already the dashboard's http(s) URL."""
    address = config.ray.address
    if address and address.startswith(("http://", "https://")):
        return address.rstrip("/")
    host = "127.0.0.1"
    if address and address not in ("auto", "local"):
        host = address.removeprefix("ray://").rstrip("/").rsplit(":", 1)[0]
    return f"http://{host}:{config.ray.dashboard_port}"


def _absolute(uri: str) -> str:
    return uri if fs.is_remote(uri) else str(fs.local_path(uri).absolute())


@app.command("urls", context_settings=OVERRIDES)
def urls(
    ctx: typer.Context,
    config: str | None = ConfigOption,
    address: str | None = typer.Option(None, "--address", help="Ray cluster address or dashboard URL "
                                       "(default: ray.address, else the local cluster)."),
    ray_dashboard_port: int | None = typer.Option(None, help="Ray dashboard port (default: ray.dashboard_port)."),
    output: str | None = typer.Option(None, help="Run root (default: run.output)."),
    dashboards: Path = typer.Option(Path("dashboards"), help="Folder `rexbert dashboard grafana --out` wrote."),
    tensorboard_port: int = typer.Option(6006, min=1, max=65535, help="TensorBoard port on 127.0.0.1."),
    prometheus_port: int = typer.Option(9090, min=1, max=65535, help="Prometheus port on 127.0.0.1."),
    grafana_port: int = typer.Option(3000, min=1, max=65535, help="Grafana port on 127.0.0.1."),
    spark_history_port: int = typer.Option(18080, min=1, max=65535, help="Spark history server port."),
) -> None:
    """Print where each dashboard of a run lives and how to start the ones that need starting. Extra options:
    --section.key=value config overrides."""
    if address is not None:
        try:
            address = check_jobs_address(address)
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--address") from None
    cfg = resolve_config(ctx, config, **{"run.output": output, "ray.dashboard_port": ray_dashboard_port})
    if address is not None:  # a dashboard URL is no `ray.address`, so it is not set through the config
        cfg = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"address": address})})
    run_dir = shlex.quote(_absolute(resolve_run_dir(cfg.pretrain, cfg.run.output, cfg.run.name)))
    folder = dashboards.absolute()
    out, config_file, provisioning = (shlex.quote(str(path)) for path in (
        folder, folder / "prometheus.yml", folder / "provisioning"))
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"

    typer.echo(f"Ray dashboard (jobs, actors, Train/Tune/Data views): {ray_dashboard_url(cfg)}")
    typer.echo(f"TensorBoard: rexbert dashboard tensorboard --logdir {run_dir} --port {tensorboard_port}"
               f"  (http://127.0.0.1:{tensorboard_port})")
    typer.echo(f"Prometheus: rexbert dashboard grafana --out {out} --prometheus-url {prometheus_url}, then "
               f"prometheus --config.file {config_file} "
               f"--web.listen-address 127.0.0.1:{prometheus_port}  ({prometheus_url})")
    typer.echo(f"Grafana: GF_PATHS_PROVISIONING={provisioning} GF_SERVER_HTTP_ADDR=127.0.0.1 "
               f"GF_SERVER_HTTP_PORT={grafana_port} grafana-server  (http://127.0.0.1:{grafana_port})")
    events = cfg.spark.event_logs_for(cfg.run.output)
    if events is None:
        typer.echo("Spark history server: no event log folder (set spark.event_log_dir)")
    else:
        log_dir = events if fs.is_remote(events) else Path(events).as_uri()
        typer.echo(f"Spark history server: SPARK_HISTORY_OPTS='-Dspark.history.fs.logDirectory={log_dir} "
                   f"-Dspark.history.ui.port={spark_history_port}' $SPARK_HOME/sbin/start-history-server.sh"
                   f"  (http://127.0.0.1:{spark_history_port})")


@app.command("tensorboard")
def tensorboard(
    # A `str`, not a `Path`: a Path would fold `s3://bucket/runs` into `s3:/bucket/runs`.
    logdir: str = typer.Option("demo-output/runs", help="Folder (or s3://, gs:// URI) with TensorBoard event files."),
    port: int = typer.Option(6006, help="Port on 127.0.0.1."),
) -> None:
    """Start TensorBoard on 127.0.0.1 over the pretraining logs (Ctrl-C stops it)."""
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        logdir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    raise typer.Exit(subprocess.call(cmd))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dashboard")
