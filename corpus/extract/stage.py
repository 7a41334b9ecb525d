"""The extract stage over input records: HTML pages become documents, everything else is counted.

`ExtractStage.run(records)` yields `ExtractedDoc`s and `ErrorRecord`s (and, when asked, a
`DroppedRecord` per dropped record) and keeps a `StageStats` where input = kept + filtered (by
reason) + errors (by kind). Non-document WARC records (warcinfo,
request, metadata) are not inputs; they are counted apart in `non_document_records`. The Spark job
runs one stage per partition and sums the counters.

The record types come first (bare dataclasses, like datatrove's `Document`): `InputRecord` from the
readers, `ExtractedDoc` (one row of `extracted/`), `ErrorRecord` (one row of `extracted/_errors/`) and
`DroppedRecord` (one row of `extracted/_dropped/`) from the stage.

Language identification (`LanguageIdentifier`, at the end) uses py3langid's bundled model, or a fastText
lid.176 model from a local or cluster-distributed file; neither downloads anything, and a model loads
once per process.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from corpus.extract.html import (
    ExtractionTimeout,
    UndecodableError,
    commerce_evidence,
    decode_html,
    extract_page,
    parse_price,
)
from infra.core.config import ExtractConfig
from infra.core.manifest import StageStats

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
    extractor: str = "trafilatura"  # blocks, trafilatura, visible-text, html2txt, stream-text (+product), precomputed
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

    # bad_gzip, bad_length, bad_record, truncated_record (skipped WARC bytes), undecodable, bad_json, bad_row,
    # bad_parquet, timeout, extract_failed, read_failed
    kind: str
    source: str
    file: str
    offset: int | None = None
    url: str | None = None
    record_id: str | None = None
    message: str = ""

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DroppedRecord:
    """An input record the stage dropped before it became a document (non-HTML, too short, no sign of selling):
    kept in `extracted/_dropped/` so the yield report can say where each page left."""

    reason: str
    source: str
    file: str
    offset: int | None = None
    url: str | None = None
    record_id: str | None = None

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

    def to_dropped(self, reason: str) -> DroppedRecord:
        return DroppedRecord(reason, self.source, self.file, self.offset, self.url, self.record_id)

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


# --- the stage --------------------------------------------------------------------------------------------------------

class ExtractStage:
    """HTML -> text + product data + language, with every record accounted for."""

    name = "extract"

    def __init__(self, config: ExtractConfig | None = None) -> None:
        self.config = config or ExtractConfig()
        self.langid = LanguageIdentifier(self.config.langid_model)
        self.stats = StageStats()
        self.non_document_records: Counter = Counter()

    def run(self, records: Iterable[InputRecord], with_drops: bool = False
            ) -> Iterator[ExtractedDoc | ErrorRecord | DroppedRecord]:
        """Documents and error records; with `with_drops`, a `DroppedRecord` for every dropped record too."""
        for record in records:
            if record.status == "meta":
                self.non_document_records[record.reason or "unknown"] += 1
                continue
            self.stats.input += 1
            if record.status == "error":
                self.stats.error(record.reason or "error")
                yield record.to_error()
                continue
            result = (record.reason or "skipped") if record.status == "skip" else self.process(record)
            if isinstance(result, ExtractedDoc):
                self.stats.kept += 1
            elif isinstance(result, ErrorRecord):
                self.stats.error(result.kind)
            else:
                self.stats.drop(result)
                if not with_drops:
                    continue
                result = record.to_dropped(result)
            yield result

    def process(self, record: InputRecord) -> ExtractedDoc | ErrorRecord | str:
        """A document, an error record, or the slug of the filter that dropped the record."""
        if record.status == "text":
            if record.extra.get("undecodable") and self.config.on_undecodable == "error":
                return record.to_error("undecodable", record.extra["undecodable"])
            return self._document(record, (record.text or "").strip(), record.title, "precomputed")
        payload = record.payload or b""
        if self.config.max_html_bytes and len(payload) > self.config.max_html_bytes:
            return "too_large"
        errors = "strict" if self.config.on_undecodable == "error" else "replace"
        try:
            html = decode_html(payload, record.charset, errors=errors)
            lowered = html.lower() if self.config.prefilter == "commerce_evidence" else None
            if lowered is not None and not commerce_evidence(lowered):
                return "no_commerce_evidence"
            page = extract_page(
                html,
                record.url,
                timeout=self.config.timeout_s,
                include_product=self.config.include_product,
                favor=self.config.favor,
                fallback_ratio=self.config.fallback_ratio,
                block_model=self.config.block_model,
                lowered=lowered,
            )
        except UndecodableError as err:
            return record.to_error("undecodable", str(err))
        except ExtractionTimeout as err:
            return record.to_error("timeout", str(err))
        except Exception as err:  # lxml / trafilatura failures on odd markup: counted, never fatal
            return record.to_error("extract_failed", f"{type(err).__name__}: {err}")
        doc = self._document(record, page.text, page.title, page.extractor)
        if isinstance(doc, ExtractedDoc):
            doc.html_bytes = len(payload)
            doc.product = page.product
            doc.price_value = parse_price(page.product.get("price")) if page.product else None
            doc.has_product_markup = page.has_product_markup
            doc.html_signals = page.signals
        return doc

    def _document(self, record: InputRecord, text: str, title: str | None, extractor: str) -> ExtractedDoc | str:
        if not text:
            return "empty_text"
        if len(text) < self.config.min_text_chars:
            return "too_short"
        lang, score = self.langid.identify(text)
        return ExtractedDoc(
            doc_id=make_doc_id(record.url, record.record_id),
            url=record.url,
            domain=url_domain(record.url),
            fetch_date=record.fetch_date,
            source=record.source,
            title=title,
            text=text,
            lang=lang,
            lang_score=score,
            extractor=extractor,
            domain_label=record.domain_label,
            record_id=record.record_id,
        )


# --- language identification ------------------------------------------------------------------------------------------

MAX_CHARS = 4000  # the first few thousand characters decide the language; bounds time on huge texts


class LanguageIdentifier:
    """`identify(text) -> (lang, score)` with an ISO 639-1 code and a probability in [0, 1]."""

    def __init__(self, model_path: str | None = None) -> None:
        self.model_path = model_path
        self.backend = "fasttext" if model_path else "py3langid"

    def identify(self, text: str | None) -> tuple[str | None, float | None]:
        sample = " ".join((text or "")[:MAX_CHARS].split())
        if not sample:
            return None, None
        if self.model_path:
            model = _fasttext_model(self.model_path)
            labels, scores = model.predict(sample, k=1)
            return labels[0].removeprefix("__label__"), round(min(float(scores[0]), 1.0), 4)
        lang, score = _py3langid().classify(sample)
        return lang, round(float(score), 4)


@lru_cache(maxsize=1)
def _py3langid():
    from py3langid.langid import MODEL_DIR, MODEL_FILE
    from py3langid.langid import LanguageIdentifier as Py3LangId

    return Py3LangId.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=2)
def _fasttext_model(path: str):
    try:
        import fasttext
    except ImportError as err:  # pragma: no cover - a pinned dependency
        raise ImportError("fastText language id needs `pip install fasttext-numpy2-wheel`") from err
    return fasttext.load_model(path)


def identify_language(text: str | None, model_path: str | None = None) -> tuple[str | None, float | None]:
    """Language and score of a text (None, None for an empty one)."""
    return LanguageIdentifier(model_path).identify(text)
