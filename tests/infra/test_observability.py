"""Observability: the Grafana/Prometheus files `rexbert dashboard grafana` writes, proven against a real Prometheus
scraping a real local Ray cluster through Ray's service-discovery file, and `rexbert dashboard urls`."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infra.cli import app
from infra.core.config import load_config, resolve_run_dir
from infra.dashboards import CLUSTER_PANELS, SERVICE_DISCOVERY_FILE, TRAINING_PANELS, panels

runner = CliRunner()
TRAINER_METRIC = "ray_rexbert_pretrain_"
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _grafana(out: Path, *options: str) -> list[Path]:
    result = runner.invoke(app, ["dashboard", "grafana", "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    return [Path(line.removeprefix("wrote ")) for line in result.output.splitlines() if line.startswith("wrote ")]


def _trainer_tag_keys() -> set[str]:
    """The tags the pretraining job's metrics sink puts on every gauge."""
    from ray_jobs.pretrain import RayMetricsSink

    return set(RayMetricsSink("general", 0).tags)


def _kept_labels(expr: str) -> set[str] | None:
    """Labels a panel's query keeps: those of `agg by (a, b) (...)` / `agg (...) by (a, b)`, none for a `by`-less
    aggregation; None for a bare selector (it keeps every label of the series)."""
    expr = expr.strip()
    if re.fullmatch(r"[A-Za-z_:][\w:]*(\{[^}]*\})?", expr):
        return None
    match = re.fullmatch(r"(\w+)\s*(?:by\s*\(([^)]*)\))?\s*\((.*?)\)\s*(?:by\s*\(([^)]*)\))?", expr, re.S)
    assert match and match.group(1) in AGGREGATIONS, f"the test cannot read the labels {expr!r} keeps"
    assert not re.search(r"\bwithout\b", expr), f"`without` in {expr!r}: list what the query keeps with `by`"
    by = match.group(2) or match.group(4) or ""
    return {label.strip() for label in by.split(",") if label.strip()}


def _flat(output: str) -> str:
    """A usage error's message on one line, without the box rich draws around it."""
    return " ".join(output.replace("│", " ").split())


def _legend_labels(legend: str) -> set[str]:
    return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))


def test_every_legend_uses_only_labels_its_query_keeps():
    tag_keys = _trainer_tag_keys()
    assert tag_keys  # the trainer tags its series (phase, rank): its panels have something to name
    for panel in panels():
        used = _legend_labels(panel.legend)
        kept = _kept_labels(panel.expr)
        if kept is None:  # a bare series: only the trainer's gauges are shown un-aggregated
            assert panel.expr.startswith(TRAINER_METRIC), f"{panel.title}: un-aggregated non-trainer series"
            kept = tag_keys
        assert used <= kept, f"{panel.title}: legend {panel.legend!r} names {used - kept}, which {panel.expr!r} drops"
    assert len(panels()) == len(TRAINING_PANELS) + len(CLUSTER_PANELS)


def test_grafana_provisioning_files_reference_each_other(tmp_path):
    session = tmp_path / "ray-session"
    written = _grafana(tmp_path / "out", "--prometheus-url", "http://10.1.2.3:9091/", "--ray-session-dir",
                       str(session), "--target", "10.1.2.4:8080", "--scrape-interval", "5s")
    out = (tmp_path / "out").absolute()
    datasource_file = out / "provisioning" / "datasources" / "rexbert.yaml"
    provider_file = out / "provisioning" / "dashboards" / "rexbert.yaml"
    assert {datasource_file, provider_file, out / "prometheus.yml"} <= {path.absolute() for path in written}

    (datasource,) = yaml.safe_load(datasource_file.read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://10.1.2.3:9091"
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    assert provider["type"] == "file"
    dashboards = list(Path(provider["options"]["path"]).glob("*.json"))
    assert len(dashboards) == 1 and dashboards[0].absolute() in {path.absolute() for path in written}

    text = dashboards[0].read_text()
    dashboard = json.loads(text)
    variables = {variable["name"] for variable in dashboard.get("templating", {}).get("list", [])}
    assert set(re.findall(r"\$\{(\w+)\}", text)) <= variables  # no variable the dashboard does not define
    assert len(dashboard["panels"]) == len(panels())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == datasource["uid"], panel["title"]

    prometheus = yaml.safe_load((out / "prometheus.yml").read_text())
    assert prometheus["global"]["scrape_interval"] == "5s"
    (job,) = prometheus["scrape_configs"]
    sd_files = [Path(name) for sd in job["file_sd_configs"] for name in sd["files"]]
    assert sd_files == [session.absolute() / SERVICE_DISCOVERY_FILE]
    assert job["static_configs"] == [{"targets": ["10.1.2.4:8080"]}]
    if shutil.which("promtool"):  # Prometheus' own checker (Debian's prometheus package ships it)
        check = subprocess.run(["promtool", "check", "config", str(out / "prometheus.yml")], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_the_service_discovery_file_is_the_one_ray_writes():
    from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE

    assert SERVICE_DISCOVERY_FILE == PROMETHEUS_SERVICE_DISCOVERY_FILE


@pytest.mark.parametrize("options, problem", [
    (["--prometheus-url", "ftp://x"], "not a Prometheus URL"),
    (["--scrape-interval", "ten"], "not a Prometheus duration"),
    (["--target", "no-port"], "not a metrics endpoint"),
])
def test_grafana_refuses_bad_options_and_writes_nothing(tmp_path, options, problem):
    result = runner.invoke(app, ["dashboard", "grafana", "--out", str(tmp_path / "out"), *options])
    assert result.exit_code == 2 and problem in _flat(result.output)
    assert not (tmp_path / "out").exists()


def test_grafana_refuses_a_session_folder_that_is_a_file(tmp_path):
    (tmp_path / "session").write_text("")
    result = runner.invoke(app, ["dashboard", "grafana", "--out", str(tmp_path / "out"), "--ray-session-dir",
                                 str(tmp_path / "session")])
    assert result.exit_code == 2 and "is a file, not a folder" in _flat(result.output)
    assert not (tmp_path / "out").exists()


# --- rexbert dashboard urls ----------------------------------------------------------------------------------------


def _lines(output: str) -> dict[str, str]:
    return {line.split(":", 1)[0].split(" (")[0]: line for line in output.splitlines()}


def _option(line: str, name: str) -> str:
    words = shlex.split(line.split("  (")[0].replace(", then", " "))
    return words[words.index(name) + 1]


def test_urls_name_the_runs_folders_and_the_ports_given(tmp_path):
    from training.metrics import TensorBoardSink

    output = tmp_path / "output"
    config = load_config(overrides={"run": {"output": str(output), "name": "exp1"}})
    run_dir = Path(resolve_run_dir(config.pretrain, config.run.output, config.run.name))
    sink = TensorBoardSink(run_dir / "general" / "tb")  # where the trainer's rank 0 logs a local phase
    sink(1, {"loss": 3.0})
    sink.close()

    dashboards = tmp_path / "dash"
    result = runner.invoke(app, [
        "dashboard", "urls", "--output", str(output), "--run.name=exp1", "--ray-dashboard-port", "18265",
        "--dashboards", str(dashboards), "--tensorboard-port", "16006", "--prometheus-port", "19090",
        "--grafana-port", "13000", "--spark-history-port", "18181"])
    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert set(lines) == {"Ray dashboard", "TensorBoard", "Prometheus", "Grafana", "Spark history server"}

    assert lines["Ray dashboard"].endswith(" http://127.0.0.1:18265")

    logdir = Path(_option(lines["TensorBoard"], "--logdir"))
    assert logdir == run_dir.absolute() and _option(lines["TensorBoard"], "--port") == "16006"
    assert list(logdir.glob("*/tb/events.out.tfevents.*"))  # TensorBoard finds the phase's event file there
    assert lines["TensorBoard"].endswith("(http://127.0.0.1:16006)")

    # The Prometheus line's own grafana command writes the config its prometheus command reads.
    grafana_words = shlex.split(lines["Prometheus"].split(":", 1)[1].split(", then")[0])
    assert grafana_words[:3] == ["rexbert", "dashboard", "grafana"]
    assert runner.invoke(app, grafana_words[1:]).exit_code == 0
    assert Path(_option(lines["Prometheus"], "--config.file")).is_file()
    assert _option(lines["Prometheus"], "--web.listen-address") == "127.0.0.1:19090"
    assert lines["Prometheus"].endswith("(http://127.0.0.1:19090)")

    provisioning = Path(shlex.split(re.search(r"GF_PATHS_PROVISIONING=(\S+)", lines["Grafana"]).group(1))[0])
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "rexbert.yaml").read_text())["datasources"]
    assert datasource["url"] == "http://127.0.0.1:19090"
    assert "GF_SERVER_HTTP_PORT=13000" in lines["Grafana"] and lines["Grafana"].endswith("(http://127.0.0.1:13000)")

    spark = lines["Spark history server"]
    assert f"-Dspark.history.fs.logDirectory={(output / 'spark-events').absolute().as_uri()} " in spark
    assert "-Dspark.history.ui.port=18181" in spark and spark.endswith("(http://127.0.0.1:18181)")


@pytest.mark.parametrize("address, dashboard", [
    ("ray://head.internal:10001", "http://head.internal:8265"),
    ("10.0.0.2:6379", "http://10.0.0.2:8265"),
    ("auto", "http://127.0.0.1:8265"),
    ("http://head.internal:8266", "http://head.internal:8266"),
])
def test_urls_point_at_the_clusters_dashboard(address, dashboard):
    result = runner.invoke(app, ["dashboard", "urls", "--address", address])
    assert result.exit_code == 0, result.output
    assert _lines(result.output)["Ray dashboard"].endswith(f" {dashboard}")


def test_urls_of_a_run_in_an_object_store():
    result = runner.invoke(app, ["dashboard", "urls", "--output", "s3://bucket/root", "--run.name=exp2",
                                 "--spark.event_log_dir=s3://bucket/history"])
    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert _option(lines["TensorBoard"], "--logdir") == "s3://bucket/root/runs/exp2"
    assert "-Dspark.history.fs.logDirectory=s3://bucket/history " in lines["Spark history server"]


def test_urls_refuses_a_bad_address():
    result = runner.invoke(app, ["dashboard", "urls", "--address", "not an address"])
    assert result.exit_code == 2 and "not a Ray Jobs address" in _flat(result.output)


# --- Prometheus scraping a real Ray cluster ------------------------------------------------------------------------


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)["data"]["result"]


def _wait_ready(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    pytest.fail(f"prometheus not ready after {timeout}s: {log.read_text()[-2000:]}")


def _trainer_rank(phase: str, rank: int):
    """A Ray actor logging through the trainer's own metrics path: MetricsProcessor -> RayMetricsSink gauges."""
    import ray

    @ray.remote(num_cpus=0)
    class Rank:
        def __init__(self):
            import torch

            from ray_jobs.pretrain import RayMetricsSink
            from training.metrics import MetricsProcessor

            self.metrics = MetricsProcessor(torch.device("cpu"), flops_per_token=6e6, log_interval=1,
                                            sinks=[RayMetricsSink(phase, rank)])

        def log(self, step: int, loss: float) -> tuple[str, dict[str, float | None]]:
            values = self.metrics.step(step, loss=loss, grad_norm=0.5 + rank, lr=1e-3, real_tokens=4096,
                                       batch_size=8)
            return ray.get_runtime_context().get_worker_id(), values

    return Rank.remote()


@pytest.mark.ray
def test_prometheus_scrapes_the_trainers_gauges_through_rays_service_discovery(ray_cluster, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus binary not installed (apt-get install -y prometheus)")
    ray = ray_cluster
    session_dir = ray._private.worker.global_worker.node.get_session_dir_path()
    _grafana(tmp_path / "out", "--ray-session-dir", session_dir, "--scrape-interval", "1s")
    config = tmp_path / "out" / "prometheus.yml"

    ranks = [_trainer_rank("general", rank) for rank in (0, 1)]
    logged = dict(ray.get([actor.log.remote(7, 2.5 + rank) for rank, actor in enumerate(ranks)]))  # worker -> values

    port = _free_port()
    log = tmp_path / "prometheus.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log_file, stderr=subprocess.STDOUT)
    try:
        _wait_ready(port, proc, log)
        deadline = time.monotonic() + 60  # Ray exports a worker's metrics every few seconds
        series: list[dict] = []
        while time.monotonic() < deadline:
            series = [s for s in _query(port, "ray_rexbert_pretrain_loss") if s["metric"].get("WorkerId") in logged]
            if len(series) == len(logged):
                break
            time.sleep(1)
        assert len(series) == len(logged), f"trainer gauges not scraped in 60 s: {series}; {log.read_text()[-2000:]}"

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as response:
            targets = json.load(response)["data"]["activeTargets"]
        sd_file = str(Path(session_dir) / SERVICE_DISCOVERY_FILE)
        assert targets and all(t["discoveredLabels"]["__meta_filepath"] == sd_file for t in targets)
        assert any(t["health"] == "up" for t in targets)

        tag_keys = _trainer_tag_keys()
        for panel in panels():
            results = _query(port, panel.expr)
            for result in results:  # every legend label is on every series the panel draws
                assert _legend_labels(panel.legend) <= set(result["metric"]), (panel.title, result["metric"])
            if not panel.expr.startswith(TRAINER_METRIC):
                continue
            key = panel.expr.removeprefix(TRAINER_METRIC)
            ours = {s["metric"]["WorkerId"]: s for s in results if s["metric"].get("WorkerId") in logged}
            expected = {worker: values[key] for worker, values in logged.items() if values[key] is not None}
            assert set(ours) == set(expected), panel.title  # MFU is None on a CPU, so it is never set
            for worker, value in expected.items():
                labels = ours[worker]["metric"]
                assert tag_keys <= set(labels) and labels["phase"] == "general", labels
                assert math.isclose(float(ours[worker]["value"][1]), value, rel_tol=1e-9), (panel.title, labels)
        ranks_seen = {s["metric"]["rank"] for s in series}
        assert ranks_seen == {"0", "1"}
        for title in ("CPU utilisation", "Node memory used (bytes)", "Object store used (bytes)"):
            (expr,) = [panel.expr for panel in panels() if panel.title == title]
            assert _query(port, expr), f"{title}: {expr} has no series from Ray"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for actor in ranks:
            ray.kill(actor)
