"""Each filter's exact drop reason on tiny inline documents (datatrove's check_filter style)."""

from __future__ import annotations

import pytest

from corpus.filter.quality import (
    DocumentFilter,
    QualityFilter,
    categorize,
    load_category_labels,
    normalize_category,
    quality_signals,
    reason_slug,
)
from infra.core.config import FilterConfig

PROSE = (
    "The jacket is made of waxed cotton and has been tested in the rain for many hours. "
    "It keeps you dry and warm on long walks, and the hood folds into the collar when you do not need it. "
    "Two deep pockets hold a phone and keys, and the zip is covered so that water stays out. "
    "We ship it within two days and you can return it for free within thirty days of delivery.\n"
)


def check_filter(doc_filter: DocumentFilter, text: str, expected: str | None, **fields) -> None:
    verdict = doc_filter.decide(
        text, fields.get("lang", "en"), fields.get("lang_score", 0.99), fields.get("ecom_score", 0.9)
    )
    assert verdict.reason == expected, f"expected {expected}, got {verdict.reason}"


@pytest.fixture(scope="module")
def default_filter() -> DocumentFilter:
    return DocumentFilter(FilterConfig())


def test_good_product_prose_is_kept(default_filter):
    check_filter(default_filter, PROSE, None)


def test_empty_text_is_dropped_with_reason_empty_text(default_filter):
    check_filter(default_filter, "   ", "empty_text")


def test_other_language_is_dropped_with_reason_wrong_language(default_filter):
    check_filter(default_filter, PROSE, "wrong_language", lang="de")


def test_language_filter_off_keeps_every_language():
    check_filter(DocumentFilter(FilterConfig(languages=None)), PROSE, None, lang="de")


def test_low_language_score_is_dropped_when_a_minimum_is_set():
    check_filter(DocumentFilter(FilterConfig(min_lang_score=0.8)), PROSE, "low_lang_score", lang_score=0.3)


def test_low_ecom_score_is_dropped_with_reason_not_ecommerce(default_filter):
    check_filter(default_filter, PROSE, "not_ecommerce", ecom_score=0.2)


def test_ecommerce_filter_off_keeps_low_scores():
    check_filter(DocumentFilter(FilterConfig(ecommerce_filter=False)), PROSE, None, ecom_score=0.0)


def test_short_document_is_dropped_with_reason_gopher_short_doc():
    cfg = FilterConfig(gopher_repetition={"enabled": False})
    check_filter(DocumentFilter(cfg), "Buy the red shoes today for less.", "gopher_short_doc")


def test_repeated_lines_are_dropped_with_a_gopher_repetition_reason(default_filter):
    text = "\n".join(["Add to cart now and save on this item."] * 30)
    check_filter(default_filter, text, "gopher_rep_dup_line_frac")


def test_hash_heavy_text_is_dropped_with_reason_gopher_too_many_hashes():
    cfg = FilterConfig(gopher_repetition={"enabled": False})
    text = PROSE + " ".join(["#sale #shoes #deal"] * 30)
    check_filter(DocumentFilter(cfg), text, "gopher_too_many_hashes")


def test_lorem_ipsum_is_dropped_with_reason_c4_lorem_ipsum(default_filter):
    check_filter(default_filter, PROSE + "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n",
                 "c4_lorem_ipsum")


def test_curly_bracket_is_dropped_with_reason_c4_curly_bracket(default_filter):
    check_filter(default_filter, PROSE + "var x = { price: 10 } and more words here\n", "c4_curly_bracket")


def test_list_like_page_is_dropped_with_a_fineweb_reason():
    cfg = FilterConfig(gopher_repetition={"enabled": False}, gopher_quality={"enabled": False})
    text = "\n".join(f"item {i} blue" for i in range(80))
    check_filter(DocumentFilter(cfg), text, "fineweb_line_punct_ratio")


def test_none_disables_a_single_gopher_threshold():
    text = "Buy the red shoes today for less."
    cfg = FilterConfig(gopher_repetition={"enabled": False},
                       gopher_quality={"min_doc_words": None, "min_stop_words": None},
                       c4_quality={"enabled": False}, fineweb_quality={"enabled": False})
    check_filter(DocumentFilter(cfg), text, None)


def test_c4_cleaning_removes_javascript_lines_from_kept_text():
    text = PROSE + "Please enable JavaScript to view this page correctly now.\n"
    verdict = QualityFilter(FilterConfig()).check(text)
    assert verdict.reason is None
    assert "JavaScript" not in verdict.text


def test_reason_slug_is_prefixed_and_lowercase():
    assert reason_slug("gopher_rep_", "top_2_gram") == "gopher_rep_top_2_gram"
    assert reason_slug("gopher_", "gopher_short_doc") == "gopher_short_doc"
    assert reason_slug("c4_", "< 3 paragraphs") == "c4_3_paragraphs"


def test_quality_signals_rank_prose_above_a_repeated_list():
    good = quality_signals(PROSE)
    bad = quality_signals("\n".join(["buy now"] * 40))
    assert good["word_count"] > 50 and 3 < good["mean_word_length"] < 6
    assert bad["dup_line_ratio"] > 0.9
    assert 0 <= bad["quality_score"] < good["quality_score"] <= 1
    assert quality_signals(None)["word_count"] == 0


def test_categorize_uses_title_and_product_first():
    assert categorize("Trail running shoes", "lightweight sneakers with a cushioned sole") == "fashion"
    assert categorize("4K OLED TV 55 inch", "hdmi ports and a smart remote") == "electronics"
    assert categorize("Organic coffee beans", "roasted coffee from Peru, fair trade") == "grocery"
    assert categorize("Contact us", "our office hours") == "other"


def test_llm_labels_are_normalised_and_keyed_by_url_and_doc_id(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"url": "https://a.example/p/1", "category": "Beauty & Personal Care"}\n'
                    '{"doc_id": "d2", "category": "Toys"}\n{"url": "https://b.example/x", "category": "??"}\n')
    labels = load_category_labels(path)
    assert labels == {"https://a.example/p/1": "beauty", "d2": "toys", "https://b.example/x": "other"}
    assert normalize_category("ELECTRONICS") == "electronics"
