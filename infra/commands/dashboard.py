"""`rexbert dashboard`: where to watch a run — Ray dashboard, Grafana, TensorBoard, Spark history server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

app = typer.Typer(
    help="Dashboards for watching runs: Grafana files, TensorBoard, the local URLs.", no_args_is_help=True
)


@app.command("grafana")
def grafana(
    out: Path = typer.Option(Path("dashboards"), help="Folder for the dashboard JSON and configs."),
    target: list[str] = typer.Option(["127.0.0.1:8080"], help="Ray metrics endpoints Prometheus scrapes."),
) -> None:
    """Write the Grafana dashboard (training + cluster panels) and a Prometheus scrape config."""
    from infra.dashboards import write_dashboards

    for path in write_dashboards(out, target):
        typer.echo(f"wrote {path}")


@app.command("urls")
def urls(
    ray_dashboard_port: int = typer.Option(8265, help="Ray dashboard port."),
    output: Path = typer.Option(Path("demo-output"), help="Run root (for TensorBoard and Spark event logs)."),
) -> None:
    """Print where each dashboard of a local run lives and how to start the ones that need starting."""
    typer.echo(f"Ray dashboard (jobs, actors, Train/Tune/Data views): http://127.0.0.1:{ray_dashboard_port}")
    typer.echo(f"TensorBoard: rexbert dashboard tensorboard --logdir {output / 'runs'}")
    events = output / "spark-events"
    typer.echo(
        "Spark history server: SPARK_HISTORY_OPTS=-Dspark.history.fs.logDirectory="
        f"{events.resolve().as_uri()} $SPARK_HOME/sbin/start-history-server.sh  (http://127.0.0.1:18080)"
    )
    typer.echo("Grafana: rexbert dashboard grafana --out dashboards, then point Grafana provisioning at it")


@app.command("tensorboard")
def tensorboard(
    logdir: Path = typer.Option(Path("demo-output/runs"), help="Folder with TensorBoard event files."),
    port: int = typer.Option(6006, help="Port on 127.0.0.1."),
) -> None:
    """Start TensorBoard on 127.0.0.1 over the pretraining logs (Ctrl-C stops it)."""
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    raise typer.Exit(subprocess.call(cmd))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dashboard")
