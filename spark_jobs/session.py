"""A Spark session for local runs and clusters alike.

Which master: under `spark-submit` (a standalone cluster through `rexbert submit spark`, YARN on Dataproc or
EMR, Kubernetes, EMR Serverless) the master is the one spark-submit or the cluster sets, always: the config's
`spark.master` is not applied there. Anywhere else (the CLI, a plain `python` run) the session is local, on
`spark.master` (default `local[*]`): local mode happens only then.

Locally it sets what Spark needs on this kind of machine: the workers' Python is this
interpreter (`PYSPARK_PYTHON`), and event logs are on so `spark-history-server` can show finished
jobs. A local session listens on 127.0.0.1 only: the UI (Spark binds it to `SPARK_LOCAL_IP`, else to
every interface), the driver's RPC and the block manager (`spark.driver.host` / `bindAddress`). On a
cluster the cluster's own settings win: only the app name, the event log folder and explicit conf are applied.

A `spark.conf` value written `env:NAME` is read from the environment here, when the session is built
(a credential such as `spark.hadoop.fs.s3a.secret.key: env:AWS_SECRET_ACCESS_KEY`), so the value itself
is in no config file, manifest or log line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

from infra.core import fs
from infra.core.config import RexbertConfig, SparkConfig, check_spark_master, resolve_env, write_resolved_config

LOOPBACK = "127.0.0.1"


def launched_by_spark_submit() -> bool:
    """True when this Python driver was started by spark-submit (the JVM came first and handed us its gateway),
    so the master and deploy mode are spark-submit's, not ours to choose."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark_session(
    app_name: str,
    master: str = "local[*]",
    driver_memory: str = "2g",
    shuffle_partitions: int = 8,
    event_log_dir: str | Path | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """Get or create a session. Under spark-submit the master is spark-submit's (see the module docstring);
    elsewhere `master` is used, and a local one gets the machine-specific environment first. A master that is
    not a Spark master URL (empty, mistyped) is refused before the JVM starts, never taken for a cluster's."""
    master = check_spark_master(master)
    builder = SparkSession.builder.appName(app_name)
    if launched_by_spark_submit():
        pass  # spark-submit's master, deploy mode and resources
    elif master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        # Not setdefault: a SPARK_LOCAL_IP left in the shell (0.0.0.0, the LAN address) would open the UI.
        os.environ["SPARK_LOCAL_IP"] = LOOPBACK
        builder = (
            builder.master(master)
            .config("spark.driver.memory", driver_memory)
            .config("spark.driver.host", LOOPBACK)
            .config("spark.driver.bindAddress", LOOPBACK)
            .config("spark.ui.showConsoleProgress", "true")
        )
    else:
        builder = builder.master(master)  # a cluster named in the config, from a plain `python` driver
    if event_log_dir is not None:  # the history server's folder: local, or gs://, s3://, hdfs://
        if not fs.is_remote(event_log_dir):
            local_dir = Path(event_log_dir).resolve()
            local_dir.mkdir(parents=True, exist_ok=True)
            event_log_dir = local_dir.as_uri()
        builder = builder.config("spark.eventLog.enabled", "true").config("spark.eventLog.dir", str(event_log_dir))
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    builder = builder.config("spark.sql.parquet.compression.codec", "zstd")
    for key, value in (conf or {}).items():
        builder = builder.config(key, resolve_env(value, f"spark.conf.{key}"))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def spark_session(app_name: str, **kwargs) -> Iterator[SparkSession]:
    """A session that is stopped on exit, so the JVM does not outlive the job."""
    spark = build_spark_session(app_name, **kwargs)
    try:
        yield spark
    finally:
        spark.stop()


def spark_session_from_config(
    app_name: str, spark_config: SparkConfig, output_root: str | Path | None = None
) -> SparkSession:
    """Build a session from the `spark:` section of a run config; event logs go to `spark.event_log_dir`,
    else (a local run) `<output_root>/spark-events` for a local output root (none for an object store)."""
    # Under spark-submit only an explicit folder is applied: a cluster's own history-server folder stays as it is.
    event_dir = spark_config.event_log_dir if launched_by_spark_submit() else spark_config.event_logs_for(output_root)
    return build_spark_session(
        app_name,
        master=spark_config.master,
        driver_memory=spark_config.driver_memory,
        shuffle_partitions=spark_config.shuffle_partitions,
        event_log_dir=event_dir,
        conf=spark_config.conf,
    )


@contextmanager
def stage_session(app_name: str, spark_config: SparkConfig, output_root: str | Path | None = None,
                  spark: SparkSession | None = None) -> Iterator[SparkSession]:
    """The session a stage runs in: `spark` when given, else the active one (a notebook's, a test's, the
    demo's: reused and left running), else a new one from the config, stopped at the end."""
    session = spark or SparkSession.getActiveSession()
    if session is not None:
        yield session
        return
    session = spark_session_from_config(app_name, spark_config, output_root)
    try:
        yield session
    finally:
        session.stop()


def run_stage_job(app_name: str, config: RexbertConfig, output: str, run: Callable[[SparkSession], dict]) -> dict:
    """One Spark stage on its own (a spark-submit entry point, a CLI command): its session, the stage, then
    the run's `config.resolved.yaml` beside the stage's output (the stage itself sees only its section).
    Event logs go where `spark.event_log_dir` says (none by default: nothing is written beside the output)."""
    with stage_session(app_name, config.spark) as spark:
        manifest = run(spark)
    write_resolved_config(config, output)
    return manifest
