"""Run the Spark jobs on Amazon EMR: upload the files to S3, add a `spark-submit` step, optionally create the
cluster from infra/configs/emr-cluster.json.

The requests are the real boto3 ones (`RunJobFlow`, `AddJobFlowSteps`), checked against botocore's service
model when built; tests run them against moto. Each comes with its `aws emr ...` command line, derived from
the request, which `--dry-run` prints.

The executors' Python libraries come from the packed environment (`--archives URI#environment`, run in YARN
cluster mode so the driver sees it too), or, on a cluster created here, from the bootstrap action
(infra/configs/emr-bootstrap.sh), which pip-installs the requirements file uploaded with it: the pins of
`spark_executor_requirements()`. The region is `--region`, else boto3's own resolution (AWS_REGION,
AWS_DEFAULT_REGION, ~/.aws/config).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

from infra.cloud.cli_lines import aws_argv, json_arg, s3_upload_argv
from infra.cloud.cloud_jobs import (
    Action,
    CloudSubmission,
    env_archive_properties,
    event_log_dir_of,
    event_log_properties,
    merged_properties,
    stage_env_archive,
    stage_job,
    validate_boto_request,
    write_requirements,
)
from infra.cloud.packaging import join_uri
from infra.core.config import redact
from infra.core.paths import PROJECT_ROOT

CONFIGS = PROJECT_ROOT / "infra" / "configs"
EMR_CLUSTER_TEMPLATE = CONFIGS / "emr-cluster.json"
EMR_BOOTSTRAP_SCRIPT = CONFIGS / "emr-bootstrap.sh"


def resolve_aws_region(region: str | None, session: Any = None) -> str:
    """`--region`, else $AWS_REGION (what the AWS SDKs read first), else boto3's own resolution
    ($AWS_DEFAULT_REGION, the profile's region in ~/.aws/config)."""
    import boto3

    found = region or os.environ.get("AWS_REGION") or (session or boto3.session.Session()).region_name
    if not found:
        raise ValueError("no AWS region: pass --region, set AWS_REGION, or run `aws configure set region REGION`")
    return found


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or not uri[len("s3://"):].strip("/"):
        raise ValueError(f"staging location must be an s3:// URI, got {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def cluster_url(region: str, cluster_id: str | None = None) -> str:
    """The cluster's console page (steps, and the Spark history server under Applications); the list without id."""
    page = f"clusterDetails/{cluster_id}" if cluster_id else "clusters"
    return f"https://{region}.console.aws.amazon.com/emr/home?region={region}#/{page}"


def _redacted(request: dict[str, Any]) -> dict[str, Any]:
    """A copy for printing, credentials redacted where they can stand: step arguments and Spark properties
    (not the whole request: `redact` would take a tag's `Key` for the name of a secret)."""
    copy = json.loads(json.dumps(request))
    for step in copy.get("Steps", []):
        step["HadoopJarStep"]["Args"] = redact(step["HadoopJarStep"]["Args"])
    for configuration in copy.get("Configurations", []):
        configuration["Properties"] = redact(configuration.get("Properties", {}))
    return copy


def build_emr_submission(
    job: str,
    job_args: list[str],
    staging: str,
    cluster_id: str | None,
    work_dir: str | Path,
    region: str,
    spark_conf: dict[str, str] | None = None,
    create_cluster: bool = False,
    name: str = "rexbert",
    env_archive: str | Path | None = None,
    event_log_dir: str | None = None,
) -> CloudSubmission:
    """Build (not send) the uploads and the step for `spark_jobs/<job>.py`: an AddJobFlowSteps request on
    `cluster_id`, or with `create_cluster` a RunJobFlow request that creates the cluster and runs the step."""
    split_s3(staging)
    if (cluster_id is None) == (not create_cluster):
        raise ValueError("give either --cluster-id of a running cluster or --create-cluster")
    staged = stage_job(job, job_args, staging, work_dir)
    uploads = dict(staged.uploads)
    archive = stage_env_archive(env_archive, staging, uploads)
    log_dir = event_log_dir_of(event_log_dir, staged.config_path)
    conf = merged_properties(env_archive_properties() if archive else {}, event_log_properties(log_dir),
                             spark_conf or {})
    submit = ["spark-submit", "--deploy-mode", "cluster", "--py-files", staged.py_files_uri]
    submit += ["--archives", archive] if archive else []
    for key, value in conf.items():
        submit += ["--conf", f"{key}={value}"]
    step = {
        "Name": f"{name}-{job}",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": [*submit, staged.main_uri, *staged.args]},
    }
    if not create_cluster:
        request = {"JobFlowId": cluster_id, "Steps": [step]}
        validate_boto_request("emr", "AddJobFlowSteps", request)
        action = Action.of("add_job_flow_steps", request, lambda r: add_steps_argv(r, region), _redacted)
        return CloudSubmission(uploads, [action], s3_upload_argv, {"EMR cluster": cluster_url(region, cluster_id)})

    bootstrap_uri = join_uri(staging, f"bootstrap/{EMR_BOOTSTRAP_SCRIPT.name}")
    requirements = write_requirements(work_dir)
    uploads[str(EMR_BOOTSTRAP_SCRIPT)] = bootstrap_uri
    uploads[str(requirements)] = join_uri(staging, f"bootstrap/{requirements.name}")
    request = build_cluster_request(name, join_uri(staging, "logs/"), bootstrap_uri,
                                    uploads[str(requirements)], log_dir)
    request["Steps"] = [step]
    validate_boto_request("emr", "RunJobFlow", request)
    action = Action.of("run_job_flow", request, lambda r: create_cluster_argv(r, region), _redacted)
    return CloudSubmission(uploads, [action], s3_upload_argv, {"EMR clusters": cluster_url(region)})


def build_cluster_request(name: str, log_uri: str, bootstrap_uri: str, requirements_uri: str,
                          event_log_dir: str | None = None) -> dict[str, Any]:
    """The cluster template, filled: name, log folder, the bootstrap action (with the uploaded requirements
    file as its argument), and the history server's event log folder when one is given."""
    request = json.loads(EMR_CLUSTER_TEMPLATE.read_text())
    request["Name"] = name
    request["LogUri"] = log_uri
    request["BootstrapActions"] = [{
        "Name": "install-rexbert-dependencies",
        "ScriptBootstrapAction": {"Path": bootstrap_uri, "Args": [requirements_uri]},
    }]
    if event_log_dir is not None:
        defaults = next(c for c in request["Configurations"] if c["Classification"] == "spark-defaults")
        defaults["Properties"].update(event_log_properties(event_log_dir))
        defaults["Properties"]["spark.history.fs.logDirectory"] = event_log_dir
    return request


# --- command lines ------------------------------------------------------------------------------------------------


def cli_step(step: dict[str, Any]) -> dict[str, Any]:
    """A step as `aws emr add-steps --steps` / `create-cluster --steps` take it (a CUSTOM_JAR step)."""
    jar_step = step["HadoopJarStep"]
    return {"Type": "CUSTOM_JAR", "Name": step["Name"], "ActionOnFailure": step["ActionOnFailure"],
            "Jar": jar_step["Jar"], "Args": jar_step["Args"]}


def add_steps_argv(request: dict[str, Any], region: str) -> list[str]:
    return ["aws", "emr", "add-steps", "--cluster-id", request["JobFlowId"],
            "--steps", json_arg([cli_step(s) for s in request["Steps"]]), "--region", region]


# RunJobFlow fields that `aws emr create-cluster` spells as one flag with the same value.
_SAME_VALUE_FLAGS = {"Name": "--name", "ReleaseLabel": "--release-label", "LogUri": "--log-uri",
                     "ServiceRole": "--service-role"}
_JSON_FLAGS = {"Applications": "--applications", "Configurations": "--configurations"}


def create_cluster_argv(request: dict[str, Any], region: str) -> list[str]:
    """`aws emr create-cluster ...` for a RunJobFlow request; a field without a mapping here is an error, so
    a template change cannot silently drop out of the printed command."""
    argv = ["aws", "emr", "create-cluster"]
    for key, value in request.items():
        if key in _SAME_VALUE_FLAGS:
            argv += [_SAME_VALUE_FLAGS[key], value]
        elif key in _JSON_FLAGS:
            argv += [_JSON_FLAGS[key], json_arg(value)]
        elif key == "Instances":
            argv += _instances_flags(value)
        elif key == "BootstrapActions":
            actions = [{"Name": a["Name"], "Path": a["ScriptBootstrapAction"]["Path"],
                        "Args": a["ScriptBootstrapAction"].get("Args", [])} for a in value]
            argv += ["--bootstrap-actions", json_arg(actions)]
        elif key == "Steps":
            argv += ["--steps", json_arg([cli_step(s) for s in value])]
        elif key == "JobFlowRole":
            argv += ["--ec2-attributes", json_arg({"InstanceProfile": value})]
        elif key == "VisibleToAllUsers":
            argv += ["--visible-to-all-users" if value else "--no-visible-to-all-users"]
        elif key == "Tags":
            argv += ["--tags", *(f"{t['Key']}={t['Value']}" for t in value)]
        else:
            raise ValueError(f"RunJobFlow field {key!r} has no `aws emr create-cluster` flag here")
    return argv + ["--region", region]


def _instances_flags(instances: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in instances.items():
        if key == "InstanceGroups":
            groups = []
            for group in value:
                cli_group = {"Name": group["Name"], "InstanceGroupType": group["InstanceRole"],
                             "InstanceType": group["InstanceType"], "InstanceCount": group["InstanceCount"]}
                if group.get("Market") == "SPOT":  # the CLI's spelling of a Spot group at the on-demand cap
                    cli_group["BidPrice"] = group.get("BidPrice", "OnDemandPrice")
                groups.append(cli_group)
            flags += ["--instance-groups", json_arg(groups)]
        elif key == "KeepJobFlowAliveWhenNoSteps":
            flags.append("--no-auto-terminate" if value else "--auto-terminate")
        elif key == "TerminationProtected":
            flags.append("--termination-protected" if value else "--no-termination-protected")
        else:
            raise ValueError(f"RunJobFlow field Instances.{key} has no `aws emr create-cluster` flag here")
    return flags


# --- sending, status, logs ----------------------------------------------------------------------------------------


def upload_to_s3(uploads: dict[str, str], session: Any) -> None:
    s3 = session.client("s3")
    for local, uri in uploads.items():
        bucket, key = split_s3(uri)
        s3.upload_file(local, bucket, key)


def send_emr_submission(submission: CloudSubmission, region: str, session: Any = None) -> dict[str, Any]:
    """Upload the files and submit; returns the cluster id and the step ids."""
    import boto3

    session = session or boto3.session.Session(region_name=region)
    upload_to_s3(submission.uploads, session)
    emr = session.client("emr", region_name=region)
    action = submission.actions[0]
    if action.name == "run_job_flow":
        cluster_id = emr.run_job_flow(**action.request)["JobFlowId"]
        step_ids = [s["Id"] for s in emr.list_steps(ClusterId=cluster_id)["Steps"]]
        return {"cluster_id": cluster_id, "step_ids": step_ids}
    response = emr.add_job_flow_steps(**action.request)
    return {"cluster_id": action.request["JobFlowId"], "step_ids": response["StepIds"]}


def describe_step_argv(cluster_id: str, step_id: str, region: str) -> list[str]:
    return aws_argv("emr", "DescribeStep", {"ClusterId": cluster_id, "StepId": step_id}, region)


def step_status(cluster_id: str, step_id: str, region: str, session: Any = None) -> tuple[str, str]:
    """(state, reason) of a step: PENDING, RUNNING, COMPLETED, FAILED (with its reason), ..."""
    import boto3

    session = session or boto3.session.Session(region_name=region)
    request = {"ClusterId": cluster_id, "StepId": step_id}
    validate_boto_request("emr", "DescribeStep", request)
    status = session.client("emr", region_name=region).describe_step(**request)["Step"]["Status"]
    reason = status.get("FailureDetails", {}).get("Message") or status.get("StateChangeReason", {}).get("Message")
    return status["State"], reason or ""


def step_log_uri(cluster_id: str, step_id: str, region: str, session: Any = None) -> str | None:
    """Where EMR writes the step's stdout/stderr: `<cluster LogUri>/<cluster id>/steps/<step id>/`."""
    import boto3

    session = session or boto3.session.Session(region_name=region)
    log_uri = session.client("emr", region_name=region).describe_cluster(ClusterId=cluster_id)["Cluster"].get(
        "LogUri")
    if not log_uri:
        return None
    return join_uri(log_uri.replace("s3n://", "s3://"), f"{cluster_id}/steps/{step_id}/")


def fetch_logs(folder: str, region: str, session: Any = None) -> dict[str, str]:
    """The log files found under `folder` (stdout, stderr, and a step's controller), unzipped; {} before EMR
    wrote them (it copies logs to S3 a few minutes after they change)."""
    import boto3
    from botocore.exceptions import ClientError

    session = session or boto3.session.Session(region_name=region)
    s3 = session.client("s3")
    bucket, prefix = split_s3(folder)
    found = {}
    for name in ("stdout", "stderr", "controller"):
        for key in (f"{prefix}{name}.gz", f"{prefix}{name}"):
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError:
                continue
            found[name] = (gzip.decompress(body) if key.endswith(".gz") else body).decode(errors="replace")
            break
    return found
