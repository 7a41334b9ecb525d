"""Each filter's exact drop reason on tiny inline documents (datatrove's check_filter style)."""

from __future__ import annotations

import json

import pytest

from corpus.filter.quality import (
    CommerceRules,
    DocumentFilter,
    QualityFilter,
    categorize,
    is_structured_line,
    load_category_labels,
    normalize_category,
    quality_signals,
    reason_slug,
    signal_page_kind,
    split_structured,
    stop_word_count,
    valid_word_ratio,
)
from infra.core.config import ConfigError, FilterConfig

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


# --- e-commerce pages: CommerceRules ------------------------------------------------------------------------------

SPECS = PROSE + "".join(f"Size {i}: {30 + i} x {40 + i} cm, {i}.5 kg, $ {19 + i}.99, 100 % cotton\n" for i in range(12))
GRID = "Waxed jackets for every season\n" + PROSE + "".join(
    f"{name} field jacket\n${100 + i}.00\nAdd to cart\nQuick view\n"
    for i, name in enumerate(["Olive", "Navy", "Black", "Sand", "Rust", "Forest", "Slate", "Clay"]))


def test_prices_and_units_fail_datatrove_alpha_ratio_but_count_as_words_on_commerce_pages():
    quality = QualityFilter(FilterConfig(gopher_repetition={"enabled": False}))
    assert quality.check(SPECS).reason == "gopher_below_alpha_threshold"
    assert quality.check(SPECS, kind="commerce").reason is None
    assert valid_word_ratio("$189.00 10kg 40% 5\" x 3\" (2)") == 1.0
    assert valid_word_ratio("#$% 7&^ 99!! ~~3") < 0.5


def test_a_product_grid_trips_datatrove_repetition_but_not_the_commerce_rules():
    quality = QualityFilter()
    assert quality.check(GRID).reason is not None
    assert quality.check(GRID, kind="commerce").reason is None


def test_structured_lines_are_specs_prices_and_buttons_not_prose():
    assert is_structured_line("Add to cart") and is_structured_line("$189.00")
    assert is_structured_line("Material: 100% waxed cotton, brass zip")
    assert is_structured_line("| Size | Chest | Length |")
    assert not is_structured_line("The jacket is made of waxed cotton and has been tested in the rain.")
    prose, structured = split_structured(GRID)
    assert "Add to cart" in structured and "Add to cart" not in prose and "tested in the rain" in prose


def test_keyword_spam_and_repeated_prose_are_still_dropped_on_commerce_pages():
    quality = QualityFilter()
    spam = " ".join(["cheap", "deals", "buy", "best", "price"] * 50)
    assert quality.check(spam, kind="commerce").reason is not None
    repeated = "\n".join(["Add to cart now and save on this item today."] * 30)
    assert quality.check(repeated, kind="commerce").reason == "gopher_rep_dup_line_frac"


def test_a_product_card_without_gophers_stop_words_reads_as_english_by_its_function_words():
    """Zalando's card (zyte-products) has none of the, be, to, of, and, that, have, with; spam has no "for" either."""
    card = ("Trail Slides - Pool slides\n€49.10 VAT included\n18-28 working days\nStandard delivery\nFree\n"
            "100 day return policy\nMaterial & care\nUpper material: Synthetics/textile\nLining: Textile\n"
            "Sole: Synthetics\nDetails\nSport: Swimwear, Urban Outdoor\nOutsole: Non-slip, flexible\n"
            "Insoles: Contoured, padded\nArticle number: AD542B1O1-Q11\nSize & fit\nReviews\nSimilar items\n"
            "How about these?\nSlides for men in black, for pool or beach days\n")
    assert stop_word_count(card) == 0 and stop_word_count(card, "function_words") >= 3
    gopher_only = QualityFilter(commerce=CommerceRules(stop_words="gopher"))
    assert gopher_only.check(card, kind="commerce").reason == "gopher_enough_stop_words"
    assert QualityFilter().check(card, kind="commerce").reason is None
    spam = " ".join(["loans", "now", "click", "buy", "sale", "casino", "replica"] * 40)
    assert QualityFilter().check(spam, kind="commerce").reason is not None


def test_repeated_structured_lines_beyond_the_limit_are_dropped_with_their_own_reason():
    text = PROSE + "\n".join(["Loading..."] * 40)
    rules = CommerceRules(max_structured_dup_frac=0.5)
    assert QualityFilter(commerce=rules).check(text, kind="commerce").reason == "commerce_structured_dup_frac"
    assert QualityFilter(commerce=CommerceRules(max_structured_dup_frac=None)).check(
        text, kind="commerce").reason != "commerce_structured_dup_frac"


def test_the_commerce_rules_are_a_config_section_of_the_filter_stage(tmp_path):
    from infra.core.config import load_config

    assert CommerceRules() == CommerceRules.from_config(FilterConfig().commerce)  # one set of defaults
    (tmp_path / "run.yaml").write_text("corpus:\n  filter:\n    commerce: {max_structured_dup_frac: 0.5}\n")
    config = load_config(tmp_path / "run.yaml").corpus.filter
    text = PROSE + "\n".join(["Loading..."] * 40)
    assert QualityFilter(config).check(text, kind="commerce").reason == "commerce_structured_dup_frac"
    # off: a commerce page gets datatrove's rules, as any page does
    off = FilterConfig(gopher_repetition={"enabled": False}, commerce={"enabled": False})
    assert QualityFilter(off).check(SPECS, kind="commerce").reason == "gopher_below_alpha_threshold"
    with pytest.raises(ConfigError, match="commerce"):
        load_config(overrides={"corpus": {"filter": {"commerce": {"min_doc_word": 3}}}})


def test_the_record_chooses_the_rules_by_its_page_kind():
    doc_filter = DocumentFilter(FilterConfig(ecommerce_filter=False, gopher_repetition={"enabled": False}))
    page = {"text": SPECS, "lang": "en", "lang_score": 0.99, "doc_id": "d"}
    assert doc_filter.rules_for(page) == "general"
    assert doc_filter.filter(page).reason == "gopher_below_alpha_threshold"
    shop = {**page, "html_signals": "markup_none listed_0 cart_button price_many"}
    assert doc_filter.rules_for(shop) == "commerce" and doc_filter.filter(shop).reason is None
    assert doc_filter.rules_for({**page, "ecom_score": 0.9}) == "commerce"


def test_signal_page_kind_reads_markup_grids_and_buttons():
    assert signal_page_kind("jsonld", "markup_jsonld listed_0") == "product"
    assert signal_page_kind(None, "markup_jsonld listed_some cart_button") == "collection"
    assert signal_page_kind(None, "markup_none listed_0 cart_button") == "commerce"
    assert signal_page_kind(None, "markup_none listed_0 article_markup") == "article"
    assert signal_page_kind(None, None) == "unknown"


@pytest.mark.shared_data
def test_real_product_and_collection_pages_survive_commerce_rules_where_datatrove_drops_them(shared_data):
    """wcxb-dev product and collection pages, extracted by the pipeline: the first 20 English pages of each
    type that extraction could read (bench/quality_rules_bench.py measures all of them, cross-validated)."""
    import csv
    import gzip

    from corpus.extract.html import extract_page, words
    from corpus.extract.stage import LanguageIdentifier

    root = shared_data / "pages" / "wcxb-dev"
    rows = sorted(csv.DictReader((root / "labels.csv").open(newline="")), key=lambda r: r["file_id"])
    langid, texts = LanguageIdentifier(), {"product": [], "collection": []}
    for row in rows:
        if row["page_type"] not in texts or len(texts[row["page_type"]]) >= 20:
            continue
        page = extract_page(gzip.decompress((root / "html" / f"{row['file_id']}.html.gz").read_bytes()), row["url"])
        truth = json.loads((root / "ground-truth" / f"{row['file_id']}.json").read_text())["ground_truth"]
        reference = set(words(truth.get("main_content") or ""))
        if langid.identify(page.text)[0] == "en" and len(set(words(page.text)) & reference) >= 0.2 * len(reference):
            texts[row["page_type"]].append(page.text)
    quality = QualityFilter()
    pages = texts["product"] + texts["collection"]
    before = sum(quality.check(t).reason is None for t in pages)
    after = sum(quality.check(t, kind="commerce").reason is None for t in pages)
    assert len(pages) == 40
    assert after >= 0.9 * len(pages) and after > before


def test_junk_of_a_generated_crawl_is_removed_under_either_rules(tmp_path):
    from corpus.extract.readers import iter_inputs
    from corpus.extract.stage import ExtractedDoc, ExtractStage
    from infra.sample_crawl.generate import GROUND_TRUTH_NAME, generate_sample_crawl

    generate_sample_crawl(tmp_path, docs=400, seed=7, docs_per_file=400, progress=False)
    truth = {t["record_id"]: t for t in map(json.loads, (tmp_path / GROUND_TRUTH_NAME).read_text().splitlines())}
    junk = [d.text for d in ExtractStage().run(iter_inputs([str(tmp_path)]))
            if isinstance(d, ExtractedDoc) and truth[d.record_id]["page_type"] == "junk"]
    quality = QualityFilter()
    assert len(junk) >= 5
    for kind in ("general", "commerce"):
        assert all(quality.check(text, kind=kind).reason is not None for text in junk), kind
