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

Quiet console (`log_dir`, local sessions only): Spark's own logs go to files, not the terminal. A log4j2
configuration written to `<log_dir>/log4j2.properties` sends every logger at INFO and above to
`<log_dir>/spark.log` (and errors only to the console); the console progress bars are off; and the JVM's own
standard streams (the launcher's banner, JVM warnings) go to `<log_dir>/spark-jvm.out`. The JVM reads both when
it starts, so they apply to the first session of a process (PySpark keeps one JVM per process). A failed job
still raises in Python with the Java error.

A `spark.conf` value written `env:NAME` is read from the environment here, when the session is built
(a credential such as `spark.hadoop.fs.s3a.secret.key: env:AWS_SECRET_ACCESS_KEY`), so the value itself
is in no config file, manifest or log line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from pyspark.sql import SparkSession

from infra.core import fs
from infra.core.config import RexbertConfig, SparkConfig, check_spark_master, resolve_env, write_resolved_config
from infra.core.outputs import record_ctrl_c

LOOPBACK = "127.0.0.1"
SPARK_LOG_NAME = "spark.log"
JVM_OUTPUT_NAME = "spark-jvm.out"
# Spark's own defaults (log4j2-defaults.properties) quiet these; a file at INFO would be mostly their chatter.
QUIET_LOGGERS = {"org.sparkproject.jetty": "warn", "org.apache.parquet": "error", "parquet": "error",
                 "org.apache.hadoop.hive": "error", "org.apache.spark.repl.Main": "warn"}


def write_log4j_config(log_dir: str | Path) -> Path:
    """`<log_dir>/log4j2.properties`: every logger at INFO to `<log_dir>/spark.log`, errors only to the console."""
    folder = Path(log_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    pattern = "%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex"
    lines = [
        "status = error",
        "appender.file.type = File", "appender.file.name = file",
        f"appender.file.fileName = {folder / SPARK_LOG_NAME}",
        "appender.file.layout.type = PatternLayout", f"appender.file.layout.pattern = {pattern}",
        "appender.console.type = Console", "appender.console.name = console", "appender.console.target = SYSTEM_ERR",
        "appender.console.layout.type = PatternLayout", f"appender.console.layout.pattern = {pattern}",
        "appender.console.filter.threshold.type = ThresholdFilter",
        "appender.console.filter.threshold.level = error",
        "rootLogger.level = info",
        "rootLogger.appenderRef.file.ref = file", "rootLogger.appenderRef.console.ref = console",
    ]
    for i, (name, level) in enumerate(QUIET_LOGGERS.items()):
        lines += [f"logger.quiet{i}.name = {name}", f"logger.quiet{i}.level = {level}"]
    path = folder / "log4j2.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def jvm_output_to(path: Path) -> Iterator[None]:
    """While a JVM is launched: this process's stdout and stderr descriptors point at `path`, so the child
    inherits them (PySpark starts the JVM with the parent's streams and no option to change them)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with path.open("ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _jvm_running() -> bool:
    from pyspark import SparkContext

    return SparkContext._gateway is not None


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
    log_dir: str | Path | None = None,
) -> SparkSession:
    """Get or create a session. Under spark-submit the master is spark-submit's (see the module docstring);
    elsewhere `master` is used, and a local one gets the machine-specific environment first. A master that is
    not a Spark master URL (empty, mistyped) is refused before the JVM starts, never taken for a cluster's.

    Args:
        log_dir: a local folder for Spark's logs (quiet console, see the module docstring); local sessions only.
    """
    master = check_spark_master(master)
    builder = SparkSession.builder.appName(app_name)
    quiet = log_dir is not None and master.startswith("local") and not launched_by_spark_submit()
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
            .config("spark.ui.showConsoleProgress", "false" if quiet else "true")
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
    java_options = (conf or {}).get("spark.driver.extraJavaOptions", "")
    for key, value in (conf or {}).items():
        builder = builder.config(key, resolve_env(value, f"spark.conf.{key}"))
    launch = nullcontext()
    if quiet:
        properties = write_log4j_config(log_dir)
        option = f"-Dlog4j2.configurationFile={properties.as_uri()}"
        builder = builder.config("spark.driver.extraJavaOptions", f"{java_options} {option}".strip())
        if not _jvm_running():
            launch = jvm_output_to(properties.parent / JVM_OUTPUT_NAME)
    with launch:
        spark = builder.getOrCreate()
    record_ctrl_c()  # pyspark replaced the Ctrl-C handler: a stop signal is recorded through its handler too
    if not quiet:
        spark.sparkContext.setLogLevel("WARN")  # quiet: the log4j2 file decides (INFO to the file)
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
    app_name: str, spark_config: SparkConfig, output_root: str | Path | None = None,
    log_dir: str | Path | None = None,
) -> SparkSession:
    """Build a session from the `spark:` section of a run config; event logs go to `spark.event_log_dir`,
    else (a local run) `<output_root>/spark-events` for a local output root (none for an object store);
    Spark's own logs to `log_dir` when given (see `build_spark_session`)."""
    # Under spark-submit only an explicit folder is applied: a cluster's own history-server folder stays as it is.
    event_dir = spark_config.event_log_dir if launched_by_spark_submit() else spark_config.event_logs_for(output_root)
    return build_spark_session(
        app_name,
        master=spark_config.master,
        driver_memory=spark_config.driver_memory,
        shuffle_partitions=spark_config.shuffle_partitions,
        event_log_dir=event_dir,
        conf=spark_config.conf,
        log_dir=log_dir,
    )


@contextmanager
def stage_session(app_name: str, spark_config: SparkConfig, output_root: str | Path | None = None,
                  spark: SparkSession | None = None, log_dir: str | Path | None = None) -> Iterator[SparkSession]:
    """The session a stage runs in: `spark` when given, else the active one (a notebook's, a test's, the
    demo's: reused and left running), else a new one from the config (Spark's logs in `log_dir` when given),
    stopped at the end."""
    session = spark or SparkSession.getActiveSession()
    if session is not None:
        yield session
        return
    session = spark_session_from_config(app_name, spark_config, output_root, log_dir=log_dir)
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
