"""Grafana dashboards, their provisioning files and the Prometheus scrape config for watching runs.

Ray exports every node's metrics (its own and the job's `ray.util.metrics`, prefixed `ray_`) on the
node's metrics port, and the head node keeps a Prometheus service-discovery file listing every node's
port in its session folder (`<session dir>/prom_metrics_service_discovery.json`). Prometheus reads that
file (`file_sd_configs`), so nodes that join or leave are scraped without editing anything; Grafana reads
Prometheus through the provisioned datasource below, whose fixed uid every panel names. The dashboard is
generated from the panel lists, so adding a panel is one line.

    out/
      prometheus.yml                          prometheus --config.file out/prometheus.yml
      provisioning/datasources/rexbert.yaml   Grafana: GF_PATHS_PROVISIONING=out/provisioning
      provisioning/dashboards/rexbert.yaml    (a file provider reading out/dashboards)
      dashboards/rexbert-training.json
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

DATASOURCE_UID = "rexbert-prometheus"
DASHBOARD_UID = "rexbert-training"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
# `ray start` and `ray.init` point this link at the newest session on the node (the default temp dir /tmp/ray).
DEFAULT_RAY_SESSION_DIR = "/tmp/ray/session_latest"
# The name Ray gives the file (ray._private.ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE; not imported, so
# the CLI does not load Ray to write a few files).
SERVICE_DISCOVERY_FILE = "prom_metrics_service_discovery.json"

# The trainer's gauges carry the tags `ray_jobs.pretrain.RayMetricsSink` sets (phase, rank), besides Ray's own.
TRAINER_LEGEND = "{{phase}} rank {{rank}}"

# Training metrics reported by the pretraining job through ray.util.metrics (see ray_jobs/pretrain.py):
# (title, PromQL, unit); one series per phase and rank.
TRAINING_PANELS: list[tuple[str, str, str]] = [
    ("MLM loss", "ray_rexbert_pretrain_loss", "none"),
    ("Real tokens/s (whole job)", "ray_rexbert_pretrain_tokens_per_s", "none"),
    ("MFU %", "ray_rexbert_pretrain_mfu", "percent"),
    ("Learning rate", "ray_rexbert_pretrain_lr", "none"),
    ("Gradient norm", "ray_rexbert_pretrain_grad_norm", "none"),
    ("Step time (s)", "ray_rexbert_pretrain_step_time_s", "s"),
    ("Data-loading share", "ray_rexbert_pretrain_data_share", "percentunit"),
    ("Peak memory (GiB)", "ray_rexbert_pretrain_peak_memory_gib", "none"),
]
# Cluster health from Ray's built-in node metrics: (title, PromQL, unit, legend). A legend names only
# labels its query keeps: `avg by (instance)` keeps `instance` alone, `sum(...)` would keep none. `instance` is
# the node's metrics endpoint (Prometheus' target); `Location` says where objects live (shared memory, spilled).
CLUSTER_PANELS: list[tuple[str, str, str, str]] = [
    ("CPU utilisation", "avg by (instance) (ray_node_cpu_utilization)", "percent", "{{instance}}"),
    ("GPU utilisation", "avg by (instance) (ray_node_gpus_utilization)", "percent", "{{instance}}"),
    ("Node memory used (bytes)", "sum by (instance) (ray_node_mem_used)", "bytes", "{{instance}}"),
    ("Object store used (bytes)", "sum by (Location) (ray_object_store_memory)", "bytes", "{{Location}}"),
]

_DURATION = re.compile(r"(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?")  # Prometheus' duration format
_HOST_PORT = re.compile(r"[A-Za-z0-9_.\-]+:\d{1,5}")
_HTTP_URL = re.compile(r"https?://[A-Za-z0-9_.\-]+(:\d{1,5})?(/\S*)?")


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    unit: str
    legend: str


class DashboardFiles(NamedTuple):
    """Where `write_dashboards` put each file (a tuple, the dashboard JSON first)."""

    dashboard: Path
    datasource: Path
    provider: Path
    prometheus: Path


def panels() -> list[Panel]:
    """Every panel of the dashboard, training first."""
    training = [Panel(title, expr, unit, TRAINER_LEGEND) for title, expr, unit in TRAINING_PANELS]
    return training + [Panel(*row) for row in CLUSTER_PANELS]


# --- checks of the options (ValueError: one line naming the problem) ------------------------------------------------


def check_prometheus_url(url: str) -> str:
    if not _HTTP_URL.fullmatch(url.strip()):
        raise ValueError(f"{url!r} is not a Prometheus URL: use http://HOST:PORT (e.g. {DEFAULT_PROMETHEUS_URL})")
    return url.strip().rstrip("/")


def check_scrape_interval(interval: str) -> str:
    if not interval or not _DURATION.fullmatch(interval) or not any(ch.isdigit() for ch in interval):
        raise ValueError(f"{interval!r} is not a Prometheus duration (e.g. 10s, 500ms, 1m)")
    return interval


def check_target(target: str) -> str:
    if not _HOST_PORT.fullmatch(target.strip()):
        raise ValueError(f"{target!r} is not a metrics endpoint: use HOST:PORT (e.g. 127.0.0.1:8080)")
    return target.strip()


def service_discovery_file(ray_session_dir: str | Path) -> Path:
    """Ray's service-discovery file in a session folder, as an absolute path (Prometheus reads a relative one
    from its config file's folder, not from where it was started)."""
    folder = Path(ray_session_dir).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"Ray session folder {ray_session_dir} is a file, not a folder")
    return folder / SERVICE_DISCOVERY_FILE


# --- the files ------------------------------------------------------------------------------------------------------


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    datasource = {"type": "prometheus", "uid": DATASOURCE_UID}
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "datasource": datasource,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [{"datasource": datasource, "expr": panel.expr, "refId": "A", "legendFormat": panel.legend}],
    }


def grafana_dashboard() -> dict[str, Any]:
    """The dashboard JSON; every panel reads the provisioned datasource by its uid."""
    return {
        "uid": DASHBOARD_UID,
        "title": "RexBERT pretraining",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "10s",
        "panels": [_panel(i + 1, panel, x=(i % 2) * 12, y=(i // 2) * 8) for i, panel in enumerate(panels())],
    }


def grafana_datasource(prometheus_url: str = DEFAULT_PROMETHEUS_URL, scrape_interval: str = "10s") -> dict[str, Any]:
    """Grafana datasource provisioning: the Prometheus that scrapes Ray, under the uid the panels use."""
    return {
        "apiVersion": 1,
        "datasources": [{
            "name": "RexBERT Prometheus",
            "type": "prometheus",
            "uid": DATASOURCE_UID,
            "access": "proxy",
            "url": check_prometheus_url(prometheus_url),
            "isDefault": True,
            "editable": False,
            "jsonData": {"timeInterval": check_scrape_interval(scrape_interval)},
        }],
    }


def grafana_dashboard_provider(dashboards_dir: str | Path) -> dict[str, Any]:
    """Grafana dashboard provisioning: a file provider over the folder holding the dashboard JSON."""
    return {
        "apiVersion": 1,
        "providers": [{
            "name": "rexbert",
            "type": "file",
            "disableDeletion": False,
            "updateIntervalSeconds": 30,
            "options": {"path": str(Path(dashboards_dir).absolute())},
        }],
    }


def prometheus_config(targets: list[str] | tuple[str, ...] = (), ray_session_dir: str | Path = DEFAULT_RAY_SESSION_DIR,
                      scrape_interval: str = "10s") -> dict[str, Any]:
    """One `ray` job: every node Ray's service-discovery file lists, plus any static `targets` (HOST:PORT)."""
    job: dict[str, Any] = {
        "job_name": "ray",
        # Ray rewrites the file as nodes come and go (Prometheus watches it); the refresh also catches a
        # `session_latest` link that now points at a newer session.
        "file_sd_configs": [{"files": [str(service_discovery_file(ray_session_dir))], "refresh_interval": "30s"}],
    }
    if targets:
        job["static_configs"] = [{"targets": [check_target(target) for target in targets]}]
    interval = check_scrape_interval(scrape_interval)
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "scrape_configs": [job]}


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_dashboards(out_dir: str | Path, targets: list[str] | tuple[str, ...] = (), *,
                     prometheus_url: str = DEFAULT_PROMETHEUS_URL,
                     ray_session_dir: str | Path = DEFAULT_RAY_SESSION_DIR,
                     scrape_interval: str = "10s") -> DashboardFiles:
    """Write the dashboard JSON, Grafana's provisioning files and the Prometheus config into out_dir.

    Everything is built (and checked) before the first file is written, so a bad option leaves nothing behind.
    """
    out = Path(out_dir)
    dashboards_dir = out / "dashboards"
    datasource = grafana_datasource(prometheus_url, scrape_interval)
    provider = grafana_dashboard_provider(dashboards_dir)
    prometheus = prometheus_config(targets, ray_session_dir, scrape_interval)
    dashboards_dir.mkdir(parents=True, exist_ok=True)
    dashboard = dashboards_dir / f"{DASHBOARD_UID}.json"
    dashboard.write_text(json.dumps(grafana_dashboard(), indent=2))
    return DashboardFiles(
        dashboard=dashboard,
        datasource=_write_yaml(out / "provisioning" / "datasources" / "rexbert.yaml", datasource),
        provider=_write_yaml(out / "provisioning" / "dashboards" / "rexbert.yaml", provider),
        prometheus=_write_yaml(out / "prometheus.yml", prometheus),
    )
