"""The `corpus.extract:` config section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExtractConfig(BaseModel):
    """Settings of the extract stage (readers, trafilatura + product data, language id)."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float | None = Field(
        10.0, gt=0, description="Per-page extraction time limit in seconds; a slower page is error kind `timeout`."
    )
    min_text_chars: int = Field(
        50, ge=0, description="Extracted texts shorter than this are filtered as `too_short` (empty: `empty_text`)."
    )
    max_html_bytes: int | None = Field(
        5_000_000, gt=0, description="Larger HTML payloads are filtered as `too_large` (None: no limit)."
    )
    favor: Literal["auto", "balanced", "precision", "recall"] = Field(
        "auto",
        description="trafilatura mode: auto = defaults plus e-commerce repairs (fallback text on commerce pages).",
    )
    fallback_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description="On commerce pages, use the page's visible text when trafilatura keeps fewer words than "
        "3x this share of it (or this share of the whole page text); 0 turns the fallback off.",
    )
    include_product: bool = Field(
        True, description="Read schema.org Product data (JSON-LD, microdata) and merge missing fields into the text."
    )
    on_undecodable: Literal["error", "replace"] = Field(
        "error",
        description="A payload that fails to decode in its declared charset: count it as error `undecodable`, "
        "or decode it with replacement characters.",
    )
    langid_model: str | None = Field(
        None, description="Path to a fastText language-id model (lid.176.bin); None uses py3langid's bundled model."
    )
    text_column: str = Field("text", description="Text column of JSONL / Parquet inputs (already-extracted text).")
    url_column: str = Field("url", description="URL column of JSONL / Parquet inputs (optional there).")
    domain_column: str = Field("domain", description="Domain-label column of JSONL / Parquet inputs (optional).")
    partitions: int | None = Field(
        None, ge=1, description="Spark partitions for HTML / WARC work (None: Spark's default parallelism)."
    )
