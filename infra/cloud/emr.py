"""Run the Spark jobs on Amazon EMR: upload the code to S3, add a `spark-submit` step, optionally create the cluster.

The requests are the real boto3 ones (`RunJobFlow`, `AddJobFlowSteps`); tests run them against moto.
`--dry-run` prints them instead of sending.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.cloud.packaging import build_py_files_zip, join_uri, spark_main_file
from infra.core.paths import PROJECT_ROOT

EMR_CLUSTER_TEMPLATE = PROJECT_ROOT / "infra" / "configs" / "emr-cluster.json"


@dataclass
class EmrSubmission:
    """Everything one EMR step needs: uploads (local file -> s3 uri) and the AddJobFlowSteps request."""

    uploads: dict[str, str]
    request: dict[str, Any]
    create_cluster: dict[str, Any] | None = field(default=None)

    def to_json(self) -> str:
        return json.dumps(
            {"uploads": self.uploads, "run_job_flow": self.create_cluster, "add_job_flow_steps": self.request},
            indent=2,
        )


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"staging location must be an s3:// URI, got {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def build_emr_submission(
    job: str,
    job_args: list[str],
    staging: str,
    cluster_id: str | None,
    work_dir: str | Path,
    spark_conf: dict[str, str] | None = None,
    create_cluster: bool = False,
    name: str = "rexbert",
) -> EmrSubmission:
    """Build (not send) the uploads and the step request for `spark_jobs/<job>.py` on EMR."""
    _split_s3(staging)
    if cluster_id is None and not create_cluster:
        raise ValueError("give --cluster-id of a running cluster, or --create-cluster")
    main = spark_main_file(job)
    zip_path = build_py_files_zip(Path(work_dir) / "rexbert-pyfiles.zip")
    uploads = {str(zip_path): join_uri(staging, zip_path.name), str(main): join_uri(staging, main.name)}
    submit = ["spark-submit", "--deploy-mode", "cluster", "--py-files", uploads[str(zip_path)]]
    for key, value in sorted((spark_conf or {}).items()):
        submit += ["--conf", f"{key}={value}"]
    submit += [uploads[str(main)], *job_args]
    step = {
        "Name": f"{name}-{job}",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": submit},
    }
    cluster_request = None
    if create_cluster:
        cluster_request = json.loads(EMR_CLUSTER_TEMPLATE.read_text())
        cluster_request["Name"] = name
        cluster_request["LogUri"] = join_uri(staging, "logs/")
        cluster_request["Steps"] = [step]
        return EmrSubmission(uploads=uploads, request={"Steps": [step]}, create_cluster=cluster_request)
    return EmrSubmission(uploads=uploads, request={"JobFlowId": cluster_id, "Steps": [step]})


def send_emr_submission(submission: EmrSubmission, region: str, session: Any = None) -> dict[str, Any]:
    """Upload the code and submit; returns the cluster id and step ids."""
    import boto3

    session = session or boto3.session.Session(region_name=region)
    s3 = session.client("s3", region_name=region)
    for local, uri in submission.uploads.items():
        bucket, key = _split_s3(uri)
        s3.upload_file(local, bucket, key)
    emr = session.client("emr", region_name=region)
    if submission.create_cluster is not None:
        response = emr.run_job_flow(**submission.create_cluster)
        return {"cluster_id": response["JobFlowId"], "step_ids": []}
    response = emr.add_job_flow_steps(**submission.request)
    return {"cluster_id": submission.request["JobFlowId"], "step_ids": response["StepIds"]}
