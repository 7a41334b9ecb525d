"""Run the Spark jobs on Google Cloud Dataproc: upload the code to GCS and submit a PySpark job.

The request is the real `google.cloud.dataproc_v1.SubmitJobRequest` (building it validates every field
name and type); `--dry-run` prints it as JSON, exactly what would be sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import dataproc_v1

from infra.cloud.packaging import build_py_files_zip, join_uri, spark_main_file


@dataclass
class DataprocSubmission:
    uploads: dict[str, str]
    request: dataproc_v1.SubmitJobRequest

    def to_json(self) -> str:
        import json

        return json.dumps(
            {
                "uploads": self.uploads,
                "submit_job": json.loads(dataproc_v1.SubmitJobRequest.to_json(self.request)),
            },
            indent=2,
        )


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
) -> DataprocSubmission:
    """Build (not send) the uploads and the SubmitJobRequest for `spark_jobs/<job>.py`."""
    if not staging.startswith("gs://"):
        raise ValueError(f"staging location must be a gs:// URI, got {staging!r}")
    main = spark_main_file(job)
    zip_path = build_py_files_zip(Path(work_dir) / "rexbert-pyfiles.zip")
    uploads = {str(zip_path): join_uri(staging, zip_path.name), str(main): join_uri(staging, main.name)}
    pyspark_job = dataproc_v1.PySparkJob(
        main_python_file_uri=uploads[str(main)],
        args=list(job_args),
        python_file_uris=[uploads[str(zip_path)]],
        properties=dict(spark_conf or {}),
    )
    request = dataproc_v1.SubmitJobRequest(
        project_id=project,
        region=region,
        job=dataproc_v1.Job(
            placement=dataproc_v1.JobPlacement(cluster_name=cluster),
            pyspark_job=pyspark_job,
            labels={"app": "rexbert", "job": job, **(labels or {})},
        ),
    )
    return DataprocSubmission(uploads=uploads, request=request)


def send_dataproc_submission(submission: DataprocSubmission) -> Any:
    """Upload the code (google-cloud-storage) and submit the job; returns the Dataproc Job."""
    try:
        from google.cloud import storage
    except ImportError as exc:
        raise ImportError("uploading to GCS needs `pip install google-cloud-storage`") from exc
    client = storage.Client(project=submission.request.project_id)
    for local, uri in submission.uploads.items():
        bucket, _, key = uri[len("gs://") :].partition("/")
        client.bucket(bucket).blob(key).upload_from_filename(local)
    region = submission.request.region
    jobs = dataproc_v1.JobControllerClient(client_options={"api_endpoint": f"{region}-dataproc.googleapis.com:443"})
    return jobs.submit_job(request=submission.request)
