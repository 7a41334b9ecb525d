"""The `spark:` section of a run config: how Spark jobs run (`local[*]` here, a cluster elsewhere)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SparkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    master: str = Field("local[*]", description="Spark master URL.")
    driver_memory: str = Field("2g", description="spark.driver.memory for local runs.")
    shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions.")
    event_log_dir: str | None = Field(
        None, description="Event log folder for the history server (default: <output>/spark-events)."
    )
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark conf key/values.")
