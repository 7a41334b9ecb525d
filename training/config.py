"""The `pretrain:` section of a run config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PretrainConfig(BaseModel):
    """Settings for `rexbert pretrain`."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field("tiny", description="Model preset: tiny, micro, mini, base, large.")
    workers: int = Field(2, ge=1, description="Ray Train workers (FSDP2 ranks).")
