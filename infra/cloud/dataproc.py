"""Run the Spark jobs on Google Cloud Dataproc: as a job on a cluster, or as a Dataproc Serverless batch.

The requests are the real `google.cloud.dataproc_v1` messages (`SubmitJobRequest`, `CreateBatchRequest`,
`CreateClusterRequest`): building them checks every field name and type. Each comes with its `gcloud`
command line, derived from the message, which `--dry-run` prints.

The executors' Python libraries come from one of:
- the packed environment (`--env-archive`, `archive_uris=[URI#environment]`, `spark.pyspark.python=
  ./environment/bin/python`; on a cluster the driver runs in YARN cluster mode so it sees the archive too);
- a custom container image (batches only, `--container-image`);
- the cluster's own Python, where a cluster created by `--create-cluster` installs the pins at start-up
  (Google's `pip-install.sh` initialization action reading the `PIP_PACKAGES` metadata, filled here from
  `spark_executor_requirements()`).

Project and region come from the options, else the environment, else gcloud's configuration; never a
hard-coded default.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from google.cloud import dataproc_v1

from infra.cloud.cli_lines import gcloud_list, gcloud_map, gcs_upload_argv
from infra.cloud.cloud_jobs import (
    Action,
    CloudSubmission,
    env_archive_properties,
    event_log_dir_of,
    event_log_properties,
    merged_properties,
    stage_env_archive,
    stage_job,
)
from infra.cloud.packaging import spark_executor_requirements
from infra.core.config import redact
from infra.core.paths import PROJECT_ROOT

DATAPROC_CLUSTER_TEMPLATE = PROJECT_ROOT / "infra" / "configs" / "dataproc-cluster.yaml"
# Google's initialization action that pip-installs the PIP_PACKAGES metadata; it is published in every region.
PIP_INIT_ACTION = "gs://goog-dataproc-initialization-actions-{region}/python/pip-install.sh"
CONSOLE = "https://console.cloud.google.com/dataproc"

PROJECT_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
REGION_VARIABLES = ("CLOUDSDK_DATAPROC_REGION", "CLOUDSDK_COMPUTE_REGION")


# --- project and region -------------------------------------------------------------------------------------------


def _gcloud_config(prop: str) -> str | None:
    """`gcloud config get-value PROP`, or None when gcloud is not installed or the property is unset."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        proc = subprocess.run([gcloud, "config", "get-value", prop], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value and value != "(unset)" else None


def resolve_project(project: str | None) -> str:
    """`--project`, else $GOOGLE_CLOUD_PROJECT / $CLOUDSDK_CORE_PROJECT, else gcloud's `core/project`."""
    found = project or next((os.environ[v] for v in PROJECT_VARIABLES if os.environ.get(v)), None)
    found = found or _gcloud_config("project")
    if not found:
        raise ValueError("no GCP project: pass --project, set GOOGLE_CLOUD_PROJECT, or run "
                         "`gcloud config set project PROJECT`")
    return found


def resolve_region(region: str | None) -> str:
    """`--region`, else $CLOUDSDK_DATAPROC_REGION / $CLOUDSDK_COMPUTE_REGION, else gcloud's `dataproc/region`
    or `compute/region`."""
    found = region or next((os.environ[v] for v in REGION_VARIABLES if os.environ.get(v)), None)
    found = found or _gcloud_config("dataproc/region") or _gcloud_config("compute/region")
    if not found:
        raise ValueError("no Dataproc region: pass --region, set CLOUDSDK_DATAPROC_REGION, or run "
                         "`gcloud config set dataproc/region REGION`")
    return found


# --- ids, links, helpers ------------------------------------------------------------------------------------------


def new_id(job: str) -> str:
    """A job or batch id Dataproc accepts (lowercase letters, digits, hyphens; 4 to 63 characters)."""
    return f"rexbert-{job}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def job_url(project: str, region: str, job_id: str) -> str:
    return f"{CONSOLE}/jobs/{job_id}?region={region}&project={project}"


def batch_url(project: str, region: str, batch_id: str) -> str:
    return f"{CONSOLE}/batches/{region}/{batch_id}/monitoring?project={project}"


def cluster_ui_url(project: str, region: str, cluster: str) -> str:
    """The cluster's web interfaces (Component Gateway): the Spark History Server and YARN's UI."""
    return f"{CONSOLE}/clusters/{cluster}/web-interfaces?region={region}&project={project}"


def _check_gcs(staging: str) -> str:
    if not staging.startswith("gs://") or not staging[len("gs://"):].strip("/"):
        raise ValueError(f"staging location must be a gs:// URI, got {staging!r}")
    return staging[len("gs://"):].split("/", 1)[0]


def _redact_message(message: Any) -> Any:
    """A copy of a Dataproc request with every credential-looking property value redacted (for printing)."""
    kind = type(message)
    return kind.from_json(json.dumps(redact(json.loads(kind.to_json(message)))))


def _labels(job: str, labels: dict[str, str] | None) -> dict[str, str]:
    return {"app": "rexbert", "job": job, **(labels or {})}


def _list_flag(name: str, values: Any) -> list[str]:
    return [f"--{name}={gcloud_list(values)}"] if values else []


def _map_flag(name: str, pairs: Any) -> list[str]:
    return [f"--{name}={gcloud_map(dict(pairs))}"] if pairs else []


# --- cluster jobs -------------------------------------------------------------------------------------------------


def build_dataproc_submission(
    job: str,
    job_args: list[str],
    project: str,
    region: str,
    cluster: str,
    staging: str,
    work_dir: str | Path,
    spark_conf: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    env_archive: str | Path | None = None,
    event_log_dir: str | None = None,
    create_cluster: bool = False,
    job_id: str | None = None,
) -> CloudSubmission:
    """Build (not send) the uploads and the SubmitJobRequest for `spark_jobs/<job>.py` on `cluster`;
    with `create_cluster`, the CreateClusterRequest from the template first."""
    bucket = _check_gcs(staging)
    staged = stage_job(job, job_args, staging, work_dir)
    uploads = dict(staged.uploads)
    archive = stage_env_archive(env_archive, staging, uploads)
    log_dir = event_log_dir_of(event_log_dir, staged.config_path)
    env_properties = {"spark.submit.deployMode": "cluster", **env_archive_properties()} if archive else {}
    job_id = job_id or new_id(job)
    request = dataproc_v1.SubmitJobRequest(
        project_id=project,
        region=region,
        job=dataproc_v1.Job(
            reference=dataproc_v1.JobReference(project_id=project, job_id=job_id),
            placement=dataproc_v1.JobPlacement(cluster_name=cluster),
            pyspark_job=dataproc_v1.PySparkJob(
                main_python_file_uri=staged.main_uri,
                args=staged.args,
                python_file_uris=[staged.py_files_uri],
                archive_uris=[archive] if archive else [],
                properties=merged_properties(env_properties, event_log_properties(log_dir), spark_conf or {}),
            ),
            labels=_labels(job, labels),
        ),
    )
    actions = []
    if create_cluster:
        cluster_request = build_cluster_request(project, region, cluster, bucket, log_dir)
        source = Path(work_dir) / "dataproc-cluster.yaml"
        source.write_text(cluster_yaml(cluster_request.cluster))
        actions.append(Action.of("create_cluster", cluster_request, lambda r: cluster_import_argv(r, source),
                                 redacted=_redact_message))
    actions.append(Action.of("submit_job", request, submit_job_argv, redacted=_redact_message))
    links = {"Dataproc job": job_url(project, region, job_id),
             "Spark history (cluster web interfaces)": cluster_ui_url(project, region, cluster)}
    return CloudSubmission(uploads, actions, gcs_upload_argv, links)


def submit_job_argv(request: dataproc_v1.SubmitJobRequest) -> list[str]:
    """`gcloud dataproc jobs submit pyspark ...` for a SubmitJobRequest (`--id` is a hidden gcloud flag)."""
    job, pyspark = request.job, request.job.pyspark_job
    argv = ["gcloud", "dataproc", "jobs", "submit", "pyspark", pyspark.main_python_file_uri,
            f"--cluster={job.placement.cluster_name}", f"--region={request.region}",
            f"--project={request.project_id}", f"--id={job.reference.job_id}"]
    argv += _list_flag("py-files", pyspark.python_file_uris) + _list_flag("jars", pyspark.jar_file_uris)
    argv += _list_flag("files", pyspark.file_uris) + _list_flag("archives", pyspark.archive_uris)
    argv += _map_flag("properties", pyspark.properties) + _map_flag("labels", job.labels)
    return argv + (["--", *pyspark.args] if pyspark.args else [])


def build_cluster_request(project: str, region: str, name: str, config_bucket: str,
                          event_log_dir: str | None = None) -> dataproc_v1.CreateClusterRequest:
    """The cluster template, filled: its name, region's init action, the executors' pins, the staging bucket
    (driver output), and the history server's event log folder when one is given."""
    data = yaml.safe_load(DATAPROC_CLUSTER_TEMPLATE.read_text())
    cluster = dataproc_v1.Cluster.from_json(json.dumps(data))
    cluster.cluster_name = name
    config = cluster.config
    config.config_bucket = config_bucket
    config.gce_cluster_config.metadata["PIP_PACKAGES"] = " ".join(spark_executor_requirements())
    config.initialization_actions.append(
        dataproc_v1.NodeInitializationAction(executable_file=PIP_INIT_ACTION.format(region=region)))
    if event_log_dir is not None:
        config.software_config.properties["spark:spark.eventLog.dir"] = event_log_dir
        config.software_config.properties["spark:spark.history.fs.logDirectory"] = event_log_dir
    return dataproc_v1.CreateClusterRequest(project_id=project, region=region, cluster=cluster)


def cluster_yaml(cluster: dataproc_v1.Cluster) -> str:
    """The cluster as `gcloud dataproc clusters import --source` reads it (the message's JSON form, in YAML)."""
    data = json.loads(dataproc_v1.Cluster.to_json(cluster, use_integers_for_enums=False,
                                               always_print_fields_with_no_presence=False))
    return yaml.safe_dump(data, sort_keys=False)


def cluster_import_argv(request: dataproc_v1.CreateClusterRequest, source: str | Path) -> list[str]:
    return ["gcloud", "dataproc", "clusters", "import", request.cluster.cluster_name, f"--source={source}",
            f"--region={request.region}", f"--project={request.project_id}"]


# --- serverless batches -------------------------------------------------------------------------------------------


def build_dataproc_batch(
    job: str,
    job_args: list[str],
    project: str,
    region: str,
    staging: str,
    work_dir: str | Path,
    spark_conf: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    env_archive: str | Path | None = None,
    container_image: str | None = None,
    version: str | None = None,
    event_log_dir: str | None = None,
    history_server_cluster: str | None = None,
    service_account: str | None = None,
    batch_id: str | None = None,
) -> CloudSubmission:
    """Build (not send) the uploads and the CreateBatchRequest (a PySparkBatch) for `spark_jobs/<job>.py`."""
    bucket = _check_gcs(staging)
    staged = stage_job(job, job_args, staging, work_dir)
    uploads = dict(staged.uploads)
    archive = stage_env_archive(env_archive, staging, uploads)
    log_dir = event_log_dir_of(event_log_dir, staged.config_path)
    if history_server_cluster and "/" not in history_server_cluster:
        history_server_cluster = f"projects/{project}/regions/{region}/clusters/{history_server_cluster}"
    batch_id = batch_id or new_id(job)
    batch = dataproc_v1.Batch(
        pyspark_batch=dataproc_v1.PySparkBatch(
            main_python_file_uri=staged.main_uri,
            args=staged.args,
            python_file_uris=[staged.py_files_uri],
            archive_uris=[archive] if archive else [],
        ),
        runtime_config=dataproc_v1.RuntimeConfig(
            version=version or "",
            container_image=container_image or "",
            properties=merged_properties(env_archive_properties() if archive else {},
                                         event_log_properties(log_dir), spark_conf or {}),
        ),
        environment_config=dataproc_v1.EnvironmentConfig(
            execution_config=dataproc_v1.ExecutionConfig(service_account=service_account or "",
                                                         staging_bucket=bucket),
            peripherals_config=dataproc_v1.PeripheralsConfig(
                spark_history_server_config=dataproc_v1.SparkHistoryServerConfig(
                    dataproc_cluster=history_server_cluster or "")),
        ),
        labels=_labels(job, labels),
    )
    request = dataproc_v1.CreateBatchRequest(parent=f"projects/{project}/locations/{region}", batch_id=batch_id,
                                             batch=batch)
    links = {"Dataproc batch (Spark UI, logs)": batch_url(project, region, batch_id)}
    if history_server_cluster:
        links["Spark history server cluster"] = history_server_cluster
    return CloudSubmission(uploads, [Action.of("create_batch", request, create_batch_argv, _redact_message)],
                           gcs_upload_argv, links)


def _parent_parts(parent: str) -> tuple[str, str]:
    """(project, region) of `projects/P/locations/R`."""
    parts = parent.split("/")
    return parts[1], parts[3]


def create_batch_argv(request: dataproc_v1.CreateBatchRequest) -> list[str]:
    """`gcloud dataproc batches submit pyspark ...` for a CreateBatchRequest."""
    project, region = _parent_parts(request.parent)
    batch, pyspark = request.batch, request.batch.pyspark_batch
    runtime, execution = batch.runtime_config, batch.environment_config.execution_config
    argv = ["gcloud", "dataproc", "batches", "submit", "pyspark", pyspark.main_python_file_uri,
            f"--batch={request.batch_id}", f"--region={region}", f"--project={project}"]
    argv += _list_flag("py-files", pyspark.python_file_uris) + _list_flag("jars", pyspark.jar_file_uris)
    argv += _list_flag("files", pyspark.file_uris) + _list_flag("archives", pyspark.archive_uris)
    argv += _map_flag("properties", runtime.properties)
    argv += [f"--version={runtime.version}"] if runtime.version else []
    argv += [f"--container-image={runtime.container_image}"] if runtime.container_image else []
    history = batch.environment_config.peripherals_config.spark_history_server_config.dataproc_cluster
    argv += [f"--history-server-cluster={history}"] if history else []
    argv += [f"--service-account={execution.service_account}"] if execution.service_account else []
    argv += [f"--staging-bucket={execution.staging_bucket}"] if execution.staging_bucket else []
    argv += _map_flag("labels", batch.labels)
    return argv + (["--", *pyspark.args] if pyspark.args else [])


# --- sending ------------------------------------------------------------------------------------------------------


def _endpoint(region: str) -> dict[str, str]:
    return {"api_endpoint": f"{region}-dataproc.googleapis.com:443"}


def upload_to_gcs(uploads: dict[str, str]) -> None:
    """Copy each local file to its gs:// URI (pyarrow's GCS filesystem, Application Default Credentials)."""
    import pyarrow.fs as pafs

    from infra.core import fs

    for local, uri in uploads.items():
        filesystem, path = fs.resolve(uri)
        pafs.copy_files(local, path, destination_filesystem=filesystem)


def send_dataproc_submission(submission: CloudSubmission) -> list[Any]:
    """Upload the files and make the calls in order (a cluster is waited for; a job or batch is not)."""
    upload_to_gcs(submission.uploads)
    results = []
    for action in submission.actions:
        request = action.request
        if action.name == "create_cluster":
            client = dataproc_v1.ClusterControllerClient(client_options=_endpoint(request.region))
            results.append(client.create_cluster(request=request).result())
        elif action.name == "submit_job":
            client = dataproc_v1.JobControllerClient(client_options=_endpoint(request.region))
            results.append(client.submit_job(request=request))
        elif action.name == "create_batch":
            client = dataproc_v1.BatchControllerClient(client_options=_endpoint(_parent_parts(request.parent)[1]))
            results.append(client.create_batch(request=request).metadata)
    return results


# --- status and logs ----------------------------------------------------------------------------------------------


def get_job_request(project: str, region: str, job_id: str) -> dataproc_v1.GetJobRequest:
    return dataproc_v1.GetJobRequest(project_id=project, region=region, job_id=job_id)


def get_batch_request(project: str, region: str, batch_id: str) -> dataproc_v1.GetBatchRequest:
    return dataproc_v1.GetBatchRequest(name=f"projects/{project}/locations/{region}/batches/{batch_id}")


def job_status_argv(request: dataproc_v1.GetJobRequest, logs: bool = False) -> list[str]:
    """`gcloud dataproc jobs describe` (status) or `jobs wait` (streams the driver's output) for a job."""
    return ["gcloud", "dataproc", "jobs", "wait" if logs else "describe", request.job_id,
            f"--region={request.region}", f"--project={request.project_id}"]


def batch_status_argv(request: dataproc_v1.GetBatchRequest, logs: bool = False) -> list[str]:
    _, project, _, region, _, batch_id = request.name.split("/")
    return ["gcloud", "dataproc", "batches", "wait" if logs else "describe", batch_id, f"--region={region}",
            f"--project={project}"]


def get_job(request: dataproc_v1.GetJobRequest) -> dataproc_v1.Job:
    return dataproc_v1.JobControllerClient(client_options=_endpoint(request.region)).get_job(request=request)


def get_batch(request: dataproc_v1.GetBatchRequest) -> dataproc_v1.Batch:
    region = request.name.split("/")[3]
    return dataproc_v1.BatchControllerClient(client_options=_endpoint(region)).get_batch(request=request)
