"""The `corpus:` section of a run config: one sub-section per curation stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from corpus.dedup_config import DedupConfig
from corpus.extract_config import ExtractConfig
from corpus.filter_config import FilterConfig


class CorpusConfig(BaseModel):
    """Settings for `rexbert corpus build` and its stages."""

    model_config = ConfigDict(extra="forbid")

    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
