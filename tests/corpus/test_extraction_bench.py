"""The extraction benchmark end to end on a few real pages: domain folds, both extractors, every output."""

from __future__ import annotations

import json

import pytest


@pytest.mark.shared_data
def test_extraction_bench_cross_validates_by_domain_and_writes_results(shared_data, tmp_path):
    from bench.extraction_bench import main

    out = tmp_path / "extraction.json"
    pages = str(shared_data / "pages" / "wcxb-dev")
    result = main(
        ["--pages", pages, "--folds", "2", "--limit", "4", "--types", "product,article", "--output", str(out)]
    )
    assert json.loads(out.read_text())["by_page_type"] == result["by_page_type"]
    assert set(result["by_page_type"]) == {"product", "article", "all"} and result["pages"] == 8
    folds_of = {}
    for page in result["per_page"]:
        assert 0.0 <= page["ours"] <= 1.0 and 0.0 <= page["plain"] <= 1.0
        folds_of.setdefault(page["domain"], set()).add(page["fold"])
    assert all(len(folds) == 1 for folds in folds_of.values())  # a domain never spans two folds
    entry = result["by_page_type"]["all"]
    assert len(entry["ours_f1_folds"]) == 2 and sum(entry["routes"].values()) == 8
    assert result["time_ratio_ours_over_plain"] > 0
    assert "| product | 4 |" in out.with_suffix(".md").read_text() and out.with_suffix(".png").is_file()
