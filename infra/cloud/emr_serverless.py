"""Run the Spark jobs on EMR Serverless: upload the files to S3 and start a job run on an application.

The request is boto3's `emr-serverless` `StartJobRun` (a `sparkSubmit` job driver), checked against
botocore's service model when built; tests run it against moto. Its `aws emr-serverless start-job-run`
line, derived from the request, is what `--dry-run` prints.

The executors' Python libraries come from the packed environment, unpacked as ./environment on the driver
and every executor (`spark.archives=URI#environment`, the PYSPARK_PYTHON variables below, AWS's documented
way for a Python virtual environment), or from the application's own custom image (`--no-env`).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from infra.cloud.cli_lines import aws_argv, s3_upload_argv, shell_line
from infra.cloud.cloud_jobs import (
    ENV_PYTHON,
    Action,
    CloudSubmission,
    event_log_dir_of,
    event_log_properties,
    merged_properties,
    stage_env_archive,
    stage_job,
    validate_boto_request,
)
from infra.cloud.emr import split_s3
from infra.cloud.packaging import join_uri
from infra.core.config import redact

SERVICE = "emr-serverless"


def env_archive_conf(archive_uri: str) -> dict[str, str]:
    return {
        "spark.archives": archive_uri,
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": ENV_PYTHON,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": ENV_PYTHON,
        "spark.executorEnv.PYSPARK_PYTHON": ENV_PYTHON,
    }


def application_url(region: str, application_id: str) -> str:
    """The application's page in the console: its job runs, each with its Spark UI and logs."""
    return f"https://{region}.console.aws.amazon.com/emr/home?region={region}#/serverless-applications/{application_id}"


def _redacted(request: dict[str, Any]) -> dict[str, Any]:
    """A copy for printing: credentials redacted in the job driver and the overrides (not the client token)."""
    copy = json.loads(json.dumps(request))
    for key in ("jobDriver", "configurationOverrides"):
        if key in copy:
            copy[key] = redact(copy[key])
    return copy


def build_emr_serverless_submission(
    job: str,
    job_args: list[str],
    staging: str,
    application_id: str,
    execution_role_arn: str,
    work_dir: str | Path,
    region: str,
    spark_conf: dict[str, str] | None = None,
    name: str = "rexbert",
    env_archive: str | Path | None = None,
    event_log_dir: str | None = None,
) -> CloudSubmission:
    """Build (not send) the uploads and the StartJobRun request for `spark_jobs/<job>.py`."""
    split_s3(staging)
    if not application_id or not execution_role_arn:
        raise ValueError("EMR Serverless needs --application-id and --execution-role-arn")
    staged = stage_job(job, job_args, staging, work_dir)
    uploads = dict(staged.uploads)
    archive = stage_env_archive(env_archive, staging, uploads)
    log_dir = event_log_dir_of(event_log_dir, staged.config_path)
    conf = merged_properties(env_archive_conf(archive) if archive else {}, event_log_properties(log_dir),
                             spark_conf or {})
    spaced = [key for key, value in conf.items() if not value or any(c.isspace() for c in value)]
    if spaced:  # sparkSubmitParameters is one string, split at whitespace
        raise ValueError(f"EMR Serverless takes no empty or whitespace-holding Spark property values: {spaced}")
    parameters = ["--py-files", staged.py_files_uri]
    for key, value in conf.items():
        parameters += ["--conf", f"{key}={value}"]
    spark_submit: dict[str, Any] = {"entryPoint": staged.main_uri, "sparkSubmitParameters": " ".join(parameters)}
    if staged.args:
        spark_submit["entryPointArguments"] = staged.args
    request = {
        "applicationId": application_id,
        "clientToken": uuid.uuid4().hex,
        "executionRoleArn": execution_role_arn,
        "name": f"{name}-{job}",
        "jobDriver": {"sparkSubmit": spark_submit},
        "configurationOverrides": {
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": join_uri(staging, "logs/")}}
        },
        "tags": {"app": "rexbert", "job": job},
    }
    validate_boto_request(SERVICE, "StartJobRun", request)
    action = Action.of("start_job_run", request, lambda r: aws_argv(SERVICE, "StartJobRun", r, region), _redacted)
    dashboard = aws_argv(SERVICE, "GetDashboardForJobRun", {"applicationId": application_id,
                                                             "jobRunId": "JOB_RUN_ID"}, region)
    links = {"EMR Serverless application": application_url(region, application_id),
             "Spark UI of the run": shell_line(dashboard)}
    return CloudSubmission(uploads, [action], s3_upload_argv, links)


def send_emr_serverless_submission(submission: CloudSubmission, region: str, session: Any = None) -> dict[str, Any]:
    """Upload the files and start the run; returns its application id and job run id."""
    import boto3

    from infra.cloud.emr import upload_to_s3

    session = session or boto3.session.Session(region_name=region)
    upload_to_s3(submission.uploads, session)
    request = submission.actions[0].request
    response = session.client(SERVICE, region_name=region).start_job_run(**request)
    return {"application_id": response["applicationId"], "job_run_id": response["jobRunId"]}


def dashboard_url(application_id: str, job_run_id: str, region: str, session: Any = None) -> str | None:
    """The run's live Spark UI (or history server once done); None where the service gives none."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = session or boto3.session.Session(region_name=region)
    try:
        return session.client(SERVICE, region_name=region).get_dashboard_for_job_run(
            applicationId=application_id, jobRunId=job_run_id)["url"]
    except (ClientError, BotoCoreError, NotImplementedError):
        return None


def get_job_run_argv(application_id: str, job_run_id: str, region: str) -> list[str]:
    return aws_argv(SERVICE, "GetJobRun", {"applicationId": application_id, "jobRunId": job_run_id}, region)


def get_job_run(application_id: str, job_run_id: str, region: str, session: Any = None) -> dict[str, Any]:
    import boto3

    session = session or boto3.session.Session(region_name=region)
    request = {"applicationId": application_id, "jobRunId": job_run_id}
    validate_boto_request(SERVICE, "GetJobRun", request)
    return session.client(SERVICE, region_name=region).get_job_run(**request)["jobRun"]


def driver_log_uri(job_run: dict[str, Any]) -> str | None:
    """Where the run's driver stdout/stderr land: `<logUri>/applications/<app>/jobs/<run>/SPARK_DRIVER/`."""
    monitoring = job_run.get("configurationOverrides", {}).get("monitoringConfiguration", {})
    log_uri = monitoring.get("s3MonitoringConfiguration", {}).get("logUri")
    if not log_uri:
        return None
    return join_uri(log_uri, f"applications/{job_run['applicationId']}/jobs/{job_run['jobRunId']}/SPARK_DRIVER/")
