"""What every managed-Spark path shares (Dataproc jobs and batches, EMR steps, EMR Serverless): staging the
files a job needs, the Python environment's Spark properties, event logs, and the submission record.

A submission is built first and sent second. Building it is local and offline: it zips the code, writes the
requirements file, fills the templates and makes the real request objects (google.cloud.dataproc_v1
messages, boto3 parameters checked against botocore's service model). Sending uploads the files and calls
the APIs. `--dry-run` prints the submission as the command lines an operator would type instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.cloud.cli_lines import comment, shell_line
from infra.cloud.packaging import build_py_files_zip, join_uri, spark_executor_requirements, spark_main_file
from infra.core import fs
from infra.core.config import load_config, redact

# `--archives URI#environment` unpacks the packed venv as ./environment in every container's working folder.
ENV_ALIAS = "environment"
ENV_PYTHON = f"./{ENV_ALIAS}/bin/python"
CODE_ZIP = "rexbert-pyfiles.zip"
REQUIREMENTS_FILE = "rexbert-requirements.txt"


@dataclass
class Action:
    """One API call: the request as it is sent, and the command line an operator would type for it."""

    name: str  # the API method, e.g. "submit_job", "create_batch", "add_job_flow_steps", "start_job_run"
    request: Any
    argv: list[str]
    printable_argv: list[str]  # the same line built from the redacted request: no credential in it

    @classmethod
    def of(cls, name: str, request: Any, to_argv: Callable[[Any], list[str]],
           redacted: Callable[[Any], Any] = redact) -> Action:
        return cls(name, request, to_argv(request), to_argv(redacted(request)))


@dataclass
class CloudSubmission:
    """The files to upload (local path -> URI), the API calls in order, and where to watch the job."""

    uploads: dict[str, str]
    actions: list[Action]
    upload_argv: Callable[[str, str], list[str]]
    links: dict[str, str] = field(default_factory=dict)

    def action(self, name: str) -> Action:
        return next(a for a in self.actions if a.name == name)

    def dry_run_lines(self) -> list[str]:
        """A runnable shell script: the uploads, the calls, then the links as comments."""
        lines = [shell_line(self.upload_argv(local, uri)) for local, uri in self.uploads.items()]
        lines += [shell_line(action.printable_argv) for action in self.actions]
        lines += [comment(label, url) for label, url in self.links.items()]
        return lines


@dataclass
class StagedJob:
    """A Spark job's files once staged: what to upload and the URIs the request names."""

    uploads: dict[str, str]
    main_uri: str
    py_files_uri: str
    args: list[str]
    config_path: str | None  # the local run config named by `--config`, when there is one


def stage_job(job: str, job_args: list[str], staging: str, work_dir: str | Path) -> StagedJob:
    """The entry point, the code zip and a local `--config` file, each given its URI under `staging`.

    A job argument `--config run.yaml` naming a local file is uploaded and rewritten to its URI: the driver
    runs on the cluster, where the local path means nothing. A URI (`gs://`, `s3://`) is left as it is."""
    main = spark_main_file(job)
    zip_path = build_py_files_zip(Path(work_dir) / CODE_ZIP)
    uploads = {str(zip_path): join_uri(staging, CODE_ZIP), str(main): join_uri(staging, main.name)}
    args, config_path = _rewrite_config_arg(list(job_args), staging)
    if config_path is not None:
        uploads[config_path] = join_uri(staging, Path(config_path).name)
    return StagedJob(uploads, uploads[str(main)], uploads[str(zip_path)], args, config_path)


def _rewrite_config_arg(args: list[str], staging: str) -> tuple[list[str], str | None]:
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            value, replace = args[i + 1], lambda uri, i=i: [*args[: i + 1], uri, *args[i + 2:]]
        elif arg.startswith("--config="):
            value, replace = arg.split("=", 1)[1], lambda uri, i=i: [*args[:i], f"--config={uri}", *args[i + 1:]]
        else:
            continue
        if fs.is_remote(value) and fs.scheme(value) != "file":
            return args, None
        local = fs.local_path(value)
        if not local.is_file():
            raise ValueError(f"--config {value}: no such file")
        return replace(join_uri(staging, local.name)), str(local.resolve())
    return args, None


def event_log_dir_of(option: str | None, config_path: str | None) -> str | None:
    """The history server's folder: `--event-log-dir`, else the local run config's `spark.event_log_dir` (a config
    already at a URI is not read here; the job applies its `spark.event_log_dir` itself when it starts)."""
    directory = option
    if directory is None and config_path is not None:
        directory = load_config(config_path).spark.event_log_dir
    if directory is not None and not fs.is_remote(directory):
        raise ValueError(f"event log dir {directory!r} must be a URI the cluster can write (gs://, s3://, hdfs://)")
    return directory


def event_log_properties(directory: str | None) -> dict[str, str]:
    if directory is None:
        return {}
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": directory}


def env_archive_properties() -> dict[str, str]:
    """Driver and executors run the unpacked venv's Python (the driver too: it runs in a cluster container)."""
    return {"spark.pyspark.python": ENV_PYTHON, "spark.pyspark.driver.python": ENV_PYTHON}


def stage_env_archive(env_archive: str | Path | None, staging: str, uploads: dict[str, str]) -> str | None:
    """Add the packed environment to the uploads; its `URI#environment` for `--archives`, or None without one."""
    if env_archive is None:
        return None
    path = Path(env_archive)
    if not path.is_file():
        raise ValueError(f"--env-archive {env_archive}: no such file")
    uri = join_uri(staging, f"env/{path.name}")
    uploads[str(path.resolve())] = uri
    return f"{uri}#{ENV_ALIAS}"


def write_requirements(work_dir: str | Path) -> Path:
    """The executors' pins (pyproject.toml, through `spark_executor_requirements`) as a pip requirements file."""
    path = Path(work_dir) / REQUIREMENTS_FILE
    path.write_text("\n".join(spark_executor_requirements()) + "\n")
    return path


def merged_properties(*parts: dict[str, str]) -> dict[str, str]:
    """Later parts win: the environment's and event-log properties first, the user's `--conf` last."""
    merged: dict[str, str] = {}
    for part in parts:
        merged.update(part)
    return merged


@functools.cache
def _service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def validate_boto_request(service: str, operation: str, params: dict[str, Any]) -> None:
    """Check boto3 parameters against botocore's model of the operation (names, types, required fields),
    the same check boto3 runs before sending; raises ValueError naming what is wrong."""
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    shape = _service_model(service).operation_model(operation).input_shape
    try:
        validate_parameters(params, shape)
    except ParamValidationError as err:
        raise ValueError(f"{service} {operation} request is invalid: {err}") from None
