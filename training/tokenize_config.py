"""The `tokenize:` section of a run config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenizeConfig(BaseModel):
    """Settings for `rexbert tokenize`."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(50368, ge=64, description="Tokenizer vocabulary, padded to a multiple of 64.")
    seq_len: int = Field(128, ge=8, description="Packed sequence length in tokens.")
