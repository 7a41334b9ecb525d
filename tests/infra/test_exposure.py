"""Exposure: local runtimes listen on 127.0.0.1 only, Ray's token file is private, and no credential given in a
config reaches a file the platform writes or a line it prints (issue 16, "Exposure")."""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import socket
import stat
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infra.cli import app
from infra.cloud.cli_lines import parse_gcloud_map
from infra.core.config import (
    REDACTED,
    ConfigError,
    is_secret_name,
    load_config,
    redact,
    resolve_env,
    write_resolved_config,
)
from infra.core.manifest import StageStats, build_manifest, write_manifest
from ray_jobs.runtime import auth_token_path, secure_auth_token

runner = CliRunner()
PROC_NET = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column


# --- listening sockets, read from /proc (what `ss -ltnp` shows) ---------------------------------------------------


def _descendants(root: int) -> set[int]:
    """`root` and every process below it (the Spark JVM and its Python workers, Ray's GCS, raylet, agents, workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        ppid = int(stat_line.rsplit(")", 1)[1].split()[1])  # after the command name, which may hold spaces
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    return inodes


def _address(hex_address: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """`0100007F:1F90` (IPv4) or 32 hex digits (IPv6, four little-endian words) and a port, as /proc writes them."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw), int(port, 16)


def listening_sockets(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that one of `pids` holds."""
    inodes = _socket_inodes(pids)
    found = []
    for table in PROC_NET:
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                address, port = _address(fields[1])
                found.append((str(address), port))
    return sorted(found)


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1, how a dual-stack server shows a v4 bind
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def _wait_listening(port: int, timeout_s: float = 90.0) -> list[tuple[str, int]]:
    """The sockets of this process tree once `port` is among them (Ray's agents bind theirs after `ray.init`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        sockets = listening_sockets(_descendants(os.getpid()))
        if port in {p for _, p in sockets} or time.monotonic() > deadline:
            return sockets
        time.sleep(1)


# --- ports ---------------------------------------------------------------------------------------------------------


@pytest.mark.spark
@pytest.mark.ray
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux's /proc")
def test_local_ray_and_spark_listen_on_loopback_only(spark, ray_cluster):
    """Every port the local Ray cluster and the local Spark session opened (Ray's GCS, raylet, workers, dashboard,
    agents and Prometheus metrics; the Spark UI, driver RPC and block manager) is bound to 127.0.0.1: none to
    0.0.0.0, ::, or the machine's own address."""
    import ray

    # Work on both engines first, so their workers (Spark's Python daemon, Ray's worker processes) are up too.
    assert spark.sparkContext.parallelize(range(8), 2).map(lambda x: x * 2).sum() == 56
    assert ray.get(ray.remote(lambda: 1).remote()) == 1
    node = next(n for n in ray.nodes() if n["Alive"])
    assert node["NodeManagerAddress"] == "127.0.0.1"
    metrics_port = int(node["MetricsExportPort"])
    dashboard_port = int(ray.worker.get_dashboard_url().rsplit(":", 1)[1])
    ui_port = int(spark.sparkContext.uiWebUrl.rsplit(":", 1)[1])

    sockets = _wait_listening(metrics_port)
    ports = {port for _, port in sockets}
    assert {metrics_port, dashboard_port, ui_port} <= ports, sockets  # the check saw the ports the issue names
    exposed = [(address, port) for address, port in sockets if not _is_loopback(address)]
    assert exposed == [], f"listening beyond 127.0.0.1: {exposed}"
    # Prometheus (and so Grafana) still scrapes the metrics on loopback.
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as response:
        assert response.status == 200


# --- the Ray token file --------------------------------------------------------------------------------------------


@pytest.fixture
def token_home(tmp_path, monkeypatch) -> Path:
    """A home of its own: `~/.ray/auth_token` under tmp_path, no token in the environment."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    return tmp_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_missing_token_file_is_created_private(token_home):
    old_umask = os.umask(0o022)  # the usual umask, with which Ray's own file comes out 0644
    try:
        path = secure_auth_token(create=True)
    finally:
        os.umask(old_umask)
    assert path == token_home / ".ray" / "auth_token"
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0  # 256 bits in hex, as `ray get-auth-token --generate` writes


def test_an_existing_token_file_is_made_private_and_kept(token_home):
    path = token_home / ".ray" / "auth_token"
    path.parent.mkdir()
    path.write_text("a" * 64)
    path.chmod(0o644)
    assert secure_auth_token(create=True) == path
    assert _mode(path) == 0o600 and path.read_text() == "a" * 64


def test_a_token_path_from_the_environment_is_tightened_never_created(token_home, monkeypatch):
    custom = token_home / "elsewhere" / "token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(custom))
    assert secure_auth_token(create=True) is None and not custom.exists()
    custom.parent.mkdir()
    custom.write_text("b" * 64)
    custom.chmod(0o640)
    assert secure_auth_token(create=False) == custom and _mode(custom) == 0o600


def test_no_file_is_written_when_none_is_asked_for_or_the_token_is_in_the_environment(token_home, monkeypatch):
    assert secure_auth_token(create=False) is None
    monkeypatch.setenv("RAY_AUTH_TOKEN", "c" * 64)
    assert auth_token_path() is None and secure_auth_token(create=True) is None
    assert not (token_home / ".ray").exists()


@pytest.mark.ray
def test_the_token_file_of_the_running_local_cluster_is_private(ray_cluster):
    path = auth_token_path()
    if path is None:
        pytest.skip("the token is given in RAY_AUTH_TOKEN: no file")
    assert os.environ.get("RAY_AUTH_MODE") == "token"
    assert path.is_file() and _mode(path) == 0o600, oct(_mode(path))


# --- secrets in configs --------------------------------------------------------------------------------------------

SECRET_NAMES = ["spark.hadoop.fs.s3a.secret.key", "spark.hadoop.fs.s3a.access.key", "spark.hadoop.fs.s3a.session.token",
                "spark.ssl.keyStorePassword", "spark.authenticate.secret", "hf_token", "api_key", "apiKey",
                "AWS_SECRET_ACCESS_KEY", "db_password", "fs.azure.account.key.acct.blob.core.windows.net",
                "gcp_credentials"]
PLAIN_NAMES = ["mask_token_share", "random_token_share", "tokenizer", "tokenize", "warmup_tokens", "token_budget",
               "vocab_size", "spark.sql.shuffle.partitions", "spark.kerberos.keytab", "key_column", "keys", "monkey"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_credential_names_are_secret(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_names_that_merely_contain_token_or_key_are_not(name):
    assert not is_secret_name(name)


def _config_with_secrets():
    """A run config with a literal credential, one given as `env:NAME`, and an empty one in `spark.conf`."""
    return load_config(overrides={"spark": {"conf": {
        "spark.hadoop.fs.s3a.secret.key": "hunter2-literal-secret",
        "spark.hadoop.fs.s3a.access.key": "env:REXBERT_TEST_ACCESS_KEY",
        "spark.hadoop.fs.s3a.session.token": "",
        "spark.sql.adaptive.enabled": "true",
    }}})


def test_secret_assignments_inside_strings_are_redacted():
    """Command lines and spark-submit arguments carry `NAME=VALUE`: the value of a secret name goes, the rest stays."""
    args = ["--conf", "spark.hadoop.fs.s3a.secret.key=abc", "--conf", "spark.executor.memory=8g", "pwd.password=env:P"]
    assert redact({"Args": args})["Args"] == ["--conf", f"spark.hadoop.fs.s3a.secret.key={REDACTED}", "--conf",
                                              "spark.executor.memory=8g", "pwd.password=env:P"]
    line = 'rexbert x --db.password=abc --phase=general AWS_SECRET_ACCESS_KEY=xyz "--api_key=q"'
    assert redact({"entrypoint": line})["entrypoint"] == (
        f'rexbert x --db.password={REDACTED} --phase=general AWS_SECRET_ACCESS_KEY={REDACTED} "--api_key={REDACTED}"')


def test_redact_hides_literal_secrets_and_keeps_references_and_everything_else():
    config = _config_with_secrets()
    redacted = redact(config)
    conf = redacted["spark"]["conf"]
    assert conf == {"spark.hadoop.fs.s3a.secret.key": REDACTED,
                    "spark.hadoop.fs.s3a.access.key": "env:REXBERT_TEST_ACCESS_KEY",
                    "spark.hadoop.fs.s3a.session.token": "",
                    "spark.sql.adaptive.enabled": "true"}
    full = config.model_dump(mode="json")
    full["spark"]["conf"] = conf
    assert redacted == full  # only the secret changed: `mask_token_share`, `tokenizer` and the rest are intact
    assert config.spark.conf["spark.hadoop.fs.s3a.secret.key"] == "hunter2-literal-secret"  # a copy, not in place


def test_the_resolved_config_and_every_manifest_are_written_redacted(tmp_path):
    config = _config_with_secrets()
    written = Path(write_resolved_config(config, tmp_path))
    write_manifest(tmp_path, build_manifest("extract", StageStats(input=1, kept=1), config=config))
    for path in (written, tmp_path / "manifest.json"):
        text = path.read_text()
        assert "hunter2-literal-secret" not in text and REDACTED in text, path.name
        assert "env:REXBERT_TEST_ACCESS_KEY" in text, path.name
    resolved = load_config(written)  # still a valid, re-runnable config: the reference resolves where it is used
    assert resolved.spark.conf["spark.hadoop.fs.s3a.access.key"] == "env:REXBERT_TEST_ACCESS_KEY"
    assert json.loads((tmp_path / "manifest.json").read_text())["config"]["spark"]["conf"][
        "spark.hadoop.fs.s3a.secret.key"] == REDACTED


def test_env_references_resolve_from_the_environment_and_name_what_is_missing(monkeypatch):
    monkeypatch.setenv("REXBERT_TEST_ACCESS_KEY", "AKIA-from-the-environment")
    assert resolve_env("env:REXBERT_TEST_ACCESS_KEY", "spark.conf.x") == "AKIA-from-the-environment"
    assert resolve_env("plain", "spark.conf.x") == "plain"
    monkeypatch.delenv("REXBERT_TEST_ACCESS_KEY")
    with pytest.raises(ConfigError, match=r"^spark.conf.x: environment variable REXBERT_TEST_ACCESS_KEY is not set$"):
        resolve_env("env:REXBERT_TEST_ACCESS_KEY", "spark.conf.x")
    with pytest.raises(ConfigError, match="names no environment variable"):
        resolve_env("env:", "spark.conf.x")


def test_a_bad_override_is_reported_without_its_value():
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["--password=hunter2-literal-secret"])
    assert "--password" in str(err.value) and "hunter2" not in str(err.value)


@pytest.mark.spark
def test_a_spark_session_reads_env_references_when_it_is_built(spark, monkeypatch):
    from spark_jobs.session import build_spark_session

    key = "spark.rexbert.test.secret"
    monkeypatch.setenv("REXBERT_TEST_SECRET", "value-from-the-environment")
    kept = {name: spark.conf.get(name) for name in ("spark.sql.shuffle.partitions",
                                                    "spark.sql.parquet.compression.codec")}
    session = build_spark_session("rexbert-tests", master="local[2]",
                                  shuffle_partitions=int(kept["spark.sql.shuffle.partitions"]),
                                  conf={key: "env:REXBERT_TEST_SECRET"})
    try:
        assert session.conf.get(key) == "value-from-the-environment"
        assert {name: session.conf.get(name) for name in kept} == kept  # the shared test session is unchanged
    finally:
        session.conf.unset(key)
    monkeypatch.delenv("REXBERT_TEST_SECRET")
    with pytest.raises(ConfigError, match=f"spark.conf.{key}: environment variable REXBERT_TEST_SECRET is not set"):
        build_spark_session("rexbert-tests", master="local[2]", conf={key: "env:REXBERT_TEST_SECRET"})


@pytest.mark.spark
def test_a_stage_run_from_the_cli_leaves_no_credential_on_disk_or_screen(spark, tmp_path, monkeypatch):
    """`rexbert corpus dedup` with credentials in `spark.conf` (one literal, one `env:`): no file under the output
    and no line printed holds either value."""
    monkeypatch.setenv("REXBERT_TEST_ACCESS_KEY", "AKIA-from-the-environment")
    text = "socks and shoes on sale with free shipping and easy returns for every order " * 3
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps({"doc_id": i, "url": f"http://x.test/{i}", "text": f"{i} {text}"})
                              for i in "ab"))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"spark": {"conf": {
        "spark.hadoop.fs.s3a.secret.key": "hunter2-literal-secret",
        "spark.hadoop.fs.s3a.access.key": "env:REXBERT_TEST_ACCESS_KEY"}}}))
    out = tmp_path / "deduped"
    result = runner.invoke(app, ["corpus", "dedup", "-i", str(docs), "-o", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    files = [path for path in out.rglob("*") if path.is_file()]
    assert out / "config.resolved.yaml" in files and out / "manifest.json" in files
    for path in files:
        data = path.read_bytes()
        assert b"hunter2-literal-secret" not in data and b"AKIA-from-the-environment" not in data, path
    assert "hunter2" not in result.output and "AKIA-from" not in result.output
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert resolved["spark"]["conf"] == {"spark.hadoop.fs.s3a.secret.key": REDACTED,
                                         "spark.hadoop.fs.s3a.access.key": "env:REXBERT_TEST_ACCESS_KEY"}


def test_loopback_check_reads_proc_addresses():
    """The /proc decoding the port test relies on: a socket bound here shows up with its address and port."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("reads listening sockets from Linux's /proc")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert ("127.0.0.1", port) in listening_sockets({os.getpid()})
    with socket.socket(socket.AF_INET) as server:
        server.bind(("0.0.0.0", 0))
        server.listen()
        port = server.getsockname()[1]
        assert ("0.0.0.0", port) in listening_sockets({os.getpid()})
    if socket.has_ipv6 and Path("/proc/net/tcp6").exists():
        with socket.socket(socket.AF_INET6) as server:
            server.bind(("::", 0))
            server.listen()
            port = server.getsockname()[1]
            assert ("::", port) in listening_sockets({os.getpid()})
    assert _is_loopback("::ffff:127.0.0.1") and _is_loopback("::1")
    assert not any(map(_is_loopback, ["0.0.0.0", "::", "::ffff:0.0.0.0", "192.0.2.2"]))


def test_dry_runs_print_requests_with_credentials_redacted():
    """`rexbert submit ... --dry-run` prints what would be sent, less the credentials passed to it: a Ray job's
    `--env`, and the Spark `--conf` of a Dataproc job (a properties map) and of an EMR step (spark-submit args)."""
    ray_run = runner.invoke(app, ["submit", "ray", "--dry-run", "--working-dir", "",
                                  "--env", "AWS_SECRET_ACCESS_KEY=hunter2-ray", "--env", "AWS_REGION=us-east-1",
                                  "--", "rexbert", "pretrain", "--phase", "general"])
    assert ray_run.exit_code == 0, ray_run.output
    body = json.loads(ray_run.output.split("\n", 1)[1])
    assert body["runtime_env"]["env_vars"] == {"AWS_SECRET_ACCESS_KEY": REDACTED, "AWS_REGION": "us-east-1"}
    assert body["entrypoint"] == "rexbert pretrain --phase general"

    conf = ["--conf", "spark.hadoop.fs.s3a.secret.key=hunter2-spark", "--conf", "spark.executor.memory=8g"]
    dataproc = runner.invoke(app, ["submit", "dataproc", "dedup", "--project", "p", "--region", "us-central1",
                                   "--cluster", "c", "--staging", "gs://b/code", "--no-env", *conf, "--dry-run", "--",
                                   "--input", "gs://b/in", "--output", "gs://b/out"])
    emr = runner.invoke(app, ["submit", "emr", "dedup", "--staging", "s3://b/code", "--cluster-id", "j-1",
                              "--region", "us-east-1", "--no-env", *conf,
                              "--dry-run", "--", "--input", "s3://b/in", "--output", "s3://b/out"])
    spark = runner.invoke(app, ["submit", "spark", "--master", "spark://head:7077", "--no-env", *conf, "--dry-run",
                                "dedup", "--", "--input", "in", "--output", "out"])
    for result in (dataproc, emr, spark):
        assert result.exit_code == 0, result.output
        assert "hunter2" not in result.output and "spark.executor.memory" in result.output
    job_line = shlex.split(next(line for line in dataproc.output.splitlines() if "jobs submit pyspark" in line))
    properties = parse_gcloud_map(next(w for w in job_line if w.startswith("--properties="))[len("--properties="):])
    assert properties == {"spark.hadoop.fs.s3a.secret.key": REDACTED, "spark.executor.memory": "8g"}
    step_line = shlex.split(next(line for line in emr.output.splitlines() if "aws emr add-steps" in line))
    args = json.loads(step_line[step_line.index("--steps") + 1])[0]["Args"]
    assert f"spark.hadoop.fs.s3a.secret.key={REDACTED}" in args and "spark.executor.memory=8g" in args
    submit_line = shlex.split(spark.output.strip().splitlines()[-1])
    assert f"spark.hadoop.fs.s3a.secret.key={REDACTED}" in submit_line and "spark.executor.memory=8g" in submit_line
