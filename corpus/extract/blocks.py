"""A page as DOM text blocks with the features a main-content model reads.

Generic extractors decide main content with rules tuned on articles; on product and collection pages they
keep one paragraph and drop specs, prices and product grids. Here a page becomes a list of text blocks (the
text between two block-level tag boundaries, as a browser would break lines), each with features of its
text (length, link density, digit / punctuation / capital ratios), of its place in the tree (the block's
tag, depth, tags and class / id / role keywords of its ancestors, schema.org itemprops, hidden flags) and
of its place on the page (position, distance to the first <h1>, repeats, neighbours' sizes). A learned
model (`corpus.extract.block_model`) scores the blocks; the main text is the blocks it keeps.

One streaming pass of libxml2's HTML parser with a target builds no tree: every open element carries the
cumulative flags of its ancestors, so a block's context is the top of a stack (any depth, linear time).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"\w+")

# Nothing inside these is ever text a reader sees.
SKIP_TAGS = frozenset({
    "script", "style", "noscript", "template", "head", "svg", "iframe", "canvas", "object", "embed", "select",
    "option", "datalist", "textarea", "math",
})  # fmt: skip
BLOCK_TAGS = (
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "table", "section",
    "article", "main", "br", "dd", "dt", "dl", "blockquote", "pre", "figcaption", "figure", "header", "footer",
    "nav", "aside", "form", "button", "label", "address", "details", "summary", "body", "hr", "fieldset",
    "legend", "caption", "thead", "tbody",
)  # fmt: skip
_BLOCK_ID = {tag: i + 1 for i, tag in enumerate(BLOCK_TAGS)}  # 0: no block ancestor (text right in <html>)
# Ancestor tags worth a flag each: a block inside a <nav> or an <a> is rarely main content, one in <main> often.
ANCESTOR_TAGS = (
    "nav", "header", "footer", "aside", "form", "a", "li", "table", "main", "article", "section", "button",
    "label", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "p", "blockquote", "figure", "strong", "b",
    "span", "small", "time", "address", "details", "pre", "code",
)  # fmt: skip
_ANCESTOR_BIT = {tag: 1 << i for i, tag in enumerate(ANCESTOR_TAGS)}
# Substrings of class / id / role values that tell content from chrome (matched per distinct attribute value).
KEYWORDS = (
    "content", "main", "article", "post", "entry", "body", "text", "desc", "detail", "product", "info", "summary",
    "spec", "feature", "review", "comment", "rating", "price", "cart", "buy", "nav", "menu", "header", "footer",
    "sidebar", "side", "breadcrumb", "related", "recommend", "similar", "recent", "popular", "share", "social",
    "cookie", "consent", "newsletter", "modal", "popup", "banner", "promo", "login", "account", "search",
    "filter", "sort", "pagination", "tag", "meta", "author", "date", "title", "heading", "name", "tile", "card",
    "grid", "item", "list", "thumb", "carousel", "slide", "tab", "accordion", "copyright", "legal", "hidden",
    "sr-only", "visually", "skip", "widget", "badge", "variant", "size", "color", "swatch", "qty", "wish",
    "shipping", "deliver", "stock", "avail", "overview", "answer", "question", "reply", "user", "message",
    "toc", "footnote", "caption", "dropdown", "mega", "toolbar", "btn", "button", "icon", "logo", "form",
)  # fmt: skip
ITEMPROPS = ("description", "name", "price", "offers", "review", "brand", "sku", "articlebody", "text", "breadcrumb")
_ITEMPROP_BIT = {prop: 1 << i for i, prop in enumerate(ITEMPROPS)}
ITEMTYPES = ("product", "offer", "review", "itemlist", "article", "breadcrumblist", "question", "comment")
_ITEMTYPE_BIT = {kind: 1 << i for i, kind in enumerate(ITEMTYPES)}
_CURRENCY = frozenset("$€£¥₹")
_PUNCT = frozenset(".,;:!?")


@dataclass(slots=True)
class _Open:
    """An open element: its own tag, and the cumulative context it gives the text inside it."""

    tag: str
    block: int  # id of the innermost block-level tag (itself or an ancestor)
    depth: int
    tags: int  # ANCESTOR_TAGS bits of itself and its ancestors
    keywords: int  # KEYWORDS bits of the class / id / role of itself and its ancestors
    props: int  # ITEMPROPS bits
    types: int  # ITEMTYPES bits
    hidden: bool
    link: bool  # inside an <a>
    skip: bool  # inside a SKIP_TAGS element
    boxes: tuple[int, ...] = ()  # ids of the innermost block-level elements around it, innermost last


@dataclass(slots=True)
class Block:
    """One block's text and the context of its first words."""

    text: str
    words: int
    link_words: int
    context: _Open


class _BlockTarget:
    """lxml parser target cutting the page into blocks; see the module docstring."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        root = _Open("", 0, 0, 0, 0, 0, 0, False, False, False)
        self._stack: list[_Open] = [root]
        self._chunks: list[str] = []
        self._link_words = 0
        self._context: _Open | None = None
        self._keyword_cache: dict[str, int] = {}
        self._elements = 0  # outside SKIP_TAGS: the ids of `_Open.boxes`
        self.elements = 0  # all of them, and the deepest nesting: the page's shape (`html.PageShape`)
        self.depth = 0

    def start(self, tag: Any, attrib: Any) -> None:
        stack = self._stack
        parent = stack[-1]
        self.elements += 1
        if len(stack) > self.depth:
            self.depth = len(stack)
        tag = tag.lower() if isinstance(tag, str) else ""
        is_block = tag in _BLOCK_ID
        if is_block:
            self._flush()
        if parent.skip or tag in SKIP_TAGS:
            stack.append(_Open(tag, parent.block, parent.depth + 1, 0, 0, 0, 0, True, False, True))
            return
        self._elements += 1
        boxes = (*parent.boxes[-3:], self._elements) if is_block else parent.boxes
        own = 0
        props, types, hidden = parent.props, parent.types, parent.hidden
        if attrib:
            get = attrib.get
            value = " ".join(v for v in (get("class"), get("id"), get("role")) if v)
            if value:
                own = self._keyword_cache.get(value)
                if own is None:
                    lowered = value.lower()
                    own = sum(1 << i for i, word in enumerate(KEYWORDS) if word in lowered)
                    self._keyword_cache[value] = own
            prop = get("itemprop")
            if prop:
                props |= _ITEMPROP_BIT.get(prop.lower().split()[0], 0)
            kind = get("itemtype")
            if kind:
                types |= _ITEMTYPE_BIT.get(kind.rstrip("/").rsplit("/", 1)[-1].lower(), 0)
            hidden = (
                hidden
                or get("aria-hidden") == "true"
                or get("hidden") is not None
                or ("display:none" in (get("style") or "").replace(" ", ""))
            )
        stack.append(
            _Open(
                tag,
                _BLOCK_ID.get(tag, parent.block),
                parent.depth + 1,
                parent.tags | _ANCESTOR_BIT.get(tag, 0),
                parent.keywords | own,
                props,
                types,
                hidden,
                parent.link or tag == "a",
                False,
                boxes,
            )
        )

    def end(self, tag: Any) -> None:
        tag = tag.lower() if isinstance(tag, str) else ""
        if tag in _BLOCK_ID:
            self._flush()
        if len(self._stack) > 1:
            self._stack.pop()

    def data(self, text: str) -> None:
        top = self._stack[-1]
        if top.skip:
            return
        if self._context is None:
            if not text.strip():
                return
            self._context = top
        self._chunks.append(text)
        if top.link:
            self._link_words += len(_WORD.findall(text))

    def close(self) -> list[Block]:
        self._flush()
        return self.blocks

    def _flush(self) -> None:
        if self._context is None:
            return
        text = " ".join("".join(self._chunks).split())
        n_words = len(_WORD.findall(text))
        if n_words:
            self.blocks.append(Block(text, n_words, min(self._link_words, n_words), self._context))
        self._chunks.clear()
        self._link_words = 0
        self._context = None


def scan_page(html: str) -> tuple[list[Block], int, int]:
    """The page's text blocks in document order, its deepest nesting and its number of elements, in one
    streaming pass (no tree: any depth, linear time)."""
    import lxml.etree

    target = _BlockTarget()
    parser = lxml.etree.HTMLParser(
        target=target, encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True
    )
    try:
        blocks = lxml.etree.fromstring(html.encode("utf-8", errors="replace"), parser)
    except (ValueError, lxml.etree.LxmlError):  # an empty or unparsable document
        blocks = target.close()
    return blocks, target.depth, target.elements


def page_blocks(html: str) -> list[Block]:
    """The page's text blocks in document order (`scan_page`)."""
    return scan_page(html)[0]


# --- features ---------------------------------------------------------------------------------------------------------

_TEXT_FEATURES = (
    "in_extracted", "log_words", "log_chars", "link_density", "digit_ratio", "punct_ratio", "upper_ratio", "currency",
    "ends_sentence", "mean_word_len", "block_tag", "depth", "hidden", "in_link",
)  # fmt: skip
_PAGE_FEATURES = (
    "position", "char_position", "after_h1", "blocks_from_h1", "repeats", "title_overlap", "prev_log_words",
    "next_log_words", "prev_link_density", "next_link_density", "page_log_blocks", "page_log_words",
    "page_link_density", "page_product_markup", "page_listed", "page_itemlist", "page_article_markup",
    "page_commerce", "page_extracted_log_words",
)  # fmt: skip
FEATURE_NAMES = (
    *_TEXT_FEATURES,
    *_PAGE_FEATURES,
    *(f"tag_{t}" for t in ANCESTOR_TAGS),
    *(f"kw_{k}" for k in KEYWORDS),
    *(f"prop_{p}" for p in ITEMPROPS),
    *(f"type_{t}" for t in ITEMTYPES),
)
CATEGORICAL = ("block_tag",)


@dataclass
class PageContext:
    """Page-level signals the block features share (known before the blocks are scored)."""

    title: str | None = None
    product_markup: bool = False
    listed: int = 0  # product names in ItemList markup
    itemlist: bool = False
    article_markup: bool = False
    commerce: bool = False
    extracted: str | None = None  # trafilatura's text of the page: which blocks a generic extractor keeps


def _bits(mask: int, n: int, cache: dict[tuple[int, int], list[float]]) -> list[float]:
    """The mask's n low bits as 0.0 / 1.0 (few distinct masks per page: cached)."""
    bits = cache.get((mask, n))
    if bits is None:
        bits = cache[mask, n] = [float((mask >> i) & 1) for i in range(n)]
    return bits


_DIGITS = re.compile(r"\d")
_UPPER = re.compile(r"[A-Z\u00c0-\u00de]")
_PUNCTS = re.compile(r"[.,;:!?]")
_CURRENCIES = re.compile(r"[$€£¥₹]")


def block_features(blocks: list[Block], page: PageContext) -> list[list[float]]:
    """One feature row per block, in `FEATURE_NAMES` order."""
    n = len(blocks)
    if not n:
        return []
    total_words = sum(b.words for b in blocks)
    total_chars = sum(len(b.text) for b in blocks) or 1
    link_words = sum(b.link_words for b in blocks)
    h1_bit = _ANCESTOR_BIT["h1"]
    first_h1 = next((i for i, b in enumerate(blocks) if b.context.tags & h1_bit), None)
    lowered = [b.text.lower() for b in blocks]
    repeats = Counter(lowered)
    title_words = set(_WORD.findall(page.title.lower())) if page.title else set()
    page_row = [
        math.log1p(n), math.log1p(total_words), link_words / max(total_words, 1), float(page.product_markup),
        math.log1p(page.listed), float(page.itemlist), float(page.article_markup), float(page.commerce),
        math.log1p(len(_WORD.findall(page.extracted or ""))),
    ]  # fmt: skip
    in_extracted = reference_coverage(blocks, page.extracted or "")
    log_words = [math.log1p(b.words) for b in blocks]
    density = [b.link_words / b.words for b in blocks]
    rows = []
    chars_before = 0
    n_tags, n_keywords, n_props, n_types = len(ANCESTOR_TAGS), len(KEYWORDS), len(ITEMPROPS), len(ITEMTYPES)
    cache: dict[tuple[int, int], list[float]] = {}
    for i, block in enumerate(blocks):
        text, ctx = block.text, block.context
        n_chars = len(text)
        overlap = len(title_words.intersection(_WORD.findall(lowered[i]))) / len(title_words) if title_words else 0.0
        row = [
            in_extracted[i], log_words[i], math.log1p(n_chars), density[i], len(_DIGITS.findall(text)) / n_chars,
            len(_PUNCTS.findall(text)) / n_chars, len(_UPPER.findall(text)) / n_chars,
            float(_CURRENCIES.search(text) is not None), float(text[-1] in ".!?"), n_chars / block.words,
            float(ctx.block), float(ctx.depth), float(ctx.hidden), float(ctx.link),
            i / n, chars_before / total_chars, float(first_h1 is not None and i >= first_h1),
            float(i - first_h1) if first_h1 is not None else -1000.0, float(repeats[lowered[i]]), overlap,
            log_words[i - 1] if i else 0.0, log_words[i + 1] if i + 1 < n else 0.0,
            density[i - 1] if i else 0.0, density[i + 1] if i + 1 < n else 0.0,
            *page_row,
        ]  # fmt: skip
        row += _bits(ctx.tags, n_tags, cache)
        row += _bits(ctx.keywords, n_keywords, cache)
        row += _bits(ctx.props, n_props, cache)
        row += _bits(ctx.types, n_types, cache)
        rows.append(row)
        chars_before += n_chars
    return rows


# --- labels from a reference text (training only) ---------------------------------------------------------------------


def reference_coverage(blocks: list[Block], reference: str) -> list[float]:
    """Per block, the share of its word trigrams found in the reference (a block of one or two words: 1.0
    when its words occur there as one contiguous run, else 0.0)."""
    ref = _WORD.findall(reference.lower())
    trigrams = {tuple(ref[i : i + 3]) for i in range(len(ref) - 2)}
    joined = f" {' '.join(ref)} "
    shares = []
    for block in blocks:
        toks = _WORD.findall(block.text.lower())
        if len(toks) >= 3:
            grams = [tuple(toks[i : i + 3]) for i in range(len(toks) - 2)]
            shares.append(sum(g in trigrams for g in grams) / len(grams))
        else:
            shares.append(float(bool(ref) and f" {' '.join(toks)} " in joined))
    return shares


def block_labels(blocks: list[Block], reference: str, min_share: float = 0.5, reach: int = 3) -> list[int]:
    """1 for a block whose text is in the reference main content, else 0.

    A block of three words or more is in when at least `min_share` of its word trigrams occur in the
    reference. A shorter one ("$110", "Men") matches by chance anywhere, so it is in only when its words
    occur in the reference as one contiguous run and a longer block within `reach` blocks of it is in.
    """
    ref = _WORD.findall(reference.lower())
    trigrams = {tuple(ref[i : i + 3]) for i in range(len(ref) - 2)}
    joined = f" {' '.join(ref)} "
    labels: list[int | None] = []
    for block in blocks:
        toks = _WORD.findall(block.text.lower())
        if len(toks) >= 3:
            grams = [tuple(toks[i : i + 3]) for i in range(len(toks) - 2)]
            labels.append(int(sum(g in trigrams for g in grams) >= min_share * len(grams)))
        else:
            labels.append(None if f" {' '.join(toks)} " in joined else 0)
    long_in = [i for i, label in enumerate(labels) if label == 1]
    out = []
    for i, label in enumerate(labels):
        if label is None:
            label = int(any(abs(i - j) <= reach for j in long_in[max(0, _bisect(long_in, i) - 1) :][:2]))
        out.append(label)
    return out


def word_f1(predicted: str, reference: str) -> tuple[float, float, float]:
    """Bag-of-words precision, recall, F1 of `predicted` against `reference` over lower-cased `\\w+` tokens
    (WCXB's measure)."""
    pred = Counter(_WORD.findall((predicted or "").lower()))
    ref = Counter(_WORD.findall((reference or "").lower()))
    if not pred and not ref:
        return 1.0, 1.0, 1.0
    overlap = sum((pred & ref).values())
    precision = overlap / sum(pred.values()) if pred else 0.0
    recall = overlap / sum(ref.values()) if ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _bisect(values: list[int], x: int) -> int:
    import bisect

    return bisect.bisect_left(values, x)
