"""Cluster submission: the real EMR and EMR Serverless requests against a moto server, the real Dataproc request
messages, `rexbert jobs status|logs` for them, and the deployable configs validated against the providers' own
schemas. The command lines `--dry-run` prints are checked in test_cloud_cli_lines.py."""

from __future__ import annotations

import gzip
import json
import os
import shutil
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
from infra.cloud.cloud_jobs import validate_boto_request
from infra.cloud.dataproc import (
    PROJECT_VARIABLES,
    REGION_VARIABLES,
    build_dataproc_batch,
    build_dataproc_submission,
    get_batch_request,
    get_job_request,
    resolve_project,
    resolve_region,
)
from infra.cloud.emr import build_emr_submission, resolve_aws_region, send_emr_submission
from infra.cloud.emr_serverless import build_emr_serverless_submission, send_emr_serverless_submission
from infra.cloud.packaging import SPARK_JOBS, build_py_files_zip, spark_executor_requirements, spark_main_file
from infra.core.paths import PROJECT_ROOT

CONFIGS = PROJECT_ROOT / "infra" / "configs"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/rexbert-emr-serverless"


def test_py_files_zip_holds_the_spark_packages_only(tmp_path):
    path = build_py_files_zip(tmp_path / "code.zip")
    names = zipfile.ZipFile(path).namelist()
    assert {"corpus/__init__.py", "corpus/extract/stage.py", "spark_jobs/session.py"} <= set(names)
    # infra/core (config schema, filesystem layer, manifest) ships with its parent's __init__; the rest of infra stays
    assert {"infra/__init__.py", "infra/core/__init__.py", "infra/core/config.py", "infra/core/fs.py",
            "infra/core/manifest.py"} <= set(names)
    infra_files = {n for n in names if n.startswith("infra/")}
    assert all(n.startswith("infra/core/") for n in infra_files - {"infra/__init__.py"}), infra_files
    assert not any(n.startswith("ray_jobs/") or "__pycache__" in n for n in names)
    # of training/, only the phase YAMLs the config schema reads (and the package's __init__ that locates them)
    training = {n for n in names if n.startswith("training/")}
    assert training and all(n == "training/__init__.py" or n.startswith("training/phases/") for n in training)
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
    """A boto3 session whose S3, EMR and EMR Serverless clients talk to the local moto server, and a fresh
    staging bucket.

    The server, not `moto.mock_aws`: mock_aws resets moto's in-process state on exit, which would empty the
    session-wide `s3_server` that later tests use.
    """
    for service in ("EMR", "EMR_SERVERLESS"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", os.environ["AWS_ENDPOINT_URL_S3"])
    session = boto3.session.Session(region_name=REGION)
    bucket = f"rexbert-staging-{uuid.uuid4().hex[:8]}"
    session.client("s3").create_bucket(Bucket=bucket)
    return session, bucket


@pytest.fixture
def fake_env(tmp_path) -> Path:
    """Stands in for the packed environment (building the real one takes minutes): only its upload is tested."""
    path = tmp_path / "rexbert-spark-env-test.tar.gz"
    path.write_bytes(b"not really a tarball")
    return path


@pytest.fixture
def run_config(tmp_path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text("spark:\n  event_log_dir: s3://history/spark-events\n")
    return path


def _keys(session, bucket: str) -> set[str]:
    return {o["Key"] for o in session.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}


def _conf_of(args: list[str]) -> dict[str, str]:
    return dict(args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg == "--conf")


def test_emr_step_is_accepted_by_the_emr_api(aws, tmp_path, fake_env, run_config):
    session, bucket = aws
    emr = session.client("emr")
    template = json.loads((CONFIGS / "emr-cluster.json").read_text())
    cluster_id = emr.run_job_flow(**template)["JobFlowId"]

    submission = build_emr_submission(
        "dedup",
        ["--input", "s3://data/in", "--output", "s3://data/out", "--config", str(run_config)],
        f"s3://{bucket}/code",
        cluster_id,
        tmp_path,
        REGION,
        env_archive=fake_env,
        spark_conf={"spark.executor.memory": "8g"},
    )
    result = send_emr_submission(submission, REGION, session=session)

    step = emr.describe_step(ClusterId=cluster_id, StepId=result["step_ids"][0])["Step"]
    args = step["Config"]["Args"]
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    assert args[args.index("--py-files") + 1] == f"s3://{bucket}/code/rexbert-pyfiles.zip"
    assert args[args.index("--archives") + 1] == f"s3://{bucket}/code/env/{fake_env.name}#environment"
    conf = _conf_of(args)
    assert conf["spark.pyspark.python"] == conf["spark.pyspark.driver.python"] == "./environment/bin/python"
    # the run config's history-server folder reaches the job's properties
    assert conf["spark.eventLog.enabled"] == "true" and conf["spark.eventLog.dir"] == "s3://history/spark-events"
    assert conf["spark.executor.memory"] == "8g"
    # the local --config was uploaded and the argument now names the upload
    assert args[args.index(f"s3://{bucket}/code/dedup_job.py") + 1:] == [
        "--input", "s3://data/in", "--output", "s3://data/out", "--config", f"s3://{bucket}/code/run.yaml"]
    assert _keys(session, bucket) == {"code/rexbert-pyfiles.zip", "code/dedup_job.py", "code/run.yaml",
                                      f"code/env/{fake_env.name}"}


def test_emr_create_cluster_uploads_the_bootstrap_with_the_one_pin_list(aws, tmp_path):
    session, bucket = aws
    submission = build_emr_submission("build", ["--input", "s3://x"], f"s3://{bucket}/code", None, tmp_path, REGION,
                                      create_cluster=True, event_log_dir="s3://history/events")
    result = send_emr_submission(submission, REGION, session=session)
    emr = session.client("emr")
    steps = emr.list_steps(ClusterId=result["cluster_id"])["Steps"]
    assert [s["Name"] for s in steps] == ["rexbert-build"] and result["step_ids"] == [steps[0]["Id"]]
    cluster = emr.describe_cluster(ClusterId=result["cluster_id"])["Cluster"]
    assert cluster["LogUri"] == f"s3://{bucket}/code/logs/"
    defaults = next(c for c in cluster["Configurations"] if c["Classification"] == "spark-defaults")
    assert defaults["Properties"]["spark.history.fs.logDirectory"] == "s3://history/events"
    (action,) = emr.list_bootstrap_actions(ClusterId=result["cluster_id"])["BootstrapActions"]
    assert action["ScriptPath"] == f"s3://{bucket}/code/bootstrap/emr-bootstrap.sh"
    s3 = session.client("s3")
    script = s3.get_object(Bucket=bucket, Key="code/bootstrap/emr-bootstrap.sh")["Body"].read().decode()
    assert script == (CONFIGS / "emr-bootstrap.sh").read_text()
    requirements_key = action["Args"][0].removeprefix(f"s3://{bucket}/")
    requirements = s3.get_object(Bucket=bucket, Key=requirements_key)["Body"].read().decode()
    assert requirements.split() == spark_executor_requirements()


def test_emr_bootstrap_script_holds_no_pins_and_installs_the_uploaded_list():
    script = (CONFIGS / "emr-bootstrap.sh").read_text()
    assert "==" not in script  # every pin comes from pyproject.toml, through the requirements file
    assert 'pip install -r /tmp/rexbert-requirements.txt' in script
    assert subprocess.run(["bash", "-n", str(CONFIGS / "emr-bootstrap.sh")]).returncode == 0


def test_emr_cluster_template_validates_and_runs_as_shipped(aws):
    session, _ = aws
    text = (CONFIGS / "emr-cluster.json").read_text()
    assert "REPLACE" not in text
    template = json.loads(text)
    validate_boto_request("emr", "RunJobFlow", template)
    cluster_id = session.client("emr").run_job_flow(**template)["JobFlowId"]
    assert session.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["ReleaseLabel"] == \
        template["ReleaseLabel"]


def test_emr_needs_one_cluster_choice_and_an_s3_staging(tmp_path):
    with pytest.raises(ValueError, match="cluster-id"):
        build_emr_submission("build", [], "s3://b/p", None, tmp_path, REGION)
    with pytest.raises(ValueError, match="cluster-id"):
        build_emr_submission("build", [], "s3://b/p", "j-1", tmp_path, REGION, create_cluster=True)
    with pytest.raises(ValueError, match="s3://"):
        build_emr_submission("build", [], "gs://b/p", "j-1", tmp_path, REGION)
    with pytest.raises(ValueError, match="--config missing.yaml: no such file"):
        build_emr_submission("build", ["--config", "missing.yaml"], "s3://b/p", "j-1", tmp_path, REGION)
    with pytest.raises(ValueError, match="event log dir"):
        build_emr_submission("build", [], "s3://b/p", "j-1", tmp_path, REGION, event_log_dir="/tmp/events")


def _serverless_application(session) -> str:
    client = session.client("emr-serverless")
    return client.create_application(name="rexbert", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]


def test_emr_serverless_job_run_is_accepted(aws, tmp_path, fake_env):
    session, bucket = aws
    application_id = _serverless_application(session)
    submission = build_emr_serverless_submission(
        "filter", ["--input", "s3://d/in", "--output", "s3://d/out"], f"s3://{bucket}/code", application_id,
        ROLE, tmp_path, REGION, env_archive=fake_env, spark_conf={"spark.executor.cores": "4"},
    )
    request = submission.action("start_job_run").request
    result = send_emr_serverless_submission(submission, REGION, session=session)
    run = session.client("emr-serverless").get_job_run(applicationId=application_id,
                                                      jobRunId=result["job_run_id"])["jobRun"]
    assert run["jobDriver"] == request["jobDriver"] and run["executionRole"] == ROLE
    parameters = run["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"].split()
    conf = _conf_of(parameters)
    assert conf["spark.archives"] == f"s3://{bucket}/code/env/{fake_env.name}#environment"
    assert conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert conf["spark.executorEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert conf["spark.executor.cores"] == "4"
    assert parameters[parameters.index("--py-files") + 1] == f"s3://{bucket}/code/rexbert-pyfiles.zip"
    assert run["jobDriver"]["sparkSubmit"]["entryPoint"] == f"s3://{bucket}/code/filter_job.py"
    assert f"code/env/{fake_env.name}" in _keys(session, bucket)


def test_emr_serverless_refuses_values_spark_submit_parameters_cannot_carry(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        build_emr_serverless_submission("filter", [], "s3://b/c", "00abc", ROLE, tmp_path, REGION,
                                        spark_conf={"spark.driver.extraJavaOptions": "-Da=1 -Db=2"})


def test_jobs_status_and_logs_of_an_emr_step(aws, tmp_path):
    session, bucket = aws
    submission = build_emr_submission("build", [], f"s3://{bucket}/code", None, tmp_path, REGION,
                                      create_cluster=True)
    result = send_emr_submission(submission, REGION, session=session)
    cluster_id, step_id = result["cluster_id"], result["step_ids"][0]
    expected = session.client("emr").describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]["Status"]["State"]

    runner = CliRunner()
    status = runner.invoke(app, ["jobs", "status", step_id, "--on", "emr", "--cluster-id", cluster_id])
    assert status.exit_code == 0, status.output
    assert status.output.split("\t")[:2] == [step_id, expected]

    logs = runner.invoke(app, ["jobs", "logs", step_id, "--on", "emr", "--cluster-id", cluster_id])
    assert logs.exit_code == 0, logs.output
    folder = f"s3://{bucket}/code/logs/{cluster_id}/steps/{step_id}/"
    assert f"logs: {folder}" in logs.output and "no log file there yet" in logs.output
    session.client("s3").put_object(Bucket=bucket, Key=f"code/logs/{cluster_id}/steps/{step_id}/stderr.gz",
                                    Body=gzip.compress(b"25/01/01 INFO Client: final status: SUCCEEDED\n"))
    logs = runner.invoke(app, ["jobs", "logs", step_id, "--on", "emr", "--cluster-id", cluster_id])
    assert "--- stderr\n25/01/01 INFO Client: final status: SUCCEEDED" in logs.output

    missing = runner.invoke(app, ["jobs", "status", step_id, "--on", "emr"])
    assert missing.exit_code != 0 and "--cluster-id" in missing.output


def test_jobs_status_and_logs_of_an_emr_serverless_run(aws, tmp_path):
    session, bucket = aws
    application_id = _serverless_application(session)
    submission = build_emr_serverless_submission("dedup", [], f"s3://{bucket}/code", application_id, ROLE, tmp_path,
                                                 REGION)
    run_id = send_emr_serverless_submission(submission, REGION, session=session)["job_run_id"]
    expected = session.client("emr-serverless").get_job_run(applicationId=application_id,
                                                            jobRunId=run_id)["jobRun"]["state"]
    runner = CliRunner()
    args = ["--on", "emr-serverless", "--application-id", application_id]
    status = runner.invoke(app, ["jobs", "status", run_id, *args])
    assert status.exit_code == 0, status.output
    assert status.output.split("\t")[:2] == [run_id, expected]
    key = f"code/logs/applications/{application_id}/jobs/{run_id}/SPARK_DRIVER/stdout.gz"
    session.client("s3").put_object(Bucket=bucket, Key=key, Body=gzip.compress(b"extracted 12 documents\n"))
    logs = runner.invoke(app, ["jobs", "logs", run_id, *args])
    assert logs.exit_code == 0, logs.output
    assert "--- stdout\nextracted 12 documents" in logs.output


@pytest.mark.skipif(shutil.which("aws") is None, reason="the aws CLI is not installed")
def test_the_printed_aws_lines_run_as_is_and_do_what_boto3_does(aws, tmp_path):
    """The dry run's lines, run by the real aws CLI against moto, make the same cluster and step as boto3."""
    session, bucket = aws
    runner = CliRunner()
    dry = runner.invoke(app, ["submit", "emr", "dedup", "--staging", f"s3://{bucket}/cli", "--create-cluster",
                              "--region", REGION, "--dry-run", "--", "--input", "s3://d/in", "--output", "s3://d/o"])
    assert dry.exit_code == 0, dry.output
    script = tmp_path / "lines.sh"
    script.write_text(dry.output)
    proc = subprocess.run(["bash", "-e", str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL_S3"]})
    assert proc.returncode == 0, proc.stderr
    cli_cluster = json.loads(proc.stdout[proc.stdout.index("{"):])["ClusterId"]

    submission = build_emr_submission("dedup", ["--input", "s3://d/in", "--output", "s3://d/o"],
                                      f"s3://{bucket}/cli", None, tmp_path, REGION, create_cluster=True)
    boto_cluster = send_emr_submission(submission, REGION, session=session)["cluster_id"]
    emr = session.client("emr")

    def described(cluster_id: str) -> dict:
        cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        groups = emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
        return {
            **{k: cluster[k] for k in ("Name", "ReleaseLabel", "LogUri", "Configurations", "ServiceRole", "Tags",
                                       "AutoTerminate", "TerminationProtected", "VisibleToAllUsers")},
            "Applications": [a["Name"] for a in cluster["Applications"]],
            "InstanceProfile": cluster["Ec2InstanceAttributes"]["IamInstanceProfile"],
            "Groups": sorted((g["Name"], g["InstanceGroupType"], g["Market"], g["InstanceType"],
                              g["RequestedInstanceCount"]) for g in groups),
            "Bootstrap": [(b["ScriptPath"], b["Args"]) for b in
                          emr.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]],
            "Steps": [(s["Name"], s["ActionOnFailure"], s["Config"]["Jar"], s["Config"]["Args"])
                      for s in emr.list_steps(ClusterId=cluster_id)["Steps"]],
        }

    assert described(cli_cluster) == described(boto_cluster)
    assert {"cli/rexbert-pyfiles.zip", "cli/dedup_job.py", "cli/bootstrap/emr-bootstrap.sh",
            "cli/bootstrap/rexbert-requirements.txt"} <= _keys(session, bucket)

    application_id = _serverless_application(session)
    dry = runner.invoke(app, ["submit", "emr-serverless", "dedup", "--staging", f"s3://{bucket}/sl", "--no-env",
                              "--application-id", application_id, "--execution-role-arn", ROLE, "--region", REGION,
                              "--dry-run", "--", "--input", "s3://d/in"])
    script.write_text(dry.output)
    proc = subprocess.run(["bash", "-e", str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL_S3"]})
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout[proc.stdout.index("{"):])["jobRunId"]
    run = session.client("emr-serverless").get_job_run(applicationId=application_id, jobRunId=run_id)["jobRun"]
    assert run["jobDriver"]["sparkSubmit"]["entryPointArguments"] == ["--input", "s3://d/in"]
    assert run["jobDriver"]["sparkSubmit"]["entryPoint"] == f"s3://{bucket}/sl/dedup_job.py"


# --- Dataproc ------------------------------------------------------------------------------------------------------


def test_dataproc_request_is_a_valid_submit_job_message(tmp_path, fake_env, run_config):
    run_config.write_text("spark:\n  event_log_dir: gs://history/spark-events\n")
    submission = build_dataproc_submission(
        "build",
        ["--input", "gs://crawl/warc", "--output", "gs://out", f"--config={run_config}"],
        "proj",
        "europe-west4",
        "rexbert",
        "gs://staging/rexbert",
        tmp_path,
        spark_conf={"spark.executor.memory": "8g"},
        env_archive=fake_env,
    )
    request = submission.action("submit_job").request
    # Round trip through the wire format: what is sent is what the API would receive.
    assert dataproc_v1.SubmitJobRequest.from_json(dataproc_v1.SubmitJobRequest.to_json(request)) == request
    job = request.job
    assert job.placement.cluster_name == "rexbert" and job.reference.job_id.startswith("rexbert-build-")
    assert job.pyspark_job.main_python_file_uri == "gs://staging/rexbert/build_job.py"
    assert list(job.pyspark_job.python_file_uris) == ["gs://staging/rexbert/rexbert-pyfiles.zip"]
    assert list(job.pyspark_job.archive_uris) == [f"gs://staging/rexbert/env/{fake_env.name}#environment"]
    properties = job.pyspark_job.properties
    assert properties["spark.executor.memory"] == "8g"
    assert properties["spark.submit.deployMode"] == "cluster"  # the driver runs where the archive is unpacked
    assert properties["spark.pyspark.python"] == "./environment/bin/python"
    assert properties["spark.eventLog.dir"] == "gs://history/spark-events"
    assert job.pyspark_job.args[-1] == "--config=gs://staging/rexbert/run.yaml"
    assert submission.uploads[str(run_config.resolve())] == "gs://staging/rexbert/run.yaml"
    assert job.reference.job_id in submission.links["Dataproc job"]


def test_dataproc_batch_is_a_valid_create_batch_message(tmp_path, fake_env):
    submission = build_dataproc_batch(
        "dedup", ["--input", "gs://b/in"], "proj", "us-central1", "gs://stage/code", tmp_path,
        env_archive=fake_env, version="2.2", event_log_dir="gs://history/events", history_server_cluster="hs",
    )
    request = submission.action("create_batch").request
    assert isinstance(request, dataproc_v1.CreateBatchRequest)
    assert dataproc_v1.CreateBatchRequest.from_json(dataproc_v1.CreateBatchRequest.to_json(request)) == request
    assert request.parent == "projects/proj/locations/us-central1"
    batch = request.batch
    assert batch.pyspark_batch.main_python_file_uri == "gs://stage/code/dedup_job.py"
    assert list(batch.pyspark_batch.archive_uris) == [f"gs://stage/code/env/{fake_env.name}#environment"]
    assert batch.runtime_config.properties["spark.pyspark.python"] == "./environment/bin/python"
    assert batch.runtime_config.properties["spark.eventLog.dir"] == "gs://history/events"
    assert batch.runtime_config.version == "2.2"
    history = batch.environment_config.peripherals_config.spark_history_server_config.dataproc_cluster
    assert history == "projects/proj/regions/us-central1/clusters/hs"
    assert batch.environment_config.execution_config.staging_bucket == "stage"

    image = build_dataproc_batch("dedup", [], "proj", "us-central1", "gs://stage/code", tmp_path,
                                 container_image="us-docker.pkg.dev/proj/rexbert/spark:1")
    batch = image.action("create_batch").request.batch
    assert batch.runtime_config.container_image == "us-docker.pkg.dev/proj/rexbert/spark:1"
    assert not batch.pyspark_batch.archive_uris and "spark.pyspark.python" not in batch.runtime_config.properties


def test_dataproc_cluster_template_is_a_valid_cluster_message_without_placeholders():
    text = (CONFIGS / "dataproc-cluster.yaml").read_text()
    data = yaml.safe_load(text)
    cluster = dataproc_v1.Cluster.from_json(json.dumps(data))  # the gcloud import format is the JSON form
    assert cluster.cluster_name == "rexbert"
    assert cluster.config.worker_config.num_instances >= 1
    # the pins and the region are filled at submission: the template holds neither (its comments may name them)
    values = json.dumps(data)
    assert "REGION" not in values and "PIP_PACKAGES" not in values and "==" not in values
    assert not cluster.config.initialization_actions and not cluster.config.gce_cluster_config.metadata


def test_dataproc_cluster_request_is_filled_from_the_one_pin_list(tmp_path):
    submission = build_dataproc_submission("dedup", [], "proj", "asia-east1", "corpus", "gs://stage/code", tmp_path,
                                           create_cluster=True, event_log_dir="gs://history/events")
    create, submit = submission.actions
    assert (create.name, submit.name) == ("create_cluster", "submit_job")
    cluster = create.request.cluster
    assert cluster.cluster_name == "corpus" and create.request.region == "asia-east1"
    assert cluster.config.gce_cluster_config.metadata["PIP_PACKAGES"].split() == spark_executor_requirements()
    assert [a.executable_file for a in cluster.config.initialization_actions] == [
        "gs://goog-dataproc-initialization-actions-asia-east1/python/pip-install.sh"]
    assert cluster.config.config_bucket == "stage"
    assert cluster.config.software_config.properties["spark:spark.history.fs.logDirectory"] == "gs://history/events"
    # the file `gcloud dataproc clusters import` reads is the same message
    source = create.argv[create.argv.index("import") + 2].removeprefix("--source=")
    assert dataproc_v1.Cluster.from_json(json.dumps(yaml.safe_load(Path(source).read_text()))) == cluster


# --- project and region come from the user's environment -----------------------------------------------------------


@pytest.fixture
def no_cloud_env(monkeypatch, tmp_path):
    for name in (*PROJECT_VARIABLES, *REGION_VARIABLES, "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # an empty gcloud configuration
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    return monkeypatch


def test_gcp_project_and_region_come_from_the_environment(no_cloud_env):
    no_cloud_env.setenv("PATH", "/nonexistent")  # no gcloud either
    with pytest.raises(ValueError, match="no GCP project: pass --project, set GOOGLE_CLOUD_PROJECT"):
        resolve_project(None)
    with pytest.raises(ValueError, match="no Dataproc region: pass --region, set CLOUDSDK_DATAPROC_REGION"):
        resolve_region(None)
    no_cloud_env.setenv("CLOUDSDK_CORE_PROJECT", "from-sdk")
    no_cloud_env.setenv("CLOUDSDK_COMPUTE_REGION", "europe-west1")
    assert (resolve_project(None), resolve_region(None)) == ("from-sdk", "europe-west1")
    no_cloud_env.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    no_cloud_env.setenv("CLOUDSDK_DATAPROC_REGION", "europe-west4")
    assert (resolve_project(None), resolve_region(None)) == ("from-env", "europe-west4")
    assert (resolve_project("given"), resolve_region("us-east1")) == ("given", "us-east1")


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed")
def test_gcp_project_and_region_fall_back_to_gclouds_configuration(no_cloud_env, tmp_path):
    config = tmp_path / "gcloud"
    (config / "configurations").mkdir(parents=True)
    (config / "active_config").write_text("default")
    (config / "configurations" / "config_default").write_text(
        "[core]\nproject = from-gcloud\n[dataproc]\nregion = southamerica-east1\n")
    assert (resolve_project(None), resolve_region(None)) == ("from-gcloud", "southamerica-east1")


def test_aws_region_comes_from_the_environment_or_the_aws_config(no_cloud_env, tmp_path):
    with pytest.raises(ValueError, match="no AWS region: pass --region, set AWS_REGION"):
        resolve_aws_region(None)
    (tmp_path / "aws-config").write_text("[default]\nregion = ap-south-1\n")
    assert resolve_aws_region(None) == "ap-south-1"
    no_cloud_env.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    assert resolve_aws_region(None) == "eu-north-1"
    no_cloud_env.setenv("AWS_REGION", "eu-west-3")
    assert resolve_aws_region(None) == "eu-west-3"
    assert resolve_aws_region("us-west-2") == "us-west-2"


def test_submit_without_a_region_is_one_line_naming_what_to_set(no_cloud_env):
    no_cloud_env.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(app, ["submit", "emr", "build", "--staging", "s3://b/c", "--cluster-id", "j-1",
                                      "--no-env", "--dry-run"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "error: no AWS region: pass --region, set AWS_REGION, or run `aws configure set region REGION`"]
    result = CliRunner().invoke(app, ["submit", "dataproc", "build", "--staging", "gs://b/c", "--cluster", "c",
                                      "--no-env", "--dry-run"])
    assert result.exit_code == 2 and "no GCP project" in result.output


def test_dataproc_status_and_logs_requests(no_cloud_env):
    assert get_job_request("p", "r", "job-1") == dataproc_v1.GetJobRequest(project_id="p", region="r",
                                                                           job_id="job-1")
    assert get_batch_request("p", "r", "b-1").name == "projects/p/locations/r/batches/b-1"
    runner = CliRunner()
    result = runner.invoke(app, ["jobs", "status", "job-1", "--on", "dataproc", "--project", "p", "--region", "r",
                                 "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "gcloud dataproc jobs describe job-1 --region=r --project=p"
    assert "console.cloud.google.com/dataproc/jobs/job-1" in result.output
    no_cloud_env.setenv("GOOGLE_CLOUD_PROJECT", "p2")
    no_cloud_env.setenv("CLOUDSDK_DATAPROC_REGION", "r2")
    result = runner.invoke(app, ["jobs", "logs", "b-1", "--on", "dataproc-batch", "--dry-run"])
    assert result.output.splitlines()[0] == "gcloud dataproc batches wait b-1 --region=r2 --project=p2"
    bad = runner.invoke(app, ["jobs", "status", "x", "--on", "yarn"])
    assert bad.exit_code != 0 and "--on takes one of" in bad.output


def test_ray_dry_run_prints_the_request_without_sending():
    runner = CliRunner()
    result = runner.invoke(app, ["submit", "ray", "--dry-run", "--", "rexbert", "pretrain", "--phase", "general"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output.split("\n", 1)[1])
    assert body["entrypoint"] == "rexbert pretrain --phase general"
    assert ".venv" in body["runtime_env"]["excludes"]
