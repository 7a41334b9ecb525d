"""The `ray:` section of a run config: a fresh local Ray cluster by default, or an existing one."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, description="Ray address ('auto', 'ray://host:10001'); None starts one.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local cluster (None: all).")
    dashboard_port: int = Field(8265, description="Dashboard port of the local cluster (on 127.0.0.1).")
    metrics_export_port: int = Field(8080, description="Prometheus metrics port of the local node (Grafana).")
