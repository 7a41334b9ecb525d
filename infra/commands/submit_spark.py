"""`rexbert submit spark`: a corpus Spark job through spark-submit, on any cluster this machine can reach."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from infra.core.config import redact


def submit_spark(
    job: str = typer.Argument(..., help="Spark job: build, extract, filter, dedup, train-classifier."),
    job_args: list[str] = typer.Argument(None, help="Arguments of the job, after `--` (--input ... --output ...)."),
    master: str = typer.Option(..., help="Master URL: spark://HOST:7077, yarn, k8s://https://HOST:443, local[N]."),
    deploy_mode: str = typer.Option("client", help="client (driver here) or cluster (driver on the cluster)."),
    env_archive: str | None = typer.Option(
        None, help="The executors' Python as a venv-pack / conda-pack archive (default: built from pyproject.toml's "
        "pins with venv-pack, cached by content)."),
    no_env: bool = typer.Option(False, "--no-env", help="Ship no environment: the nodes have the libraries."),
    conf: list[str] = typer.Option([], help="Spark properties key=value."),
    executor_memory: str | None = typer.Option(None, help="--executor-memory, e.g. 2g."),
    executor_cores: int | None = typer.Option(None, help="--executor-cores."),
    total_executor_cores: int | None = typer.Option(None, help="--total-executor-cores (standalone)."),
    event_log_dir: str | None = typer.Option(None, help="Event logs for the history server (folder or URI)."),
    log_file: str | None = typer.Option(None, help="spark-submit's log (default: logs/spark-submit-JOB-TIME.log)."),
    dry_run: bool = typer.Option(False, help="Print the spark-submit command instead of running it."),
) -> None:
    """Run a corpus job on a Spark cluster, e.g.
    `rexbert submit spark --master spark://head:7077 build -- --input crawl/ --output out/`."""
    from infra.cloud.spark_submit import build_spark_submission, code_zip, run_spark_submission, ui_links
    from infra.commands.submit import _env_archive, _parse_conf

    archive = _env_archive(env_archive, no_env, needed=True, dry_run=dry_run)
    try:
        submission = build_spark_submission(
            job, job_args or [], master, code_zip(), archive, deploy_mode=deploy_mode, conf=_parse_conf(conf),
            executor_memory=executor_memory, executor_cores=executor_cores,
            total_executor_cores=total_executor_cores, event_log_dir=event_log_dir,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    printable = redact({"line": submission.shell_line()})["line"]
    if dry_run:
        typer.echo(printable)
        return
    log = Path(log_file or f"logs/spark-submit-{job}-{time.strftime('%Y%m%d-%H%M%S')}.log")
    typer.echo(f"spark-submit ({master}, {deploy_mode} mode); Spark's log: {log}")
    for link in ui_links(master, event_log_dir):
        typer.echo(f"  {link}")
    status = run_spark_submission(submission, log)
    if status != 0:
        typer.echo(f"spark-submit failed (exit {status}); the full log is {log}", err=True)
        raise typer.Exit(status)
