"""Configuration of corpus curation (the `corpus:` section of a run config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CorpusConfig(BaseModel):
    """Settings for `rexbert corpus build` and its stages. Fields are filled in by the corpus issue."""

    model_config = ConfigDict(extra="forbid")

    partitions: int = Field(4, ge=1, description="Spark partitions for the extract stage.")
