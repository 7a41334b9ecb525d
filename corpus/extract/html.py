"""Main-content extraction: a learned block model on e-commerce pages, trafilatura elsewhere, plus product data.

Generic extractors are weakest on product and collection pages (WCXB: trafilatura product 0.567,
collection 0.553 word F1): they keep the article-like part and drop specs, prices and product
grids. `extract_page` routes a page with commerce signals (product markup, an ItemList, cart buttons)
and no article markup to the block model (`corpus.extract.block_model`: gradient-boosted trees over the
page's DOM blocks, trained on WCXB dev's reference main content; extractor "blocks"), and any other page
where the model's router, learned from which extractor scored better on WCXB dev pages of other domains,
expects the block model to read it better. The rest get trafilatura with its defaults (measured best on
WCXB dev, recall mode included); on commerce pages
without a block model (`block_model=False`) it falls back to the page's visible text when trafilatura's
extraction is much shorter than it. Commerce pages then drop repeated paragraphs, keep the page heading,
and merge schema.org product fields (name, brand, description, price) where they add words.

Pathological pages do not reach trafilatura: libxml2 stops building a tree 256 levels deep (the text
below is lost) and trafilatura's XPath passes grow faster than linearly with the number of elements
(200k paragraphs: over a minute, in C code the time limit cannot interrupt). A first streaming pass
(lxml's parser with a target, no tree) measures the page; too deep or too many elements, and the page's
visible text comes from a second streaming pass instead (`stream_text`, extractor "stream-text"), in time
linear in its size. The same pass rescues the text when trafilatura finds nothing on a page full of it.

Product structured data (at the end): schema.org Product / Offer / ItemList from JSON-LD and microdata,
read with extruct and normalised into one flat dict per page (name, brand, description, price, currency,
sku, gtin) plus the names of listed products for collection pages; extruct only runs when the raw HTML
mentions a syntax.
"""

from __future__ import annotations

import html as html_lib
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from corpus.extract.block_model import BlockModel, block_rows, load_block_model, page_context
from corpus.extract.blocks import scan_page

_WORD = re.compile(r"\w+")
# Commerce signals, matched as plain substrings of the lower-cased page (a regex over multi-MB pages
# cost a quarter of trafilatura's own time).
_COMMERCE_SIGNALS = (
    "add to cart", "add-to-cart", "add_to_cart", "addtocart", "add to bag", "add-to-bag", "add to basket",
    "add-to-basket", "buy now", "buy-now", "in den warenkorb", "ajouter au panier", "añadir al carrito",
    '"@type":"product"', '"@type": "product"', '"@type":"offer"', '"@type": "offer"', "schema.org/product",
    "schema.org/offer", 'og:type" content="product', "og:type' content='product",
)  # fmt: skip


# Pages that declare themselves articles (schema.org Article types, og:type article): reviews and buying guides
# link to shops ("buy now") yet read as articles, and the commerce repairs only cost them words.
_ARTICLE_MARKUP = re.compile(
    r'"@type"\s*:\s*"(?:article|newsarticle|blogposting|reportagenewsarticle|techarticle)"|og:type"\s+content="article'
)


def has_commerce_signals(lowered_html: str) -> bool:
    return any(signal in lowered_html for signal in _COMMERCE_SIGNALS)


def commerce_evidence(lowered_html: str) -> bool:
    """Whether the raw page shows any sign of selling (a cart or buy button, product or offer markup, the
    substring "cart" or "sku" anywhere, or "price" twice): the extract stage's pre-classifier
    (`corpus.extract.prefilter`), which spares trafilatura pages that cannot pass the e-commerce classifier.
    A recall-first rule: on wcxb-dev it lets through 92 of 92 product and 90 of 91 collection pages and stops
    301 of 566 articles, forums, docs and service pages (`bench/corpus_chain_bench.py --pages real`)."""
    return (has_commerce_signals(lowered_html) or "cart" in lowered_html or "sku" in lowered_html
            or lowered_html.count("price") >= 2)


# Words whose frequency in the raw HTML tells shops from articles, forums and docs even where the extracted
# text does not: a product grid's markup repeats "price" and "cart" dozens of times, a forum's "reply".
_HTML_WORDS = ("price", "product", "cart", "checkout", "wishlist", "sku", "review", "comment", "reply", "author")


def count_bucket(n: int) -> str:
    """A count as a coarse word (0, 1, few, some, many), for fastText tokens."""
    return "0" if n == 0 else "1" if n == 1 else "few" if n < 5 else "some" if n < 20 else "many"


def html_signals(lowered_html: str, data: ProductData) -> str:
    """Structural signals of the raw page as words ("markup_jsonld cart listed_few price_many ..."), for the
    e-commerce classifier: `extracted/` keeps them, since the HTML itself is not carried past extraction."""
    signals = [f"markup_{data.markup or 'none'}", f"listed_{count_bucket(len(data.listed_names))}"]
    if has_commerce_signals(lowered_html):
        signals.append("cart_button")
    if _ARTICLE_MARKUP.search(lowered_html):
        signals.append("article_markup")
    signals += [f"{word}_{count_bucket(lowered_html.count(word))}" for word in _HTML_WORDS]
    return " ".join(signals)


class ExtractionTimeout(Exception):
    """A page took longer than the per-page time limit."""


@dataclass
class ExtractedPage:
    """What extraction found on one page."""

    title: str | None
    text: str
    product: dict[str, str | None] | None = None
    extractor: str = "trafilatura"  # "blocks", "trafilatura", "visible-text", "html2txt", "stream-text"; +"+product"
    has_product_markup: str | None = None  # "jsonld" / "microdata" when a Product was found
    listed_names: list[str] = field(default_factory=list)
    commerce: bool = False  # commerce signals seen (markup, cart buttons): the repairs ran
    signals: str = ""  # the raw page's structural signals (`html_signals`)
    seconds: float = 0.0


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ExtractionTimeout after `seconds` (SIGALRM, so main thread only; elsewhere no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise ExtractionTimeout(f"page extraction exceeded {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class UndecodableError(ValueError):
    """The payload's bytes are not text in its declared charset."""


def decode_html(html: bytes | str, charset: str | None = None, errors: str = "replace") -> str:
    """Unicode text of a page.

    With a declared charset the bytes must decode in it (errors="strict" raises UndecodableError,
    "replace" substitutes); without one: UTF-8, else the charset trafilatura detects, else lossy UTF-8.
    """
    if isinstance(html, str):
        return html
    if charset:
        try:
            return html.decode(charset, errors="strict")
        except LookupError:
            pass  # an unknown charset name: detect instead
        except UnicodeDecodeError as err:
            if errors == "strict":
                raise UndecodableError(f"payload is not valid {charset}: {err.reason} at byte {err.start}") from err
            return html.decode(charset, errors="replace")
    from trafilatura.utils import decode_file

    return decode_file(html)


def words(text: str | None) -> list[str]:
    return _WORD.findall(text.lower()) if text else []


def extract_page(
    html: bytes | str,
    url: str | None = None,
    *,
    timeout: float | None = None,
    include_product: bool = True,
    favor: str = "auto",
    fallback_ratio: float = 0.1,
    block_model: BlockModel | None | bool = True,
    lowered: str | None = None,
) -> ExtractedPage:
    """Extract title and main text of one HTML page.

    Args:
        timeout: seconds before ExtractionTimeout is raised (None: no limit).
        include_product: merge product structured data into the text where it adds words.
        favor: trafilatura's mode: "auto" and "balanced" use its defaults, or "precision" / "recall".
        fallback_ratio: on commerce pages, when the extraction has fewer words than 3x this share
            of the page's visible text (or this share of its whole text), that text is used instead
            (trafilatura missed the product grid); 0 turns the fallback off.
        block_model: the main-content model for commerce pages: True for the shipped one, a `BlockModel`
            (the benchmark's per-fold models), or False / None for trafilatura on every page.
        lowered: the decoded page's `.lower()` when the caller has it already (the pre-classifier does).
    """
    start = time.perf_counter()
    model = load_block_model() if block_model is True else block_model or None
    with time_limit(timeout):
        page = _extract(decode_html(html), url, include_product, favor, fallback_ratio, model, lowered)
    page.seconds = time.perf_counter() - start
    return page


def _extract(
    html: str, url: str | None, include_product: bool, favor: str, fallback_ratio: float, model: BlockModel | None,
    lowered: str | None = None,
) -> ExtractedPage:
    lowered = html.lower() if lowered is None else lowered
    data = extract_product_data(html, url, lowered) if include_product else ProductData()
    commerce = data.markup is not None or bool(data.listed_names) or has_commerce_signals(lowered)
    article = data.product is None and _ARTICLE_MARKUP.search(lowered) is not None
    title = page_title(html)
    shape = None
    if model is not None:  # the block model's pass measures the page's shape too
        blocks, depth, elements = scan_page(html)
        shape = PageShape(depth, elements)
    fast = model is not None and fast_trafilatura(commerce, article, data)
    text, extractor = _main_text(html, url, favor, shape, fast)
    # trafilatura's text is one of the block model's features: which blocks a generic extractor keeps. The
    # model reads commerce pages, and the others where its router expects it to read them better.
    if model is not None and extractor == "trafilatura":
        rows = block_rows(blocks, page_context(lowered, data, title, commerce, article, text))
        if (commerce and not article) or model.prefers_blocks(rows, blocks):
            text, extractor = model.main_text(rows, blocks), "blocks"
    # grids are on listing pages, not on one product's
    if commerce and extractor == "trafilatura" and fallback_ratio > 0 and data.product is None:
        text, extractor = _maybe_fallback(html, text, fallback_ratio)
    if not text and extractor in ("trafilatura", "blocks"):
        text, extractor = _rescue(html)
    # An article's own extraction is kept as it is: the repairs below only cost it words (measured on WCXB dev).
    repair = commerce and not (article and extractor == "trafilatura")
    if repair:
        text = _drop_repeated_lines(text)
    # A product's or listing's name is main content; an article's headline mostly is not (WCXB leaves it out).
    if repair and text and title and not _contains(text, title):  # a title alone is no main content
        text = f"{title}\n{text}"
    if include_product and data.product:
        added = _product_lines(data, text)
        if added:
            text = "\n".join([text, *added]) if text else "\n".join(added)
            extractor += "+product"
    return ExtractedPage(
        title=title,
        text=text.strip(),
        product=data.product,
        extractor=extractor,
        has_product_markup=data.markup,
        listed_names=data.listed_names,
        commerce=commerce,
        signals=html_signals(lowered, data),
    )


def fast_trafilatura(commerce: bool, article: bool, data: ProductData) -> bool:
    """Whether trafilatura runs in its fast mode (no readability / jusText comparisons, a third cheaper) where a
    block model is on: on listing pages the block model reads anyway, where trafilatura's text is only a feature
    (the model is trained on the same, `block_model.html_page_context`). On product pages the full mode's text is
    the better feature (WCXB dev, 3 folds: 0.622 against 0.596)."""
    return commerce and not article and data.product is None


def _main_text(
    html: str, url: str | None, favor: str, shape: PageShape | None = None, fast: bool = False
) -> tuple[str, str]:
    """(text, extractor): trafilatura's main text (`fast`: without its fallback extractors), or the streaming
    visible text of a page too deep or too large for it (`shape`, measured here when not given), or on which
    it fails."""
    import trafilatura

    if (shape or page_shape(html)).pathological:
        return stream_text(html), "stream-text"
    try:
        # Measured on WCXB dev (even file_ids): trafilatura's defaults beat favor_recall on product and
        # collection pages too, so "auto" keeps them and repairs the output afterwards instead.
        text = trafilatura.extract(
            html,
            url=url,
            favor_recall=favor == "recall",
            favor_precision=favor == "precision",
            include_tables=True,
            fast=fast,
        )
    except ExtractionTimeout:
        raise
    except Exception:  # lxml / trafilatura failing on odd markup: the streaming pass still reads the text
        return stream_text(html), "stream-text"
    return text or "", "trafilatura"


def _maybe_fallback(html: str, text: str, ratio: float) -> tuple[str, str]:
    """On commerce pages trafilatura often keeps one block and drops the product grid: when its
    text is much shorter than the page's cleaned visible text, take that text instead."""
    import trafilatura

    n_words = len(words(text))
    visible = visible_text(html)
    if n_words < 3 * ratio * len(words(visible)):
        return visible, "visible-text"
    whole = trafilatura.html2txt(html)
    if n_words < ratio * len(words(whole)):
        return whole, "html2txt"
    return text, "trafilatura"


def _drop_repeated_lines(text: str, min_words: int = 4) -> str:
    """Carousels and tabs repeat whole paragraphs; keep the first copy of each."""
    seen: set[str] = set()
    lines = []
    for line in text.split("\n"):
        key = " ".join(words(line))
        if key.count(" ") + 1 >= min_words and key in seen:
            continue
        seen.add(key)
        lines.append(line)
    return "\n".join(lines)


_DROP_TAGS = {
    "script", "style", "noscript", "svg", "nav", "header", "footer", "aside", "form", "iframe", "template",
    "button", "select", "option", "head", "dialog", "canvas", "video", "audio", "picture", "img", "input",
    "textarea", "label",
}  # fmt: skip
_BOILERPLATE = re.compile(
    r"(^|[\s_-])(nav|navbar|navigation|menu|megamenu|footer|header|cookie|consent|newsletter|breadcrumbs?|modal|"
    r"popup|drawer|sidebar|banner|announcement|skip|search|account|login|signin|social|share|minicart|mini-cart)"
    r"([\s_-]|$)",
    re.IGNORECASE,
)
_BLOCK_TAGS = {
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section", "article", "main",
    "br", "dd", "dt", "dl", "blockquote", "pre", "td", "th", "figcaption", "a",
}  # fmt: skip


def visible_text(html: str) -> str:
    """The page's visible text, one line per block, without navigation, headers, footers and pop-ups."""
    import lxml.etree
    import lxml.html

    try:
        tree = lxml.html.fromstring(html)
    except (ValueError, TypeError, lxml.etree.ParserError):
        return ""
    root = tree.find("body") if tree.find("body") is not None else tree
    doomed = [
        element
        for element in root.iter()
        if not isinstance(element.tag, str) or _hidden(element.tag.lower(), element.attrib)
    ]
    for element in doomed:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)  # its tail goes too: text after a dropped block is rarely content
    lines: list[str] = []
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            lines.append(" ".join("".join(buffer).split()))
            buffer.clear()

    # iterwalk instead of recursion: real pages nest deeper than Python's recursion limit
    for event, element in lxml.etree.iterwalk(root, events=("start", "end")):
        block = isinstance(element.tag, str) and element.tag.lower() in _BLOCK_TAGS
        if event == "start":
            if block:
                flush()
            buffer.append(element.text or "")
        else:
            if block:
                flush()
            if element is not root:
                buffer.append(element.tail or "")
    flush()
    return "\n".join(line for line in lines if line)


def _hidden(tag: str, attrs: Any) -> bool:
    """True for an element whose text is not content: scripts, forms, navigation, headers and footers,
    pop-ups, and anything hidden from view."""
    return (
        tag in _DROP_TAGS
        or _BOILERPLATE.search(f"{attrs.get('class') or ''} {attrs.get('id') or ''} {attrs.get('role') or ''}")
        is not None
        or attrs.get("aria-hidden") == "true"
        or "display:none" in (attrs.get("style") or "").replace(" ", "")
    )


# --- pathological pages: streaming passes that build no tree ---------------------------------------------------------

# libxml2 builds at most 256 levels and drops what lies deeper; real pages nest far less (987 WCXB and Zyte
# pages: at most 56 levels, at most 17.8k elements).
MAX_TREE_DEPTH = 200
# trafilatura took 4 s on 50k paragraphs and over a minute on 200k (in C code the time limit cannot stop).
MAX_ELEMENTS = 40_000
RESCUE_WORDS = 100  # a page trafilatura finds empty, with at least this many visible words, keeps them


@dataclass
class PageShape:
    """How deep a page nests and how many elements it has, as libxml2's parser sees it."""

    depth: int = 0
    elements: int = 0

    @property
    def pathological(self) -> bool:
        return self.depth > MAX_TREE_DEPTH or self.elements > MAX_ELEMENTS


class _ShapeTarget:
    """lxml parser target that only counts: no tree is built, so any depth parses in linear time."""

    def __init__(self) -> None:
        self.shape = PageShape()
        self._depth = 0

    def start(self, tag: str, attrib: Any) -> None:
        self._depth += 1
        self.shape.elements += 1
        self.shape.depth = max(self.shape.depth, self._depth)

    def end(self, tag: str) -> None:
        self._depth -= 1

    def close(self) -> PageShape:
        return self.shape


class _TextTarget:
    """lxml parser target collecting the visible text one line per block, skipping `_hidden` elements and
    everything inside them; a stack of flags replaces the tree. Unlike `visible_text`, the text that follows
    a hidden element (its tail) is kept."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._buffer: list[str] = []
        self._hiding: list[bool] = []  # per open element: does it hide its content?
        self._hidden = 0  # open elements that hide

    def start(self, tag: str, attrib: Any) -> None:
        tag = tag.lower() if isinstance(tag, str) else ""
        # inside a hidden element nothing shows anyway; without attributes only the tag can hide
        hides = not self._hidden and (_hidden(tag, attrib) if attrib else tag in _DROP_TAGS)
        self._hiding.append(hides)
        self._hidden += hides
        if tag in _BLOCK_TAGS:
            self._flush()

    def end(self, tag: str) -> None:
        if self._hiding:
            self._hidden -= self._hiding.pop()
        if isinstance(tag, str) and tag.lower() in _BLOCK_TAGS:
            self._flush()

    def data(self, text: str) -> None:
        if not self._hidden:
            self._buffer.append(text)

    def close(self) -> str:
        self._flush()
        return "\n".join(self.lines)

    def _flush(self) -> None:
        if self._buffer:
            line = " ".join("".join(self._buffer).split())
            if line:
                self.lines.append(line)
            self._buffer.clear()


def _stream(html: str, target: Any) -> Any:
    """Run libxml2's HTML parser over the page with a target (SAX-like: no tree, no depth limit)."""
    import lxml.etree

    parser = lxml.etree.HTMLParser(
        target=target, encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True
    )
    try:  # as UTF-8 bytes: lxml refuses a str that carries an XML encoding declaration
        return lxml.etree.fromstring(html.encode("utf-8", errors="replace"), parser)
    except (ValueError, lxml.etree.LxmlError):  # an empty or unparsable document
        return target.close()


def page_shape(html: str) -> PageShape:
    """Depth and element count of a page (one streaming pass; ~20 ms per MB)."""
    return _stream(html, _ShapeTarget())


def stream_text(html: str) -> str:
    """The page's visible text, one line per block, in one streaming pass: for pages too deep or too large
    for a tree (see `MAX_TREE_DEPTH`, `MAX_ELEMENTS`)."""
    return _stream(html, _TextTarget())


def _rescue(html: str) -> tuple[str, str]:
    """("", "trafilatura") as trafilatura left it, unless the page's visible text says there was text to keep."""
    text = stream_text(html)
    return (text, "stream-text") if len(words(text)) >= RESCUE_WORDS else ("", "trafilatura")


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def page_title(html: str) -> str | None:
    """The page's main heading (first <h1>), else its <title>."""
    import html as html_lib

    for pattern in (_H1, _TITLE):
        match = pattern.search(html)
        if match:
            title = _clean(html_lib.unescape(_TAGS.sub(" ", match.group(1))))
            if title:
                return title[:500]
    return None


def _clean(value: str | None) -> str | None:
    value = " ".join(value.split()) if value else None
    return value or None


def _contains(text: str, snippet: str) -> bool:
    """True when nearly all of the snippet's words already occur in the text."""
    wanted = set(words(snippet))
    return not wanted or len(wanted & set(words(text))) >= 0.8 * len(wanted)


def _product_lines(data: ProductData, text: str, short_words: int = 50) -> list[str]:
    """Product fields whose words the text lacks: name, brand and price; the description only when
    the extraction is short (under `short_words`), since a page's own text usually says more."""
    product = data.product or {}
    lines = []
    keys = ("name", "brand", "description") if len(words(text)) < short_words else ("name", "brand")
    for key in keys:
        value = product.get(key)
        if value and not _contains(text, value):
            lines.append(value)
    price = product.get("price")
    if price and price not in text:
        lines.append(f"{price} {product.get('currency') or ''}".strip())
    return lines


# --- product structured data (extruct) --------------------------------------------------------------------------------

PRODUCT_FIELDS = ("name", "brand", "description", "price", "currency", "sku", "gtin")
_PRODUCT_TYPES = {"product", "productgroup", "individualproduct", "productmodel", "vehicle", "car"}
_OFFER_TYPES = {"offer", "aggregateoffer"}
_GTIN_KEYS = ("gtin", "gtin13", "gtin12", "gtin14", "gtin8", "isbn", "mpn")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"-?\d[\d.,\s]*")


@dataclass
class ProductData:
    """What a page's structured data says about products."""

    product: dict[str, str | None] | None = None
    markup: str | None = None  # "jsonld" / "microdata": the syntax holding Product markup (page or list)
    listed_names: list[str] = field(default_factory=list)  # ItemList entries (collection pages)


def extract_product_data(html: str, url: str | None = None, lowered: str | None = None) -> ProductData:
    """Parse JSON-LD and microdata when present and pick the main Product. Never raises on bad markup.

    Args:
        lowered: `html.lower()` when the caller has it already (saves a pass over big pages).
    """
    syntaxes = []
    lowered = lowered if lowered is not None else html.lower()
    if "application/ld+json" in lowered:
        syntaxes.append("json-ld")
    if "itemtype" in lowered:
        syntaxes.append("microdata")
    if not syntaxes:
        return ProductData()
    import extruct

    try:
        data = extruct.extract(html, base_url=url, syntaxes=syntaxes, uniform=True, errors="ignore")
    except Exception:  # extruct raises on odd markup; a page without usable markup is not an error
        return ProductData()
    result = ProductData()
    for syntax, markup in (("json-ld", "jsonld"), ("microdata", "microdata")):
        items = list(_walk(data.get(syntax) or []))
        products = [item for item, in_list in items if not in_list and _has_type(item, _PRODUCT_TYPES)]
        listed = [item for item, in_list in items if in_list and _has_type(item, _PRODUCT_TYPES)]
        if products and result.product is None:
            result.product = _normalise(_best(products))
        if (products or listed) and result.markup is None:
            result.markup = markup
        for item, _ in items:
            if _has_type(item, {"itemlist"}):
                result.listed_names.extend(_listed_names(item))
    if not result.listed_names and len(products_all := _all_products(data)) > 1:
        result.listed_names = [n for n in (_text(p.get("name")) for p in products_all) if n]
    result.listed_names = list(dict.fromkeys(result.listed_names))
    return result


def _walk(node: Any, in_list: bool = False):
    """(dict, inside an ItemList?) for every dict in a JSON-LD / microdata tree, outermost first."""
    if isinstance(node, list):
        for child in node:
            yield from _walk(child, in_list)
    elif isinstance(node, dict):
        yield node, in_list
        for key in ("@graph", "mainEntity", "itemListElement", "item", "hasVariant"):
            if key in node:
                yield from _walk(node[key], in_list or key == "itemListElement")


def _all_products(data: dict[str, Any]) -> list[dict]:
    items = list(_walk(data.get("json-ld") or [])) + list(_walk(data.get("microdata") or []))
    return [item for item, _ in items if _has_type(item, _PRODUCT_TYPES)]


def _types(item: dict) -> set[str]:
    kind = item.get("@type") or item.get("type") or []
    kinds = kind if isinstance(kind, list) else [kind]
    return {str(k).rsplit("/", 1)[-1].lower() for k in kinds}


def _has_type(item: dict, wanted: set[str]) -> bool:
    return bool(_types(item) & wanted)


def _best(products: list[dict]) -> dict:
    """The product with the most filled fields: the page's main product, not a related one."""
    keys = ("name", "description", "offers", "sku", "brand")
    return max(products, key=lambda p: sum(1 for key in keys if p.get(key)))


def _text(value: Any) -> str | None:
    """A clean one-line string from a markup value (lists take the first, dicts their name)."""
    if isinstance(value, list):
        value = next((v for v in value if v not in (None, "")), None)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value") or value.get("value")
        return _text(value)
    if value is None or isinstance(value, bool):
        return None
    text = _SPACE.sub(" ", _TAG.sub(" ", html_lib.unescape(str(value)))).strip()
    return text or None


def _offers(product: dict) -> list[dict]:
    offers = product.get("offers") or []
    offers = offers if isinstance(offers, list) else [offers]
    flat = []
    for offer in offers:
        if not isinstance(offer, dict):
            continue
        flat.append(offer)
        nested = offer.get("offers")
        if nested:
            flat.extend(o for o in (nested if isinstance(nested, list) else [nested]) if isinstance(o, dict))
    return flat


def _price(offers: list[dict]) -> tuple[str | None, str | None]:
    for offer in offers:
        spec = offer.get("priceSpecification")
        spec = spec[0] if isinstance(spec, list) and spec else spec
        for source in (offer, spec if isinstance(spec, dict) else {}):
            price = _text(source.get("price")) or _text(source.get("lowPrice"))
            if price:
                currency = _text(source.get("priceCurrency")) or _text(offer.get("priceCurrency"))
                return price, currency
    return None, None


def parse_price(price: str | None) -> float | None:
    """The number in a price string as written on the page ("1.299,00", "$1,299.00", "19.9")."""
    if not price:
        return None
    match = _NUMBER.search(price)
    if not match:
        return None
    digits = match.group(0).replace(" ", "").strip(".,")
    if "," in digits and "." in digits:
        # the later separator is the decimal one
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        digits = digits.replace("." if decimal == "," else ",", "").replace(",", ".")
    elif "," in digits:
        head, _, tail = digits.rpartition(",")
        digits = digits.replace(",", ".") if len(tail) != 3 and head.count(",") == 0 else digits.replace(",", "")
    try:
        return float(digits)
    except ValueError:
        return None


def _normalise(product: dict) -> dict[str, str | None] | None:
    offers = _offers(product)
    price, currency = _price(offers)
    sku = _text(product.get("sku")) or next((s for s in (_text(o.get("sku")) for o in offers) if s), None)
    gtin = next((g for g in (_text(product.get(k)) for k in _GTIN_KEYS) if g), None)
    if gtin is None:
        gtin = next((g for o in offers for g in (_text(o.get(k)) for k in _GTIN_KEYS) if g), None)
    normalised = {
        "name": _text(product.get("name")),
        "brand": _text(product.get("brand")) or _text(product.get("manufacturer")),
        "description": _text(product.get("description")),
        "price": price,
        "currency": currency.upper() if currency and len(currency) <= 4 else currency,
        "sku": sku,
        "gtin": gtin,
    }
    return normalised if any(normalised.values()) else None


def _listed_names(item_list: dict) -> list[str]:
    names = []
    elements = item_list.get("itemListElement") or []
    for element in elements if isinstance(elements, list) else [elements]:
        if not isinstance(element, dict):
            continue
        inner = element.get("item") if isinstance(element.get("item"), dict) else element
        name = _text(inner.get("name"))
        if name:
            names.append(name)
    return names
