"""`rexbert jobs`: list, inspect, follow and stop jobs. Ray jobs on a cluster (token auth on) by default; with
`--on`, the status and logs of the Spark jobs `rexbert submit` sent to EMR, EMR Serverless or Dataproc.

    rexbert jobs logs raysubmit_abc --follow --address http://head:8265
    rexbert jobs status s-ABC --on emr --cluster-id j-XYZ
    rexbert jobs logs 00f1abc --on emr-serverless --application-id 00abc
    rexbert jobs status rexbert-dedup-... --on dataproc --project P --region R --dry-run
"""

from __future__ import annotations

import typer

from infra.commands.common import check_jobs_address

app = typer.Typer(help="Watch and manage Ray jobs, and Spark jobs on EMR and Dataproc.", no_args_is_help=True)
ADDRESS = typer.Option("http://127.0.0.1:8265", help="Ray dashboard / Jobs API address.")
PLACES = ("ray", "emr", "emr-serverless", "dataproc", "dataproc-batch")
ON = typer.Option("ray", "--on", help=f"Where the job runs: {', '.join(PLACES)}.")
CLUSTER_ID = typer.Option(None, help="EMR cluster of the step (--on emr).")
APPLICATION_ID = typer.Option(None, help="EMR Serverless application of the run (--on emr-serverless).")
PROJECT = typer.Option(None, help="GCP project (--on dataproc*; default: $GOOGLE_CLOUD_PROJECT, gcloud config).")
REGION = typer.Option(None, help="Region (default: $AWS_REGION / boto3's; $CLOUDSDK_DATAPROC_REGION / gcloud's).")
DRY_RUN = typer.Option(False, help="Print the gcloud / aws command line instead of calling the API (not for ray).")


@app.command("list")
def list_jobs(address: str = ADDRESS) -> None:
    """One line per Ray job: id, status, entrypoint."""
    from infra.cloud.ray_submit import job_client

    for job in job_client(check_jobs_address(address)).list_jobs():
        typer.echo(f"{job.submission_id or job.job_id}\t{job.status}\t{job.entrypoint}")


@app.command("status")
def job_status(job_id: str, address: str = ADDRESS, on: str = ON, cluster_id: str | None = CLUSTER_ID,
               application_id: str | None = APPLICATION_ID, project: str | None = PROJECT,
               region: str | None = REGION, dry_run: bool = DRY_RUN) -> None:
    """One line: id, state, message (an EMR step id, an EMR Serverless job run id, a Dataproc job or batch id)."""
    if _check_on(on) == "ray":
        from infra.cloud.ray_submit import job_client

        info = job_client(check_jobs_address(address)).get_job_info(job_id)
        typer.echo(f"{job_id}\t{info.status}\t{info.message or ''}")
        return
    _cloud(on, job_id, False, cluster_id, application_id, project, region, dry_run)


@app.command("logs")
def job_logs(job_id: str, address: str = ADDRESS, on: str = ON, cluster_id: str | None = CLUSTER_ID,
             application_id: str | None = APPLICATION_ID, project: str | None = PROJECT,
             region: str | None = REGION, dry_run: bool = DRY_RUN,
             follow: bool = typer.Option(
                 False, "--follow", "-f", help="Ray: stream the logs until the job ends, then exit non-zero if it "
                 "did not succeed (Ctrl-C stops following, not the job).")) -> None:
    """A Ray job's logs; for a cloud job, where its logs live and (EMR, EMR Serverless) the driver's output."""
    if _check_on(on) == "ray":
        if follow:
            return follow_ray(job_id, check_jobs_address(address))
        from infra.cloud.ray_submit import job_client

        typer.echo(job_client(check_jobs_address(address)).get_job_logs(job_id))
        return
    if follow:
        raise typer.BadParameter(f"--follow streams Ray jobs only (--on ray); drop it for --on {on}",
                                 param_hint="--follow")
    _cloud(on, job_id, True, cluster_id, application_id, project, region, dry_run)


def follow_ray(job_id: str, address: str) -> None:
    """Stream a Ray job's logs until it ends, then its status line; exit 1 unless it succeeded (`jobs logs
    --follow`, `submit ray --wait`)."""
    from infra.cloud.ray_submit import follow_job, interrupted_line, status_line

    try:
        info = follow_job(job_id, address, write=lambda chunk: typer.echo(chunk, nl=False))
    except KeyboardInterrupt:
        typer.echo(interrupted_line(job_id, address), err=True)
        raise typer.Exit(130) from None
    except RuntimeError as err:  # the Jobs API's answer, e.g. status code 404: the job does not exist
        raise ValueError(f"cannot follow job {job_id}: {err}") from None
    line = status_line(job_id, info)
    if str(info.status.value) != "SUCCEEDED":
        typer.echo(line, err=True)
        raise typer.Exit(1)
    typer.echo(line)


@app.command("stop")
def stop_job(job_id: str, address: str = ADDRESS) -> None:
    """Stop a Ray job."""
    from infra.cloud.ray_submit import job_client

    stopped = job_client(check_jobs_address(address)).stop_job(job_id)
    typer.echo(f"{job_id}: {'stop requested' if stopped else 'already finished'}")


def _check_on(on: str) -> str:
    if on not in PLACES:
        raise typer.BadParameter(f"--on takes one of {', '.join(PLACES)}, got {on!r}")
    return on


def _cloud(on: str, job_id: str, logs: bool, cluster_id: str | None, application_id: str | None,
           project: str | None, region: str | None, dry_run: bool) -> None:
    if on == "emr":
        _emr(job_id, logs, cluster_id, region, dry_run)
    elif on == "emr-serverless":
        _emr_serverless(job_id, logs, application_id, region, dry_run)
    else:
        _dataproc(job_id, logs, on == "dataproc-batch", project, region, dry_run)


def _echo_logs(folder: str | None, found: dict[str, str]) -> None:
    typer.echo(f"logs: {folder or '(no S3 log location set)'}")
    for name, text in found.items():
        typer.echo(f"--- {name}")
        typer.echo(text.rstrip("\n"))
    if folder and not found:
        typer.echo("(no log file there yet: EMR copies logs to S3 a few minutes after they are written)")


def _emr(step_id: str, logs: bool, cluster_id: str | None, region: str | None, dry_run: bool) -> None:
    from infra.cloud.cli_lines import comment, shell_line
    from infra.cloud.emr import (
        cluster_url,
        describe_step_argv,
        fetch_logs,
        resolve_aws_region,
        step_log_uri,
        step_status,
    )

    if not cluster_id:
        raise typer.BadParameter("--on emr needs --cluster-id (the step's cluster, j-...)")
    region = resolve_aws_region(region)
    if dry_run:
        typer.echo(shell_line(describe_step_argv(cluster_id, step_id, region)))
        if logs:
            typer.echo(comment("step logs", f"<the cluster's LogUri>/{cluster_id}/steps/{step_id}/"))
        typer.echo(comment("EMR cluster", cluster_url(region, cluster_id)))
        return
    if not logs:
        state, reason = step_status(cluster_id, step_id, region)
        typer.echo(f"{step_id}\t{state}\t{reason}")
        return
    folder = step_log_uri(cluster_id, step_id, region)
    _echo_logs(folder, fetch_logs(folder, region) if folder else {})
    typer.echo(f"EMR cluster: {cluster_url(region, cluster_id)}")


def _emr_serverless(run_id: str, logs: bool, application_id: str | None, region: str | None, dry_run: bool) -> None:
    from infra.cloud.cli_lines import comment, shell_line
    from infra.cloud.emr import fetch_logs, resolve_aws_region
    from infra.cloud.emr_serverless import application_url, driver_log_uri, get_job_run, get_job_run_argv

    if not application_id:
        raise typer.BadParameter("--on emr-serverless needs --application-id")
    region = resolve_aws_region(region)
    if dry_run:
        typer.echo(shell_line(get_job_run_argv(application_id, run_id, region)))
        typer.echo(comment("EMR Serverless application", application_url(region, application_id)))
        return
    run = get_job_run(application_id, run_id, region)
    if not logs:
        typer.echo(f"{run_id}\t{run['state']}\t{run.get('stateDetails', '')}")
        return
    folder = driver_log_uri(run)
    _echo_logs(folder, fetch_logs(folder, region) if folder else {})
    typer.echo(f"EMR Serverless application: {application_url(region, application_id)}")


def _dataproc(job_id: str, logs: bool, batch: bool, project: str | None, region: str | None, dry_run: bool) -> None:
    """Dataproc through its API (the driver's output: `gcloud dataproc jobs|batches wait`, printed here)."""
    from infra.cloud import dataproc
    from infra.cloud.cli_lines import comment, shell_line

    project, region = dataproc.resolve_project(project), dataproc.resolve_region(region)
    if batch:
        request = dataproc.get_batch_request(project, region, job_id)
        argv, url = dataproc.batch_status_argv(request, logs), dataproc.batch_url(project, region, job_id)
    else:
        request = dataproc.get_job_request(project, region, job_id)
        argv, url = dataproc.job_status_argv(request, logs), dataproc.job_url(project, region, job_id)
    if dry_run:
        typer.echo(shell_line(argv))
        typer.echo(comment("Dataproc batch" if batch else "Dataproc job", url))
        return
    if batch:
        found = dataproc.get_batch(request)
        state, message, output = found.state.name, found.state_message, found.runtime_info.output_uri
    else:
        found = dataproc.get_job(request)
        state, message, output = found.status.state.name, found.status.details, found.driver_output_resource_uri
    if not logs:
        typer.echo(f"{job_id}\t{state}\t{message}")
        return
    typer.echo(f"driver output: {output}")
    typer.echo(f"follow it with: {shell_line(argv)}")
    typer.echo(f"console: {url}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="jobs")
