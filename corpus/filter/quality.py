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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.core import fs
from infra.core.config import CommerceRulesConfig, FilterConfig

_SLUG = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
# Gopher's eight plus the short function words telegraphic shop English keeps ("Shoes for Men", "Free Delivery
# on Orders", "Made in Italy", "How about these?"): a product card has no "the", yet still reads as English.
_FUNCTION_WORDS = _STOP_WORDS | frozenset([
    "a", "an", "in", "on", "for", "from", "by", "at", "as", "or", "is", "are", "was", "it", "its", "this", "these",
    "those", "you", "your", "we", "our", "all", "about", "not", "can", "will", "if", "than", "into", "how", "what",
])
STOP_WORD_LISTS = {"gopher": _STOP_WORDS, "function_words": _FUNCTION_WORDS}
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


_COMMERCE_DEFAULTS = CommerceRulesConfig()  # one source of the defaults: the config section


@dataclass(frozen=True)
class CommerceRules:
    """How the quality rules read a commerce page (a product, a product grid, a price list).

    Gopher's rules were tuned on articles: datatrove counts punctuation tokens as words (so "$189.00, 10 kg"
    fails the alpha ratio), and a grid's repeated "Add to cart" lines and prices trip the repetition rules.
    On commerce pages a number, price or unit counts as a word, and the repetition and line rules (Gopher's
    and FineWeb's) read only the prose lines; the structured lines (spec rows, prices, buttons, a grid's
    short names) may get a duplicate-line limit of their own. The defaults were chosen by cross-validation
    over wcxb-dev and zyte-products domains (bench/quality_rules_bench.py, bench/results/quality_rules.md):
    the least relaxed setting that kept the most e-commerce pages of the training folds, with every synthetic
    junk page still removed. They leave the n-gram rules little force on commerce prose (5x Gopher's
    thresholds: top 2-gram and duplicated 5-gram shares over 0.75), double the duplicated line and paragraph
    limits and turn FineWeb's line rules off; duplicated lines and paragraphs, short documents (20 words),
    word lengths, symbols, stop words (one of Gopher's eight or a short function word such as "for") and
    C4's rules still apply.
    None turns a check off.

    Args:
        min_valid_word_ratio: least share of words (whitespace tokens with a letter or digit) that hold a
            letter or read as a number, price or unit.
        min_stop_words: least count of distinct English stop words in the whole text.
        stop_words: which stop words count: "gopher" (Gopher's eight) or "function_words" (those plus short
            English function words such as "for", "in", "on", "about").
        structured_line_words: a line this short that holds a digit or currency sign is a spec/price line.
        max_structured_dup_frac: most share of structured lines that repeat an earlier one.
        repetition_scale: Gopher's n-gram thresholds (top 2-4-gram and duplicated 5-10-gram character
            shares) times this, capped at 1: a grid's product names share words ("... T-Shirt - Blue").
        line_dup_scale: Gopher's duplicated line and paragraph limits times this, capped at 1 (grids repeat
            a line per item: "Freeform Carry-On Spinner is available in 5 options").
        fineweb: run FineWeb's line rules on the prose (they drop list-like pages, which grids are).
        min_doc_words: Gopher's shortest document on commerce pages (a product can be a few lines).
        max_ellipsis_lines_ratio: most share of prose lines ending in an ellipsis (Gopher: 0.3); a grid's cards
            end their cut descriptions with one ("The 4WD Gear Bags are a great solution…").
        drop_code_lines: remove lines holding "{" or "}" (inline JSON and CSS that extraction let through on
            shop pages) instead of C4's dropping the whole page for one curly bracket.
    """

    min_valid_word_ratio: float | None = _COMMERCE_DEFAULTS.min_valid_word_ratio
    min_stop_words: int | None = _COMMERCE_DEFAULTS.min_stop_words
    stop_words: str = _COMMERCE_DEFAULTS.stop_words
    structured_line_words: int = _COMMERCE_DEFAULTS.structured_line_words
    max_structured_dup_frac: float | None = _COMMERCE_DEFAULTS.max_structured_dup_frac
    repetition_scale: float = _COMMERCE_DEFAULTS.repetition_scale
    line_dup_scale: float = _COMMERCE_DEFAULTS.line_dup_scale
    fineweb: bool = _COMMERCE_DEFAULTS.fineweb
    min_doc_words: int | None = _COMMERCE_DEFAULTS.min_doc_words
    drop_code_lines: bool = _COMMERCE_DEFAULTS.drop_code_lines
    max_ellipsis_lines_ratio: float | None = _COMMERCE_DEFAULTS.max_ellipsis_lines_ratio

    @classmethod
    def from_config(cls, config: CommerceRulesConfig) -> CommerceRules:
        """The rules a run's `corpus.filter.commerce` section sets."""
        return cls(**config.model_dump(exclude={"enabled"}))


_CURRENCY = "$€£¥₹"
_NUMBER_WORD = re.compile(
    r"^[(\[]*[-+~±]?(?:[a-z]{0,3}[$€£¥₹])?\d[\d.,:/x×*\-–]*(?:%|[a-zµ°\"'″”]{0,5}\.?|[$€£¥₹])?[)\].,;:!?]*$",
    re.IGNORECASE,
)
_ALNUM = re.compile(r"\w")


def valid_word_ratio(text: str) -> float:
    """Share of whitespace words (those holding a letter or digit) that hold a letter or read as a number,
    price or unit ("$189.00", "10kg", "40%", '5"'): Gopher's alpha ratio for pages that list prices and specs."""
    tokens = [t for t in text.split() if _ALNUM.search(t)]
    if not tokens:
        return 0.0
    return sum(1 for t in tokens if any(c.isalpha() for c in t) or _NUMBER_WORD.match(t)) / len(tokens)


def prose_line_shares(prose: str) -> tuple[float, float]:
    """(bullet, end-ellipsis) shares of the prose lines, as datatrove's Gopher filter counts them."""
    lines = prose.splitlines() or [""]
    bullets = sum(line.lstrip().startswith(("•", "-")) for line in lines) / len(lines)
    return bullets, sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines)


def drop_code_lines(text: str) -> str:
    """The text without its lines that hold a curly bracket (inline JSON, CSS)."""
    return "\n".join(line for line in text.split("\n") if "{" not in line and "}" not in line)


def stop_word_count(text: str, stop_words: str = "gopher") -> int:
    """How many distinct stop words of the list `stop_words` names (`STOP_WORD_LISTS`; Gopher's eight by default)
    occur, in any case (datatrove's check is case-sensitive, and a product page's stop words are often in
    capitalised headings)."""
    return len({w.lower() for w in _WORD.findall(text)} & STOP_WORD_LISTS[stop_words])


def is_structured_line(line: str, max_words: int = 8) -> bool:
    """A spec-table row, price, button or grid label rather than prose: at most 3 words, a table row, a
    short line with a digit or currency sign, a short "key: value" pair, or a grid row of several
    "key: value" specs or with a number in every few words ("Wawona 6 Tent $585.00 Sleeping Capacity: 6-person")."""
    tokens = line.split()
    n_words = len(tokens)
    if n_words <= 3 or line.count("|") >= 2 or line.count(":") >= 3:
        return True
    numeric = sum(1 for t in tokens if any(c.isdigit() or c in _CURRENCY for c in t))
    if (n_words <= max_words and numeric) or numeric >= 0.2 * n_words:
        return True
    key, sep, _ = line.partition(":")
    return bool(sep) and len(key.split()) <= 4 and n_words <= 2 * max_words


def split_structured(text: str, max_words: int = 8) -> tuple[str, list[str]]:
    """(prose text, structured lines) of a page; the prose keeps its line and paragraph breaks."""
    prose, structured = [], []
    for line in text.split("\n"):
        if not _ALNUM.search(line):  # blank lines and bare bullets belong to neither
            prose.append("")
        elif is_structured_line(line.strip(), max_words):
            structured.append(line.strip())
        else:
            prose.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(prose)).strip(), structured


def signal_page_kind(has_product_markup: str | None, html_signals: str | None) -> str:
    """The extractor's own guess at a page's kind from its structured data and raw-HTML signals:
    product (schema.org Product), collection (a listed grid), commerce (a cart button), article, or unknown."""
    signals = set((html_signals or "").split())
    listed = any(s.startswith("listed_") and s != "listed_0" for s in signals)
    if listed:
        return "collection"
    if has_product_markup or signals & {"markup_jsonld", "markup_microdata"}:
        return "product"
    if "cart_button" in signals:
        return "commerce"
    if "article_markup" in signals:
        return "article"
    return "unknown"


def _scaled_repetition(config: Any, step: Any, ngram_scale: float, line_scale: float) -> Any:
    """datatrove's GopherRepetitionFilter with its n-gram thresholds times `ngram_scale` and its duplicated
    line and paragraph limits times `line_scale` (each capped at 1)."""
    from datatrove.pipeline.filters import GopherRepetitionFilter

    def scaled(value: float | None, scale: float) -> float | None:
        return None if value is None else min(1.0, value * scale)

    kwargs = {k: scaled(v, line_scale) for k, v in _enabled(config).items()}
    kwargs["top_n_grams"] = tuple((n, scaled(f, ngram_scale)) for n, f in step.top_n_grams)
    kwargs["dup_n_grams"] = tuple((n, scaled(f, ngram_scale)) for n, f in step.dup_n_grams)
    return GopherRepetitionFilter(**kwargs)


class QualityFilter:
    """Runs datatrove's quality filters on one text at a time; the first failing filter names the reason.

    `check(text, kind="commerce")` reads the page with `CommerceRules`; any other kind gets datatrove's
    rules unchanged (articles, forums and documentation are what they were tuned on)."""

    name = "quality"

    def __init__(self, config: FilterConfig | None = None, commerce: CommerceRules | None = None):
        self.config = config or FilterConfig()
        self.commerce = commerce or CommerceRules.from_config(self.config.commerce)
        self.commerce_enabled = self.config.commerce.enabled
        self.filters = build_datatrove_filters(self.config)
        # On commerce pages our valid-word ratio and stop-word count replace Gopher's alpha and stop-word checks.
        relaxed = self.config.model_copy(deep=True)
        relaxed.gopher_quality.max_non_alpha_words_ratio = None
        relaxed.gopher_quality.min_stop_words = None
        relaxed.fineweb_quality.enabled = relaxed.fineweb_quality.enabled and self.commerce.fineweb
        relaxed.gopher_quality.min_doc_words = self.commerce.min_doc_words
        if self.commerce.drop_code_lines:
            relaxed.c4_quality.filter_curly_bracket = False
        # Gopher's bullet and ellipsis shares count lines: on commerce pages they read the prose lines.
        relaxed.gopher_quality.max_bullet_lines_ratio = None
        relaxed.gopher_quality.max_ellipsis_lines_ratio = None
        self.commerce_filters = build_datatrove_filters(relaxed)
        scales = (self.commerce.repetition_scale, self.commerce.line_dup_scale)
        for i, (prefix, step) in enumerate(self.commerce_filters):
            if prefix == "gopher_rep_" and scales != (1.0, 1.0):
                self.commerce_filters[i] = (prefix, _scaled_repetition(self.config.gopher_repetition, step, *scales))

    def check(self, text: str, doc_id: str = "", kind: str = "general") -> QualityVerdict:
        if kind == "commerce" and self.commerce_enabled:
            return self._check_commerce(text, doc_id)
        return self._run(self.filters, text, doc_id)

    def _run(self, filters: list[tuple[str, Any]], text: str, doc_id: str) -> QualityVerdict:
        from datatrove.data import Document

        doc = Document(text=text, id=doc_id)
        for prefix, step in filters:
            before = doc.text
            result = step.filter(doc)
            keep, reason = (result, None) if isinstance(result, bool) else (result[0], result[1])
            if not keep:
                return QualityVerdict(reason_slug(prefix, reason), text)
            if prefix == "c4_" and not self.config.c4_quality.keep_cleaned_text:
                doc.text = before
        return QualityVerdict(None, doc.text)

    def _check_commerce(self, text: str, doc_id: str) -> QualityVerdict:
        from datatrove.data import Document

        rules = self.commerce
        if rules.drop_code_lines:
            text = drop_code_lines(text)
        prose, structured = split_structured(text, rules.structured_line_words)
        if rules.max_structured_dup_frac is not None and structured:
            if (len(structured) - len(set(structured))) / len(structured) > rules.max_structured_dup_frac:
                return QualityVerdict("commerce_structured_dup_frac", text)
        kept = text
        for prefix, step in self.commerce_filters:
            on_prose = prefix in ("gopher_rep_", "fineweb_")  # the rules that count lines and repeats
            if on_prose and not prose:
                continue
            doc = Document(text=prose if on_prose else kept, id=doc_id)
            result = step.filter(doc)
            keep, reason = (result, None) if isinstance(result, bool) else (result[0], result[1])
            if not keep:
                return QualityVerdict(reason_slug(prefix, reason), text)
            if prefix == "c4_" and self.config.c4_quality.keep_cleaned_text:
                kept = doc.text
            if prefix == "gopher_":
                reason = self._commerce_words(kept, prose)
                if reason is not None:
                    return QualityVerdict(reason, text)
        return QualityVerdict(None, kept)

    def _commerce_words(self, text: str, prose: str) -> str | None:
        """Gopher's bullet and ellipsis line shares over the prose lines, then the valid-word ratio and the
        stop words over the whole text (datatrove's order and slugs)."""
        rules, max_bullets = self.commerce, self.config.gopher_quality.max_bullet_lines_ratio
        bullets, ellipsis = prose_line_shares(prose)
        if max_bullets and bullets > max_bullets:
            return "gopher_too_many_bullets"
        if rules.max_ellipsis_lines_ratio is not None and ellipsis > rules.max_ellipsis_lines_ratio:
            return "gopher_too_many_end_ellipsis"
        if rules.min_valid_word_ratio is not None and valid_word_ratio(text) < rules.min_valid_word_ratio:
            return "gopher_below_alpha_threshold"
        if rules.min_stop_words is not None and stop_word_count(text, rules.stop_words) < rules.min_stop_words:
            return "gopher_enough_stop_words"
        return None


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


COMMERCE_KINDS = frozenset({"product", "collection", "commerce"})


class DocumentFilter:
    """The filter stage's decision for one document, checks in order: empty text, language, e-commerce
    score, then the quality rules. The first failing check is the document's `filter_reason`.

    `filter(doc)` reads a record (a row of `extracted/` plus its `ecom_score`) and picks the quality rules
    by the page's kind: `CommerceRules` for a page the classifier accepted or whose raw HTML shows product
    markup, a grid or a cart button; datatrove's rules for the rest."""

    name = "filter"

    def __init__(self, config: FilterConfig | None = None, commerce: CommerceRules | None = None):
        self.config = config or FilterConfig()
        self.quality = QualityFilter(self.config, commerce)
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
        self,
        text: str | None,
        lang: str | None,
        lang_score: float | None,
        ecom_score: float | None,
        doc_id: str = "",
        kind: str = "general",
    ) -> QualityVerdict:
        cfg = self.config
        text = text or ""
        reason = self.precheck(text, lang, lang_score)
        if reason is not None:
            return QualityVerdict(reason, text)
        if cfg.ecommerce_filter and (ecom_score or 0.0) < cfg.ecommerce_threshold:
            return QualityVerdict("not_ecommerce", text)
        return self.quality.check(text, doc_id, kind)

    def rules_for(self, doc: Mapping[str, Any]) -> str:
        """"commerce" or "general": which quality rules read this record."""
        score = doc.get("ecom_score")
        if score is not None and score >= self.config.ecommerce_threshold:
            return "commerce"
        kind = signal_page_kind(doc.get("has_product_markup"), doc.get("html_signals"))
        return "commerce" if kind in COMMERCE_KINDS else "general"

    def filter(self, doc: Mapping[str, Any]) -> QualityVerdict:
        """The verdict for one record: `text`, `lang`, `lang_score`, `ecom_score`, `doc_id`, and the raw-HTML
        signals (`has_product_markup`, `html_signals`) that choose the quality rules."""
        return self.decide(doc.get("text"), doc.get("lang"), doc.get("lang_score"), doc.get("ecom_score"),
                           doc.get("doc_id") or "", kind=self.rules_for(doc))


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
