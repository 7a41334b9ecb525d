"""The `evaluate:` section of a run config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvaluateConfig(BaseModel):
    """Settings for `rexbert evaluate`."""

    model_config = ConfigDict(extra="forbid")

    seeds: list[int] = Field(default_factory=lambda: [0, 1], description="Seeds per configuration.")
