"""`rexbert submit spark`: run a corpus Spark job through spark-submit on any cluster this machine can reach.

A standalone master (`spark://HOST:7077`), YARN (`yarn`, from an edge node with HADOOP_CONF_DIR), Kubernetes
(`k8s://https://...`): spark-submit does the talking; this module builds its command line. The job gets

- the project's code as `--py-files` (the zip of corpus/, spark_jobs/, infra/core/),
- the executors' Python environment as `--archives ENV.tar.gz#environment` (a venv-pack archive of the pinned
  executor requirements, built once and cached by content; see `infra.cloud.packaging`), with
  `spark.pyspark.python=./environment/bin/python` so the executors run the unpacked interpreter,
- the master and deploy mode given here: the job itself never picks a master under spark-submit
  (`spark_jobs.session.launched_by_spark_submit`).

`--dry-run` prints the spark-submit line instead of running it. spark-submit's own log (Spark's INFO/WARN lines)
goes to a log file; the job's output and the last lines of the log on a failure go to the console.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from infra.cloud.packaging import build_py_files_zip, spark_main_file
from infra.core.config import check_spark_master

ENV_ALIAS = "environment"  # the folder the archive unpacks into, in each executor's (and a cluster driver's) cwd


@dataclass
class SparkSubmission:
    """One spark-submit call: its argv and the environment variables it needs on top of this process's."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def shell_line(self) -> str:
        """What an operator would type: the variables, then the quoted command."""
        prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(self.env.items()))
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


def spark_submit_binary() -> str:
    """spark-submit on PATH (a Spark install, a cluster's edge node), else the one inside the pyspark package."""
    found = shutil.which("spark-submit")
    if found:
        return found
    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def build_spark_submission(
    job: str,
    job_args: list[str],
    master: str,
    py_files: str | Path,
    env_archive: str | Path | None,
    deploy_mode: str = "client",
    conf: dict[str, str] | None = None,
    executor_memory: str | None = None,
    executor_cores: int | None = None,
    total_executor_cores: int | None = None,
    event_log_dir: str | None = None,
    driver_python: str = sys.executable,
) -> SparkSubmission:
    """The spark-submit command for `spark_jobs/<job>_job.py` (built, not run)."""
    master = check_spark_master(master)
    if deploy_mode not in ("client", "cluster"):
        raise ValueError(f"--deploy-mode is client or cluster, got {deploy_mode!r}")
    if deploy_mode == "cluster" and master.startswith("spark://"):
        raise ValueError("standalone masters run Python jobs in client mode only")
    argv = [spark_submit_binary(), "--master", master, "--deploy-mode", deploy_mode, "--name", f"rexbert-{job}",
            "--py-files", str(py_files)]
    settings: dict[str, str] = {}
    if env_archive is not None:
        argv += ["--archives", f"{env_archive}#{ENV_ALIAS}"]
        settings["spark.pyspark.python"] = f"./{ENV_ALIAS}/bin/python"
        if deploy_mode == "client":  # the driver runs here, on this machine's Python (the project's venv)
            settings["spark.pyspark.driver.python"] = driver_python
    if executor_memory:
        argv += ["--executor-memory", executor_memory]
    if executor_cores:
        argv += ["--executor-cores", str(executor_cores)]
    if total_executor_cores:
        argv += ["--total-executor-cores", str(total_executor_cores)]
    if event_log_dir:
        settings["spark.eventLog.enabled"] = "true"
        settings["spark.eventLog.dir"] = event_log_dir
    settings.update(conf or {})
    for key, value in sorted(settings.items()):
        argv += ["--conf", f"{key}={value}"]
    argv += [str(spark_main_file(job)), *job_args]
    env = {}
    host = master.removeprefix("spark://").split(":")[0]
    if host in ("127.0.0.1", "localhost"):
        env["SPARK_LOCAL_IP"] = "127.0.0.1"  # a cluster on this machine: the driver listens on loopback only
    return SparkSubmission(argv=argv, env=env)


def ui_links(master: str, event_log_dir: str | None) -> list[str]:
    """Where to watch the job: the driver's UI while it runs, the master's UI, the history server afterwards."""
    links = ["Spark UI (driver, while the job runs): http://<driver-host>:4040 (the next free port if taken)"]
    if master.startswith("spark://"):
        host = master.removeprefix("spark://").split(",")[0].split(":")[0]
        links.append(f"standalone master UI: http://{host}:8080 (its --webui-port)")
    elif master == "yarn":
        links.append("YARN ResourceManager UI: http://<resourcemanager>:8088 (the application's tracking URL)")
    if event_log_dir:
        links.append(f"history server: spark-history-server with spark.history.fs.logDirectory={event_log_dir}")
    return links


def code_zip(work_dir: str | Path | None = None) -> Path:
    """The code zip in a fresh folder (it is small and deterministic: built for every submission)."""
    folder = Path(work_dir or tempfile.mkdtemp(prefix="rexbert-spark-"))
    return build_py_files_zip(folder / "rexbert-pyfiles.zip")


def run_spark_submission(submission: SparkSubmission, log_file: str | Path, tail_lines: int = 25) -> int:
    """Run spark-submit: the job's stdout to the console, Spark's stderr log to `log_file` (the last lines are
    echoed when it fails). Returns spark-submit's exit status."""
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        proc = subprocess.run(submission.argv, env={**os.environ, **submission.env}, stdout=None, stderr=log)
    if proc.returncode != 0:
        lines = log_file.read_text(errors="replace").splitlines()[-tail_lines:]
        print("\n".join(lines), file=sys.stderr)
    return proc.returncode
