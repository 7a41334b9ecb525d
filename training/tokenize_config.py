"""The `tokenize:` section of a run config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenizeConfig(BaseModel):
    """Settings for `rexbert tokenize` (tokenizer training and packing on Ray Data)."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(50368, ge=64, description="Tokenizer vocabulary, padded to a multiple of 64.")
    min_frequency: int = Field(2, ge=1, description="BPE merges need a pair seen at least this often.")
    seq_len: int = Field(128, ge=8, description="Packed sequence length in tokens.")
    validation_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Share of documents (by doc_id hash) held out for validation."
    )
    batch_size: int = Field(256, ge=1, description="Documents per Ray Data tokenization batch.")
    rows_per_shard: int = Field(4096, ge=1, description="Packed sequences per Parquet part file.")
    num_sequences: int | None = Field(
        None, ge=1, description="Train sequences in a mixture (None: as many as fit without repetition)."
    )
    token_budget: int | None = Field(
        None, ge=1, description="Train tokens in a mixture (sets num_sequences = ceil(budget / seq_len)).",
    )
