"""The command lines `rexbert submit ... --dry-run` prints: parsed back with shlex, each flag must carry the value
of the request field it stands for, and no credential may be printed. (Running the aws lines for real, against
moto, is in test_cloud_submission.py.)"""

from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.cloud.cli_lines import gcloud_list, gcloud_map, parse_gcloud_list, parse_gcloud_map, shell_line
from infra.cloud.dataproc import build_dataproc_batch, build_dataproc_submission
from infra.cloud.emr import build_emr_submission
from infra.cloud.emr_serverless import build_emr_serverless_submission

SECRET = "AKIA-very-secret-value"
ROLE = "arn:aws:iam::123456789012:role/rexbert"


def parse_gcloud(line: str) -> tuple[list[str], dict[str, str], list[str]]:
    """(command words and positionals, --flag=value pairs, job arguments after `--`) of a gcloud line."""
    words = shlex.split(line)
    job_args = words[words.index("--") + 1:] if "--" in words else []
    words = words[: words.index("--")] if "--" in words else words
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    return [w for w in words if not w.startswith("--")], flags, job_args


def parse_aws(line: str) -> tuple[list[str], dict[str, str | list[str] | bool]]:
    """(command words, flags) of an aws line; a flag followed by another flag is a switch (True); `--tags a=b c=d`
    takes every value up to the next flag."""
    words = shlex.split(line)
    command = words[: next(i for i, w in enumerate(words) if w.startswith("--"))]
    flags: dict = {}
    i = len(command)
    while i < len(words):
        name, values = words[i][2:], []
        i += 1
        while i < len(words) and not words[i].startswith("--"):
            values.append(words[i])
            i += 1
        flags[name] = True if not values else values[0] if len(values) == 1 else values
    return command, flags


@pytest.fixture
def fake_env(tmp_path):
    path = tmp_path / "env.tar.gz"
    path.write_bytes(b"stand-in")
    return path


@pytest.mark.parametrize("values", [["a", "b"], ["k=v,w", "x"], ["a,b#c", "d|e"]])
def test_gcloud_lists_round_trip_even_with_commas(values):
    assert parse_gcloud_list(gcloud_list(values)) == values
    pairs = {f"k{i}": v for i, v in enumerate(values)}
    assert parse_gcloud_map(gcloud_map(pairs)) == pairs


def test_shell_lines_round_trip_any_argument():
    argv = ["aws", "--x", "it's", 'a "b"', "$HOME", "a b;c", "#environment"]
    assert shlex.split(shell_line(argv)) == argv


def test_dataproc_job_line_carries_the_request(tmp_path, fake_env):
    submission = build_dataproc_submission(
        "dedup", ["--input", "gs://b/in", "--output", "gs://b/out"], "proj", "europe-west4", "corpus",
        "gs://stage/code", tmp_path, env_archive=fake_env, event_log_dir="gs://history/ev",
        spark_conf={"spark.driver.extraJavaOptions": "-Da=1,2", "spark.executor.memory": "8g"},
    )
    lines = submission.dry_run_lines()
    uploads = [shlex.split(line) for line in lines if line.startswith("gcloud storage cp")]
    assert {argv[3]: argv[4] for argv in uploads} == submission.uploads
    (job_line,) = [line for line in lines if "jobs submit pyspark" in line]
    words, flags, job_args = parse_gcloud(job_line)
    request = submission.action("submit_job").request
    job, pyspark = request.job, request.job.pyspark_job
    assert words[:5] == ["gcloud", "dataproc", "jobs", "submit", "pyspark"]
    assert words[5] == pyspark.main_python_file_uri
    assert (flags["cluster"], flags["region"], flags["project"], flags["id"]) == (
        job.placement.cluster_name, request.region, request.project_id, job.reference.job_id)
    assert parse_gcloud_list(flags["py-files"]) == list(pyspark.python_file_uris)
    assert parse_gcloud_list(flags["archives"]) == list(pyspark.archive_uris)
    assert parse_gcloud_map(flags["properties"]) == dict(pyspark.properties)
    assert parse_gcloud_map(flags["labels"]) == dict(job.labels)
    assert job_args == list(pyspark.args)
    assert "jars" not in flags  # no field, no flag
    assert lines[-2:] == [f"# Dataproc job: {submission.links['Dataproc job']}",
                          f"# Spark history (cluster web interfaces): "
                          f"{submission.links['Spark history (cluster web interfaces)']}"]


def test_dataproc_create_cluster_line_imports_the_filled_template(tmp_path):
    submission = build_dataproc_submission("build", [], "proj", "us-east1", "corpus", "gs://stage/code", tmp_path,
                                           create_cluster=True)
    lines = submission.dry_run_lines()
    create = next(shlex.split(line) for line in lines if "clusters import" in line)
    words, flags, _ = parse_gcloud(shell_line(create))
    request = submission.action("create_cluster").request
    assert words == ["gcloud", "dataproc", "clusters", "import", request.cluster.cluster_name]
    assert (flags["region"], flags["project"]) == (request.region, request.project_id)
    # the cluster is created before the job is submitted to it
    assert lines.index(shell_line(create)) < next(i for i, line in enumerate(lines) if "jobs submit" in line)


def test_dataproc_batch_line_carries_the_request(tmp_path, fake_env):
    submission = build_dataproc_batch(
        "extract", ["--input", "gs://b/warc"], "proj", "us-central1", "gs://stage/code", tmp_path,
        env_archive=fake_env, version="2.2", history_server_cluster="history", service_account="sa@p.iam",
        container_image="us-docker.pkg.dev/proj/r/spark:1",
    )
    (line,) = [line for line in submission.dry_run_lines() if "batches submit pyspark" in line]
    words, flags, job_args = parse_gcloud(line)
    request = submission.action("create_batch").request
    batch = request.batch
    assert words[5] == batch.pyspark_batch.main_python_file_uri
    assert flags["batch"] == request.batch_id and f"projects/{flags['project']}/locations/{flags['region']}" == \
        request.parent
    assert flags["version"] == batch.runtime_config.version == "2.2"
    assert flags["container-image"] == batch.runtime_config.container_image
    assert parse_gcloud_list(flags["archives"]) == list(batch.pyspark_batch.archive_uris)
    assert parse_gcloud_list(flags["py-files"]) == list(batch.pyspark_batch.python_file_uris)
    assert parse_gcloud_map(flags["properties"]) == dict(batch.runtime_config.properties)
    assert flags["history-server-cluster"] == \
        batch.environment_config.peripherals_config.spark_history_server_config.dataproc_cluster
    assert flags["service-account"] == batch.environment_config.execution_config.service_account
    assert flags["staging-bucket"] == "stage"
    assert job_args == list(batch.pyspark_batch.args)


def _api_step(cli_step: dict) -> dict:
    """What the aws CLI makes of a CUSTOM_JAR step (awscli/customizations/emr/steputils.py)."""
    return {"Name": cli_step["Name"], "ActionOnFailure": cli_step["ActionOnFailure"],
            "HadoopJarStep": {"Jar": cli_step["Jar"], "Args": cli_step["Args"]}}


def test_emr_add_steps_line_carries_the_request(tmp_path, fake_env):
    submission = build_emr_submission("filter", ["--input", "s3://d/in"], "s3://stage/code", "j-ABC", tmp_path,
                                      "eu-west-1", env_archive=fake_env)
    lines = submission.dry_run_lines()
    uploads = [shlex.split(line) for line in lines if line.startswith("aws s3 cp")]
    assert {argv[3]: argv[4] for argv in uploads} == submission.uploads
    (line,) = [line for line in lines if "add-steps" in line]
    command, flags = parse_aws(line)
    request = submission.action("add_job_flow_steps").request
    assert command == ["aws", "emr", "add-steps"]
    assert flags["cluster-id"] == request["JobFlowId"] and flags["region"] == "eu-west-1"
    assert [_api_step(s) for s in json.loads(flags["steps"])] == request["Steps"]
    assert lines[-1] == "# EMR cluster: https://eu-west-1.console.aws.amazon.com/emr/home?region=eu-west-1" \
                        "#/clusterDetails/j-ABC"


def test_emr_create_cluster_line_carries_the_request(tmp_path):
    submission = build_emr_submission("build", [], "s3://stage/code", None, tmp_path, "us-west-2",
                                      create_cluster=True)
    (line,) = [line for line in submission.dry_run_lines() if "create-cluster" in line]
    command, flags = parse_aws(line)
    request = submission.action("run_job_flow").request
    assert command == ["aws", "emr", "create-cluster"]
    groups = [{"Name": g["Name"], "InstanceRole": g["InstanceGroupType"], "InstanceType": g["InstanceType"],
               "InstanceCount": g["InstanceCount"], "Market": "SPOT" if "BidPrice" in g else "ON_DEMAND"}
              for g in json.loads(flags["instance-groups"])]
    rebuilt = {
        "Name": flags["name"], "ReleaseLabel": flags["release-label"], "LogUri": flags["log-uri"],
        "ServiceRole": flags["service-role"], "Applications": json.loads(flags["applications"]),
        "Configurations": json.loads(flags["configurations"]),
        "JobFlowRole": json.loads(flags["ec2-attributes"])["InstanceProfile"],
        "Instances": {"InstanceGroups": groups, "KeepJobFlowAliveWhenNoSteps": "no-auto-terminate" in flags,
                      "TerminationProtected": "termination-protected" in flags},
        "BootstrapActions": [{"Name": b["Name"], "ScriptBootstrapAction": {"Path": b["Path"], "Args": b["Args"]}}
                             for b in json.loads(flags["bootstrap-actions"])],
        "Steps": [_api_step(s) for s in json.loads(flags["steps"])],
        "VisibleToAllUsers": "visible-to-all-users" in flags,
        "Tags": [dict(zip(("Key", "Value"), t.split("=", 1), strict=True)) for t in
                 ([flags["tags"]] if isinstance(flags["tags"], str) else flags["tags"])],
    }
    assert rebuilt == request and flags["region"] == "us-west-2"


def test_emr_serverless_line_carries_the_request(tmp_path, fake_env):
    submission = build_emr_serverless_submission("dedup", ["--input", "s3://d/in"], "s3://stage/code", "00abc",
                                                 ROLE, tmp_path, "ap-south-1", env_archive=fake_env)
    lines = submission.dry_run_lines()
    (line,) = [line for line in lines if "start-job-run" in line]
    command, flags = parse_aws(line)
    request = submission.action("start_job_run").request
    assert command == ["aws", "emr-serverless", "start-job-run"]
    assert json.loads(flags["job-driver"]) == request["jobDriver"]
    assert json.loads(flags["configuration-overrides"]) == request["configurationOverrides"]
    assert json.loads(flags["tags"]) == request["tags"]
    assert (flags["application-id"], flags["execution-role-arn"], flags["client-token"], flags["name"]) == (
        request["applicationId"], request["executionRoleArn"], request["clientToken"], request["name"])
    assert flags["region"] == "ap-south-1"
    assert any(line.startswith("# EMR Serverless application: https://ap-south-1.console.aws.amazon.com/")
               for line in lines)


SUBMITS = {
    "dataproc": ["--project", "p", "--region", "us-central1", "--cluster", "c", "--staging", "gs://b/code"],
    "dataproc-batch": ["--project", "p", "--region", "us-central1", "--staging", "gs://b/code"],
    "emr": ["--cluster-id", "j-1", "--region", "us-east-1", "--staging", "s3://b/code"],
    "emr-serverless": ["--application-id", "00abc", "--execution-role-arn", ROLE, "--region", "us-east-1",
                       "--staging", "s3://b/code"],
}


@pytest.mark.parametrize("command", sorted(SUBMITS))
def test_dry_runs_print_runnable_lines_without_credentials(command, fake_env):
    result = CliRunner().invoke(app, [
        "submit", command, "dedup", *SUBMITS[command], "--env-archive", str(fake_env),
        "--conf", f"spark.hadoop.fs.s3a.secret.key={SECRET}", "--conf", "spark.executor.memory=8g",
        "--dry-run", "--", "--input", "in", "--output", "out",
    ])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and "spark.hadoop.fs.s3a.secret.key=<redacted>" in result.output
    assert "spark.executor.memory=8g" in result.output
    lines = result.output.strip().splitlines()
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    tool = "gcloud" if command.startswith("dataproc") else "aws"
    assert all(argv[0] == tool for argv in commands)
    uploaded = [argv[-1] for argv in commands if argv[1:3] in (["storage", "cp"], ["s3", "cp"])]
    assert any(uri.endswith(f"/env/{fake_env.name}") for uri in uploaded)  # the environment travels too
    assert len(commands) == len(uploaded) + 1 and any(line.startswith("# ") for line in lines)


def test_no_env_and_env_archive_exclude_each_other(fake_env):
    result = CliRunner().invoke(app, ["submit", "emr", "dedup", *SUBMITS["emr"], "--env-archive", str(fake_env),
                                      "--no-env", "--dry-run"])
    assert result.exit_code != 0 and "exclude each other" in result.output
