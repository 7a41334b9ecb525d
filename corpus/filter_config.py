"""The `corpus.filter:` config section: language, e-commerce and quality filters (None disables a check)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GopherQualityConfig(BaseModel):
    """datatrove's GopherQualityFilter (Rae et al. 2021, MassiveText); None turns a threshold off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the Gopher quality filter.")
    min_doc_words: int | None = Field(50, description="Fewer words than this: gopher_short_doc.")
    max_doc_words: int | None = Field(100000, description="More words than this: gopher_long_doc.")
    min_avg_word_length: int | None = Field(3, description="Mean word length below: gopher_below_avg_threshold.")
    max_avg_word_length: int | None = Field(10, description="Mean word length above: gopher_above_avg_threshold.")
    max_symbol_word_ratio: float | None = Field(0.1, description="'#' and '...' per word above: too_many_hashes.")
    max_bullet_lines_ratio: float | None = Field(0.9, description="Share of lines starting with a bullet.")
    max_ellipsis_lines_ratio: float | None = Field(0.3, description="Share of lines ending with an ellipsis.")
    max_non_alpha_words_ratio: float | None = Field(0.8, description="Minimum share of words with a letter.")
    min_stop_words: int | None = Field(2, description="Minimum count of English stop words.")


class GopherRepetitionConfig(BaseModel):
    """datatrove's GopherRepetitionFilter with its defaults (Rae et al. 2021, table A1)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the Gopher repetition filter.")
    dup_line_frac: float | None = Field(0.3, description="Share of duplicated lines above which to drop.")
    dup_para_frac: float | None = Field(0.3, description="Share of duplicated paragraphs above which to drop.")
    dup_line_char_frac: float | None = Field(0.2, description="Share of characters in duplicated lines.")
    dup_para_char_frac: float | None = Field(0.2, description="Share of characters in duplicated paragraphs.")


class C4QualityConfig(BaseModel):
    """datatrove's C4QualityFilter; defaults as FineWeb used it (terminal punctuation filter off)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the C4 quality filter.")
    filter_no_terminal_punct: bool = Field(
        False, description="Drop lines without terminal punctuation (C4 default True; off for product specs)."
    )
    min_num_sentences: int = Field(-1, description="Minimum sentences per document (-1 off; C4 used 5).")
    min_words_per_line: int = Field(-1, description="Drop lines with fewer words (-1 off; C4 used 3).")
    max_word_length: int = Field(1000, description="Drop lines with a longer word (-1 off).")
    filter_lorem_ipsum: bool = Field(True, description="Drop documents containing 'lorem ipsum'.")
    filter_javascript: bool = Field(True, description="Drop lines mentioning javascript.")
    filter_curly_bracket: bool = Field(True, description="Drop documents with a curly bracket.")
    filter_policy: bool = Field(True, description="Drop cookie / terms-of-use boilerplate lines.")
    keep_cleaned_text: bool = Field(True, description="Keep C4's line-cleaned text (as datatrove does).")


class FineWebQualityConfig(BaseModel):
    """datatrove's FineWebQualityFilter (Penedo et al. 2024)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the FineWeb quality filter.")
    line_punct_thr: float = Field(0.12, description="Minimum share of lines ending in punctuation.")
    line_punct_exclude_zero: bool = Field(False, description="Do not drop documents with no such line at all.")
    short_line_thr: float = Field(0.67, description="Maximum share of short lines.")
    short_line_length: int = Field(30, description="A line this short or shorter is short.")
    char_duplicates_ratio: float = Field(0.01, description="Maximum share of characters in duplicated lines.")
    new_line_ratio: float = Field(0.3, description="Maximum newlines per word (list-like pages).")


class FilterConfig(BaseModel):
    """Settings of the classify + filter stage. Checks run in this order; the first failure is the reason."""

    model_config = ConfigDict(extra="forbid")

    languages: list[str] | None = Field(
        default_factory=lambda: ["en"], description="Languages kept (ISO 639-1); None keeps every language."
    )
    min_lang_score: float | None = Field(None, description="Minimum language-id confidence; None: no minimum.")
    ecommerce_filter: bool = Field(
        True, description="Drop pages below the e-commerce threshold (off: general web text for phase 1)."
    )
    ecommerce_threshold: float = Field(0.5, ge=0, le=1, description="Minimum ecom_score to keep a page.")
    classifier: str | None = Field(
        None, description="fastText e-commerce model (.bin); None: the filter job's --classifier argument."
    )
    category_labels: str | None = Field(
        None,
        description="JSONL or CSV of (url or doc_id, category) labels, e.g. from an LLM; rules fill the rest.",
    )
    min_chars: int | None = Field(1, description="Fewer characters of text than this: empty_text.")
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4_quality: C4QualityConfig = Field(default_factory=C4QualityConfig)
    fineweb_quality: FineWebQualityConfig = Field(default_factory=FineWebQualityConfig)
