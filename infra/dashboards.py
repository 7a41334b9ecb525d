"""Grafana dashboards and Prometheus scrape config for watching runs.

Ray exports every node's metrics (its own and the job's `ray.util.metrics`, prefixed `ray_`) on the
node's metrics port; Prometheus scrapes them and Grafana shows the panels below. The dashboard is
generated from one list of (title, PromQL, unit), so adding a panel is one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Training metrics reported by the pretraining job through ray.util.metrics (see ray_jobs/pretrain.py).
TRAINING_PANELS: list[tuple[str, str, str]] = [
    ("MLM loss", "ray_rexbert_pretrain_loss", "none"),
    ("Real tokens/s per worker", "ray_rexbert_pretrain_tokens_per_s", "none"),
    ("MFU %", "ray_rexbert_pretrain_mfu", "percent"),
    ("Learning rate", "ray_rexbert_pretrain_lr", "none"),
    ("Gradient norm", "ray_rexbert_pretrain_grad_norm", "none"),
    ("Step time (s)", "ray_rexbert_pretrain_step_time_s", "s"),
    ("Data-loading share", "ray_rexbert_pretrain_data_share", "percentunit"),
    ("Peak memory (GiB)", "ray_rexbert_pretrain_peak_memory_gib", "none"),
]
# Cluster health from Ray's built-in node metrics.
CLUSTER_PANELS: list[tuple[str, str, str]] = [
    ("CPU utilisation", "avg by (instance) (ray_node_cpu_utilization)", "percent"),
    ("GPU utilisation", "avg by (instance) (ray_node_gpus_utilization)", "percent"),
    ("Node memory used (bytes)", "sum by (instance) (ray_node_mem_used)", "bytes"),
    ("Object store used (bytes)", "sum(ray_object_store_memory)", "bytes"),
]


def _panel(panel_id: int, title: str, expr: str, unit: str, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"expr": expr, "refId": "A", "legendFormat": "{{phase}} rank {{rank}}"}],
    }


def grafana_dashboard() -> dict[str, Any]:
    panels = []
    for i, (title, expr, unit) in enumerate(TRAINING_PANELS + CLUSTER_PANELS):
        panels.append(_panel(i + 1, title, expr, unit, x=(i % 2) * 12, y=(i // 2) * 8))
    return {
        "uid": "rexbert-training",
        "title": "RexBERT pretraining",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "10s",
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "current": {}}]},
        "panels": panels,
    }


def prometheus_config(targets: list[str]) -> str:
    lines = [
        "global:",
        "  scrape_interval: 10s",
        "scrape_configs:",
        "  - job_name: ray",
        "    static_configs:",
        "      - targets: [" + ", ".join(f"'{t}'" for t in targets) + "]",
    ]
    return "\n".join(lines) + "\n"


def write_dashboards(out_dir: str | Path, targets: list[str]) -> list[Path]:
    """Write the dashboard JSON, its Grafana provisioning file and a Prometheus config into out_dir."""
    out = Path(out_dir)
    (out / "dashboards").mkdir(parents=True, exist_ok=True)
    dashboard = out / "dashboards" / "rexbert-training.json"
    dashboard.write_text(json.dumps(grafana_dashboard(), indent=2))
    provisioning = out / "dashboards.yaml"
    provisioning.write_text(
        "apiVersion: 1\nproviders:\n  - name: rexbert\n    type: file\n"
        f"    options:\n      path: {(out / 'dashboards').resolve()}\n"
    )
    prometheus = out / "prometheus.yml"
    prometheus.write_text(prometheus_config(targets))
    return [dashboard, provisioning, prometheus]
