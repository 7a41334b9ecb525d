"""Quality filters and signals over extracted text: datatrove's own filters, run record by record.

The decisions are datatrove's (GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter,
FineWebQualityFilter, in FineWeb's order); this module only builds them from `corpus.filter`,
maps each drop to a stable slug (`gopher_short_doc`, `gopher_rep_top_2_gram`, `c4_curly_bracket`,
`fineweb_line_punct_ratio`, ...) and computes a few numeric signals for every document so reports
and the dedup stage (best `quality_score` wins a duplicate cluster) can use them.

Categories (at the end): a kept page's product category from user labels (JSONL or CSV of url or doc_id
-> category, e.g. from an LLM), else keyword rules.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.core import fs
from infra.core.config import FilterConfig

_SLUG = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
_TERMINAL = (".", "!", "?", '"', "'", ":", ";", ")", "”", "’")

SIGNAL_COLUMNS = (
    "word_count",
    "mean_word_length",
    "symbol_ratio",
    "alpha_word_ratio",
    "stop_word_count",
    "line_punct_ratio",
    "dup_line_ratio",
    "quality_score",
)


def reason_slug(prefix: str, reason: str | None) -> str:
    """A stable, lower-case slug for a datatrove drop reason (e.g. 'top_2_gram' -> 'gopher_rep_top_2_gram')."""
    slug = _SLUG.sub("_", (reason or "dropped").lower()).strip("_") or "dropped"
    return slug if slug.startswith(prefix) else f"{prefix}{slug}"


@dataclass
class QualityVerdict:
    """The outcome for one document: the drop reason (None = kept) and the text to keep."""

    reason: str | None
    text: str


def _enabled(section: Any) -> dict[str, Any]:
    kwargs = section.model_dump()
    kwargs.pop("enabled")
    return kwargs


def build_datatrove_filters(config: FilterConfig) -> list[tuple[str, Any]]:
    """(slug prefix, datatrove filter) pairs in FineWeb's order; disabled sections are left out."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    filters: list[tuple[str, Any]] = []
    if config.gopher_repetition.enabled:
        filters.append(("gopher_rep_", GopherRepetitionFilter(**_enabled(config.gopher_repetition))))
    if config.gopher_quality.enabled:
        filters.append(("gopher_", GopherQualityFilter(**_enabled(config.gopher_quality))))
    if config.c4_quality.enabled:
        kwargs = _enabled(config.c4_quality)
        kwargs.pop("keep_cleaned_text")
        filters.append(("c4_", C4QualityFilter(**kwargs)))
    if config.fineweb_quality.enabled:
        filters.append(("fineweb_", FineWebQualityFilter(**_enabled(config.fineweb_quality))))
    return filters


class QualityFilter:
    """Runs datatrove's quality filters on one text at a time; the first failing filter names the reason."""

    name = "quality"

    def __init__(self, config: FilterConfig | None = None):
        self.config = config or FilterConfig()
        self.filters = build_datatrove_filters(self.config)

    def check(self, text: str, doc_id: str = "") -> QualityVerdict:
        from datatrove.data import Document

        doc = Document(text=text, id=doc_id)
        for prefix, step in self.filters:
            before = doc.text
            result = step.filter(doc)
            keep, reason = (result, None) if isinstance(result, bool) else (result[0], result[1])
            if not keep:
                return QualityVerdict(reason_slug(prefix, reason), text)
            if prefix == "c4_" and not self.config.c4_quality.keep_cleaned_text:
                doc.text = before
        return QualityVerdict(None, doc.text)


def quality_signals(text: str | None) -> dict[str, float | int]:
    """Cheap numeric signals of one text; `quality_score` in [0, 1] ranks near-duplicates (higher is better)."""
    text = text or ""
    words = _WORD.findall(text)
    n_words = len(words)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    n_lines = len(lines)
    mean_len = sum(len(w) for w in words) / n_words if n_words else 0.0
    symbols = text.count("#") + text.count("...") + text.count("…")
    alpha = sum(1 for w in words if any(c.isalpha() for c in w))
    stop = sum(1 for w in words if w.lower() in _STOP_WORDS)
    punct = sum(1 for line in lines if line.endswith(_TERMINAL)) / n_lines if n_lines else 0.0
    dup_lines = (n_lines - len(set(lines))) / n_lines if n_lines else 0.0
    alpha_ratio = alpha / n_words if n_words else 0.0
    length_term = min(1.0, math.log1p(n_words) / math.log1p(1000))
    # Longer, less repetitive, more prose-like pages make better cluster representatives.
    score = 0.4 * length_term + 0.2 * (1 - dup_lines) + 0.2 * alpha_ratio + 0.2 * min(1.0, punct / 0.5)
    return {
        "word_count": n_words,
        "mean_word_length": round(mean_len, 4),
        "symbol_ratio": round(symbols / n_words, 4) if n_words else 0.0,
        "alpha_word_ratio": round(alpha_ratio, 4),
        "stop_word_count": stop,
        "line_punct_ratio": round(punct, 4),
        "dup_line_ratio": round(dup_lines, 4),
        "quality_score": round(score, 4),
    }


class DocumentFilter:
    """The filter stage's decision for one document, checks in order: empty text, language, e-commerce
    score, then datatrove's quality filters. The first failing check is the document's `filter_reason`."""

    name = "filter"

    def __init__(self, config: FilterConfig | None = None):
        self.config = config or FilterConfig()
        self.quality = QualityFilter(self.config)
        self.languages = set(self.config.languages) if self.config.languages is not None else None

    def precheck(self, text: str | None, lang: str | None, lang_score: float | None) -> str | None:
        """The cheap checks (empty text, language), so a stage can skip scoring pages they already drop."""
        cfg = self.config
        if cfg.min_chars is not None and len((text or "").strip()) < cfg.min_chars:
            return "empty_text"
        if self.languages is not None and (lang or "unknown") not in self.languages:
            return "wrong_language"
        if cfg.min_lang_score is not None and (lang_score or 0.0) < cfg.min_lang_score:
            return "low_lang_score"
        return None

    def decide(
        self, text: str | None, lang: str | None, lang_score: float | None, ecom_score: float | None, doc_id: str = ""
    ) -> QualityVerdict:
        cfg = self.config
        text = text or ""
        reason = self.precheck(text, lang, lang_score)
        if reason is not None:
            return QualityVerdict(reason, text)
        if cfg.ecommerce_filter and (ecom_score or 0.0) < cfg.ecommerce_threshold:
            return QualityVerdict("not_ecommerce", text)
        return self.quality.check(text, doc_id)


# --- categories -------------------------------------------------------------------------------------------------------

CATEGORIES = ("fashion", "beauty", "electronics", "home", "grocery", "automotive", "sports", "toys", "other")

_KEYWORDS: dict[str, tuple[str, ...]] = {
    "fashion": (
        "dress", "shirt", "t-shirt", "jeans", "jacket", "coat", "shoe", "shoes", "sneaker", "sneakers", "boots",
        "skirt", "sweater", "hoodie", "handbag", "apparel", "clothing", "fashion", "denim", "sandals", "scarf",
        "jewelry", "necklace", "earrings", "watch", "sunglasses", "cotton", "leggings", "blouse", "outfit",
    ),
    "beauty": (
        "skincare", "serum", "moisturizer", "lipstick", "mascara", "makeup", "cosmetics", "fragrance", "perfume",
        "shampoo", "conditioner", "lotion", "cleanser", "beauty", "nail", "foundation", "spf", "eyeliner", "hair",
    ),
    "electronics": (
        "laptop", "smartphone", "phone", "tablet", "camera", "headphones", "earbuds", "bluetooth", "usb", "hdmi",
        "monitor", "tv", "television", "speaker", "charger", "battery", "processor", "cpu", "gpu", "ssd", "ram",
        "wireless", "electronics", "console", "gaming", "router", "keyboard", "mouse", "4k", "lens", "guitar",
    ),
    "home": (
        "sofa", "couch", "chair", "table", "bed", "mattress", "pillow", "lamp", "rug", "curtain", "kitchen",
        "cookware", "furniture", "decor", "bedding", "towel", "shelf", "garden", "vacuum", "blender", "desk",
        "wardrobe", "cabinet", "dishwasher", "homeware",
    ),
    "grocery": (
        "coffee", "tea", "snack", "chocolate", "organic", "grocery", "food", "pasta", "sauce", "cereal", "juice",
        "wine", "beer", "spice", "flour", "honey", "nuts", "gluten", "vegan", "protein", "fruit", "cheese",
    ),
    "automotive": (
        "car", "tire", "tires", "wheel", "brake", "engine", "motor", "oil", "automotive", "vehicle", "truck",
        "headlight", "wiper", "bumper", "exhaust", "spark", "suspension", "motorcycle", "auto",
    ),
    "sports": (
        "fitness", "yoga", "running", "bike", "bicycle", "cycling", "golf", "tennis", "football", "soccer",
        "basketball", "camping", "hiking", "tent", "backpack", "outdoor", "gym", "dumbbell", "treadmill", "ski",
        "fishing", "sports", "climbing", "swim",
    ),
    "toys": (
        "toy", "toys", "lego", "puzzle", "doll", "kids", "children", "baby", "board game", "plush", "stroller",
        "toddler", "playset", "action figure", "nursery",
    ),
}
_PATTERNS = {
    cat: re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    for cat, words in _KEYWORDS.items()
}
_MIN_SCORE = 2  # fewer keyword hits than this: "other"


def categorize(title: str | None, text: str | None, product_text: str | None = None, max_chars: int = 5000) -> str:
    """The best-scoring category by keyword hits (title and product weigh 3x), or 'other'."""
    strong = " ".join(part for part in (title, product_text) if part)
    body = (text or "")[:max_chars]
    scores = Counter()
    for cat, pattern in _PATTERNS.items():
        score = 3 * len(pattern.findall(strong)) + len(pattern.findall(body))
        if score:
            scores[cat] = score
    if not scores:
        return "other"
    # Ties go to the earlier category in CATEGORIES, so the result never depends on dict order.
    best = max(scores.items(), key=lambda kv: (kv[1], -CATEGORIES.index(kv[0])))
    return best[0] if best[1] >= _MIN_SCORE else "other"


def normalize_category(label: str | None) -> str:
    """Map a free-form label (e.g. an LLM's answer) onto CATEGORIES; unknown labels become 'other'."""
    value = (label or "").strip().lower()
    if value in CATEGORIES:
        return value
    for cat in CATEGORIES:
        if cat in value:
            return cat
    return categorize(value, None) if value else "other"


def load_category_labels(path: str | Path) -> dict[str, str]:
    """Labels keyed by url and/or doc_id from JSONL (`url`/`doc_id`, `category`) or CSV with the same columns.

    `path` may be local or a URI (infra.core.fs); the file is read once, on the driver.
    """
    text = fs.read_text(path)
    if str(path).lower().endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    labels: dict[str, str] = {}
    for row in rows:
        category = normalize_category(row.get("category") or row.get("label"))
        for key in ("url", "doc_id"):
            if row.get(key):
                labels[str(row[key])] = category
    return labels
