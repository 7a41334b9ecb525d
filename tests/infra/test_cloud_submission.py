"""Cluster submission: the real EMR requests against a moto server, the real Dataproc request messages, and the
deployable configs validated against the providers' own schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest
import yaml
from google.cloud import dataproc_v1
from typer.testing import CliRunner

from infra.cli import app
from infra.cloud.dataproc import build_dataproc_submission
from infra.cloud.emr import build_emr_submission, send_emr_submission
from infra.cloud.packaging import SPARK_JOBS, build_py_files_zip, spark_main_file
from infra.core.paths import PROJECT_ROOT

CONFIGS = PROJECT_ROOT / "infra" / "configs"
REGION = "us-east-1"


def test_py_files_zip_holds_the_spark_packages_only(tmp_path):
    path = build_py_files_zip(tmp_path / "code.zip")
    names = zipfile.ZipFile(path).namelist()
    assert {"corpus/__init__.py", "corpus/extract/stage.py", "spark_jobs/session.py"} <= set(names)
    # infra/core (config schema, filesystem layer, manifest) ships with its parent's __init__; the rest of infra stays
    assert {"infra/__init__.py", "infra/core/__init__.py", "infra/core/config.py", "infra/core/fs.py",
            "infra/core/manifest.py"} <= set(names)
    infra_files = {n for n in names if n.startswith("infra/")}
    assert all(n.startswith("infra/core/") for n in infra_files - {"infra/__init__.py"}), infra_files
    assert not any(n.startswith(("training/", "ray_jobs/")) or "__pycache__" in n for n in names)
    # Deterministic: the same tree gives the same bytes.
    assert build_py_files_zip(tmp_path / "again.zip").read_bytes() == path.read_bytes()


def test_py_files_zip_imports_every_spark_entry_point_in_a_clean_interpreter(tmp_path):
    """What an executor sees: only the zip on the path (no checkout, no installed project)."""
    path = build_py_files_zip(tmp_path / "code.zip")
    modules = [f"spark_jobs.{Path(entry).stem}" for entry in SPARK_JOBS.values()]
    code = "import sys; sys.path.insert(0, sys.argv[1]); import importlib\n" + "".join(
        f"importlib.import_module({m!r})\n" for m in modules
    ) + "import infra.core.config as c; print(c.__file__)"
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(path)), proc.stdout


@pytest.mark.parametrize("job", sorted(SPARK_JOBS))
def test_every_spark_job_entry_point_exists(job):
    main = spark_main_file(job)
    assert main.is_file() and main.name.endswith("_job.py")


def test_unknown_spark_job_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown Spark job 'dedupe'"):
        spark_main_file("dedupe")


@pytest.fixture
def aws(s3_server, monkeypatch):
    """A boto3 session whose S3 and EMR clients talk to the local moto server, and a fresh staging bucket.

    The server, not `moto.mock_aws`: mock_aws resets moto's in-process state on exit, which would empty the
    session-wide `s3_server` that later tests use.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL_EMR", os.environ["AWS_ENDPOINT_URL_S3"])
    session = boto3.session.Session(region_name=REGION)
    bucket = f"rexbert-staging-{uuid.uuid4().hex[:8]}"
    session.client("s3").create_bucket(Bucket=bucket)
    return session, bucket


def test_emr_step_is_accepted_by_the_emr_api(aws, tmp_path):
    session, bucket = aws
    emr = session.client("emr")
    template = json.loads((CONFIGS / "emr-cluster.json").read_text())
    cluster_id = emr.run_job_flow(**template)["JobFlowId"]

    submission = build_emr_submission(
        "dedup",
        ["--input", "s3://data/in", "--output", "s3://data/out"],
        f"s3://{bucket}/code",
        cluster_id,
        tmp_path,
    )
    result = send_emr_submission(submission, REGION, session=session)

    step = emr.describe_step(ClusterId=cluster_id, StepId=result["step_ids"][0])["Step"]
    args = step["Config"]["Args"]
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    assert args[args.index("--py-files") + 1] == f"s3://{bucket}/code/rexbert-pyfiles.zip"
    assert f"s3://{bucket}/code/dedup_job.py" in args and args[-1] == "s3://data/out"
    keys = {o["Key"] for o in session.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"code/rexbert-pyfiles.zip", "code/dedup_job.py"}


def test_emr_create_cluster_request_runs_the_step(aws, tmp_path):
    session, bucket = aws
    submission = build_emr_submission(
        "build", ["--input", "s3://x"], f"s3://{bucket}/code", None, tmp_path, create_cluster=True
    )
    result = send_emr_submission(submission, REGION, session=session)
    steps = session.client("emr").list_steps(ClusterId=result["cluster_id"])["Steps"]
    assert [s["Name"] for s in steps] == ["rexbert-build"]


def test_emr_needs_a_cluster_and_an_s3_staging(tmp_path):
    with pytest.raises(ValueError, match="cluster-id"):
        build_emr_submission("build", [], "s3://b/p", None, tmp_path)
    with pytest.raises(ValueError, match="s3://"):
        build_emr_submission("build", [], "gs://b/p", "j-1", tmp_path)


def test_dataproc_request_is_a_valid_submit_job_message(tmp_path):
    submission = build_dataproc_submission(
        "build",
        ["--input", "gs://crawl/warc", "--output", "gs://out"],
        "proj",
        "europe-west4",
        "rexbert",
        "gs://staging/rexbert",
        tmp_path,
        spark_conf={"spark.executor.memory": "8g"},
    )
    request = submission.request
    # Round trip through the wire format: what prints in --dry-run is what the API would receive.
    assert dataproc_v1.SubmitJobRequest.from_json(dataproc_v1.SubmitJobRequest.to_json(request)) == request
    job = request.job
    assert job.placement.cluster_name == "rexbert"
    assert job.pyspark_job.main_python_file_uri == "gs://staging/rexbert/build_job.py"
    assert list(job.pyspark_job.python_file_uris) == ["gs://staging/rexbert/rexbert-pyfiles.zip"]
    assert job.pyspark_job.properties["spark.executor.memory"] == "8g"


def test_dataproc_cluster_template_is_a_valid_cluster_message():
    data = yaml.safe_load((CONFIGS / "dataproc-cluster.yaml").read_text())
    cluster = dataproc_v1.Cluster.from_json(json.dumps(data))  # the gcloud import format is the JSON form
    assert cluster.cluster_name == "rexbert"
    assert cluster.config.worker_config.num_instances >= 1


def test_ray_cluster_launcher_config_passes_rays_schema():
    import jsonschema
    import ray.autoscaler

    schema_path = PROJECT_ROOT.joinpath(ray.autoscaler.__path__[0], "ray-schema.json")
    schema = json.loads(schema_path.read_text())
    config = yaml.safe_load((CONFIGS / "ray-cluster.yaml").read_text())
    jsonschema.validate(config, schema)


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob-pretrain.yaml"])
def test_kuberay_manifests_have_the_fields_the_operator_requires(name):
    doc = yaml.safe_load((CONFIGS / "kuberay" / name).read_text())
    assert doc["apiVersion"] == "ray.io/v1"
    spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    if doc["kind"] == "RayJob":
        assert doc["spec"]["entrypoint"].startswith("rexbert ")
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in head["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"  # auth stays on
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and group["template"]["spec"]["containers"]


def test_dry_runs_print_the_requests_without_sending():
    runner = CliRunner()
    result = runner.invoke(app, ["submit", "ray", "--dry-run", "--", "rexbert", "pretrain", "--phase", "general"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output.split("\n", 1)[1])
    assert body["entrypoint"] == "rexbert pretrain --phase general"
    assert ".venv" in body["runtime_env"]["excludes"]

    result = runner.invoke(
        app,
        [
            "submit",
            "dataproc",
            "dedup",
            "--project",
            "p",
            "--region",
            "us-central1",
            "--cluster",
            "c",
            "--staging",
            "gs://b/code",
            "--dry-run",
            "--",
            "--input",
            "gs://b/in",
            "--output",
            "gs://b/out",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["submit_job"]["job"]["pysparkJob"]["args"] == ["--input", "gs://b/in", "--output", "gs://b/out"]
