"""The block model: a page cut into blocks, labels from a reference text, training that reproduces by seed,
the shipped model file, and extraction of real product pages with it."""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest

from corpus.extract.block_model import (
    BlockModel,
    ModelFileError,
    load_block_model,
    load_training_pages,
    select_text,
    train_block_model,
)
from corpus.extract.blocks import FEATURE_NAMES, PageContext, block_features, block_labels, page_blocks
from corpus.extract.html import decode_html, extract_page, extract_product_data, words

SHOP = (
    "<html><head><title>Wool socks</title><script>var cart = 1;</script></head><body>"
    "<nav class='menu'><a href='/'>Home</a> <a href='/shop'>Shop</a></nav>"
    "<main><h1>Merino wool socks</h1><div itemprop='description'><p>Soft merino wool keeps feet warm and dry "
    "on long winter hikes.</p></div><ul><li>Size S</li><li>Size M</li></ul><button>Add to cart</button></main>"
    "<footer class='site-footer'>(c) 2026 <a href='/legal'>Legal</a></footer></body></html>"
)


def test_page_is_cut_into_blocks_with_their_context():
    blocks = page_blocks(SHOP)
    texts = [b.text for b in blocks]
    assert texts == [
        "Home Shop", "Merino wool socks", "Soft merino wool keeps feet warm and dry on long winter hikes.",
        "Size S", "Size M", "Add to cart", "(c) 2026 Legal",
    ]  # fmt: skip
    assert all("var cart" not in t for t in texts)  # script text is never a block
    nav, heading, description = blocks[:3]
    assert nav.link_words == nav.words == 2 and heading.link_words == 0
    rows = block_features(blocks, PageContext(title="Wool socks"))
    assert len(rows) == len(blocks) and all(len(r) == len(FEATURE_NAMES) for r in rows)
    feature = {name: i for i, name in enumerate(FEATURE_NAMES)}
    assert rows[0][feature["tag_nav"]] == 1 and rows[0][feature["kw_menu"]] == 1
    assert rows[2][feature["prop_description"]] == 1 and rows[2][feature["tag_main"]] == 1
    assert rows[1][feature["tag_h1"]] == 1 and rows[2][feature["after_h1"]] == 1 and rows[0][feature["after_h1"]] == 0
    assert rows[6][feature["kw_footer"]] == 1 and rows[0][feature["link_density"]] == 1.0


def test_block_labels_follow_the_reference_text():
    blocks = page_blocks(SHOP)
    reference = "Merino wool socks\n\nSoft merino wool keeps feet warm and dry on long winter hikes.\n\nSize S"
    # "Size M" and "Home Shop" are not in the reference; "Size S" is, next to a long block that is
    assert block_labels(blocks, reference) == [0, 1, 1, 1, 0, 0, 0]


def test_missing_or_foreign_model_file_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelFileError, match="block model file not found: .*nothing.json") as err:
        load_block_model(str(tmp_path / "nothing.json"))
    assert "\n" not in str(err.value)
    (tmp_path / "old.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelFileError, match="old.json: not a block model"):
        load_block_model(str(tmp_path / "old.json"))


def _few_wcxb_pages(shared_data, per_type: int = 5):
    root = shared_data / "pages" / "wcxb-dev"
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    wanted = [r["file_id"] for t in ("product", "article") for r in [r for r in rows if r["page_type"] == t][:per_type]]
    return load_training_pages(root, set(wanted))


@pytest.mark.shared_data
def test_block_model_trains_reproducibly_and_learns_its_pages(shared_data):
    pages = _few_wcxb_pages(shared_data)
    model = train_block_model(pages, seed=3)
    again = train_block_model(pages, seed=3)
    assert model.to_json() == again.to_json()  # same pages, same seed: the same trees
    restored = BlockModel.from_json(json.loads(json.dumps(model.to_json())))
    page = pages[0]
    assert np.allclose(restored.predict_proba(page.rows, page.blocks), model.predict_proba(page.rows, page.blocks))
    # 10 domains: enough for the router (2 inner folds of the pages, each trained on the other's domains)
    assert model.router is not None
    assert [restored.prefers_blocks(p.rows, p.blocks) for p in pages] == [
        model.prefers_blocks(p.rows, p.blocks) for p in pages
    ]
    assert train_block_model(pages, seed=3, router=False).router is None
    from corpus.extract.blocks import word_f1

    kept = [word_f1(select_text(p.blocks, model.predict_proba(p.rows, p.blocks), 0.5), p.reference)[2] for p in pages]
    everything = [word_f1("\n".join(b.text for b in p.blocks), p.reference)[2] for p in pages]
    assert np.mean(kept) > np.mean(everything) + 0.2, (kept, everything)  # it learned to leave chrome out


@pytest.mark.shared_data
def test_shipped_model_extracts_real_product_pages_titles_and_descriptions(shared_data):
    """Zyte benchmark product pages (never used in training): each one's name and description, as its own
    schema.org markup states them, should be in the title and the extracted text, more often than
    trafilatura has them."""
    import trafilatura

    root = shared_data / "pages" / "zyte-products"
    truth = json.loads((root / "ground-truth.json").read_text())
    pages = named = ours = plain = 0
    for key in sorted(truth):
        html = decode_html(gzip.open(root / "html" / f"{key}.html.gz").read())
        product = extract_product_data(html, truth[key]["url"]).product or {}
        if not product.get("name") or len(words(product.get("description"))) < 20:
            continue
        page = extract_page(html, truth[key]["url"])
        assert page.extractor.startswith("blocks"), key  # product markup: the block model's route
        description = set(words(product["description"]))
        pages += 1
        named += set(words(product["name"])) <= set(words(page.title)) | set(words(page.text))
        ours += len(description & set(words(page.text))) >= 0.8 * len(description)
        plain += len(description & set(words(trafilatura.extract(html)))) >= 0.8 * len(description)
    assert pages >= 50
    assert named >= 0.95 * pages and ours >= 0.6 * pages and ours > plain, (pages, named, ours, plain)
