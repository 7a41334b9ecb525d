"""`rexbert jobs`: list, inspect, follow and stop Ray jobs on a cluster (token auth on)."""

from __future__ import annotations

import typer

from infra.commands.common import check_jobs_address

app = typer.Typer(help="Watch and manage Ray jobs on a cluster.", no_args_is_help=True)
ADDRESS = typer.Option("http://127.0.0.1:8265", help="Ray dashboard / Jobs API address.")


@app.command("list")
def list_jobs(address: str = ADDRESS) -> None:
    """One line per job: id, status, entrypoint."""
    from infra.cloud.ray_submit import job_client

    for job in job_client(check_jobs_address(address)).list_jobs():
        typer.echo(f"{job.submission_id or job.job_id}\t{job.status}\t{job.entrypoint}")


@app.command("status")
def job_status(job_id: str, address: str = ADDRESS) -> None:
    from infra.cloud.ray_submit import job_client

    info = job_client(check_jobs_address(address)).get_job_info(job_id)
    typer.echo(f"{job_id}\t{info.status}\t{info.message or ''}")


@app.command("logs")
def job_logs(job_id: str, address: str = ADDRESS) -> None:
    from infra.cloud.ray_submit import job_client

    typer.echo(job_client(check_jobs_address(address)).get_job_logs(job_id))


@app.command("stop")
def stop_job(job_id: str, address: str = ADDRESS) -> None:
    from infra.cloud.ray_submit import job_client

    stopped = job_client(check_jobs_address(address)).stop_job(job_id)
    typer.echo(f"{job_id}: {'stop requested' if stopped else 'already finished'}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="jobs")
