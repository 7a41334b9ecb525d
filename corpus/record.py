"""The records of the extract stage: one extracted document, one input record that could not be read.

Bare dataclasses (like datatrove's `Document`): the readers and the extract step build them, the
Spark job turns them into Parquet rows of `extracted/` and `extracted/_errors/`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

PRODUCT_COLUMNS = ("name", "brand", "description", "price", "currency", "sku", "gtin")


def make_doc_id(url: str | None, record_id: str | None) -> str:
    """Stable id of a document: a hash of its URL and the id of the record it came from."""
    key = f"{url or ''}\x00{record_id or ''}".encode()
    return hashlib.blake2b(key, digest_size=12).hexdigest()


def url_domain(url: str | None) -> str | None:
    """The host of a URL without a leading `www.` (None when there is no URL)."""
    if not url:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.removeprefix("www.") if host else None


@dataclass
class ExtractedDoc:
    """One row of `extracted/` (DESIGN.md data contract)."""

    doc_id: str
    url: str | None
    domain: str | None
    fetch_date: str | None
    source: str  # input kind and file, e.g. "warc:crawl-00000.warc.gz"
    title: str | None
    text: str
    lang: str | None = None
    lang_score: float | None = None
    extractor: str = "trafilatura"  # "trafilatura", "trafilatura+product", "visible-text", "precomputed", ...
    html_bytes: int = 0
    product: dict[str, str | None] | None = None
    price_value: float | None = None
    has_product_markup: str | None = None  # "jsonld" / "microdata"
    html_signals: str | None = None  # the raw page's structural signals, for the classifier (corpus.extract.html)
    domain_label: str | None = None  # a given domain label (FineFineWeb's `domain`), kept for the classifier
    record_id: str | None = None

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        if self.product is not None:
            row["product"] = {key: self.product.get(key) for key in PRODUCT_COLUMNS}
        return row


@dataclass
class ErrorRecord:
    """An input record that could not become a document, kept in `extracted/_errors/` so nothing vanishes."""

    kind: str  # bad_gzip, truncated_record, undecodable, timeout, extract_failed, read_failed, ...
    source: str
    file: str
    offset: int | None = None
    url: str | None = None
    record_id: str | None = None
    message: str = ""

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InputRecord:
    """One record from an input file: an HTML page, a ready text, a counted skip or an error.

    `status` is "html" (extract `payload`), "text" (already extracted, `text` set), "skip" (a filter
    reason in `reason`, e.g. non_html) or "error" (an error kind in `reason`, e.g. bad_gzip).
    """

    status: str
    source: str
    file: str
    offset: int | None = None
    record_id: str | None = None
    url: str | None = None
    fetch_date: str | None = None
    payload: bytes | None = None
    charset: str | None = None  # declared by the HTTP Content-Type header
    text: str | None = None
    title: str | None = None
    domain_label: str | None = None
    reason: str | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_error(self, kind: str | None = None, message: str | None = None) -> ErrorRecord:
        return ErrorRecord(
            kind=kind or self.reason or "error",
            source=self.source,
            file=self.file,
            offset=self.offset,
            url=self.url,
            record_id=self.record_id,
            message=(message if message is not None else self.message)[:1000],
        )
