"""The extract stage over input records: HTML pages become documents, everything else is counted.

`ExtractStage.run(records)` yields `ExtractedDoc`s and `ErrorRecord`s and keeps a `StageStats`
where input = kept + filtered (by reason) + errors (by kind). Non-document WARC records (warcinfo,
request, metadata) are not inputs; they are counted apart in `non_document_records`. The Spark job
runs one stage per partition and sums the counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from corpus.extract.html import ExtractionTimeout, UndecodableError, decode_html, extract_page
from corpus.extract.langid import LanguageIdentifier
from corpus.extract.product import parse_price
from corpus.record import ErrorRecord, ExtractedDoc, InputRecord, make_doc_id, url_domain
from infra.core.config import ExtractConfig
from infra.core.manifest import StageStats


class ExtractStage:
    """HTML -> text + product data + language, with every record accounted for."""

    name = "extract"

    def __init__(self, config: ExtractConfig | None = None) -> None:
        self.config = config or ExtractConfig()
        self.langid = LanguageIdentifier(self.config.langid_model)
        self.stats = StageStats()
        self.non_document_records: Counter = Counter()

    def run(self, records: Iterable[InputRecord]) -> Iterator[ExtractedDoc | ErrorRecord]:
        for record in records:
            if record.status == "meta":
                self.non_document_records[record.reason or "unknown"] += 1
                continue
            self.stats.input += 1
            if record.status == "error":
                self.stats.error(record.reason or "error")
                yield record.to_error()
            elif record.status == "skip":
                self.stats.drop(record.reason or "skipped")
            else:
                result = self.process(record)
                if isinstance(result, ExtractedDoc):
                    self.stats.kept += 1
                elif isinstance(result, ErrorRecord):
                    self.stats.error(result.kind)
                else:
                    self.stats.drop(result)
                    continue
                yield result

    def process(self, record: InputRecord) -> ExtractedDoc | ErrorRecord | str:
        """A document, an error record, or the slug of the filter that dropped the record."""
        if record.status == "text":
            return self._document(record, (record.text or "").strip(), record.title, "precomputed")
        payload = record.payload or b""
        if self.config.max_html_bytes and len(payload) > self.config.max_html_bytes:
            return "too_large"
        errors = "strict" if self.config.on_undecodable == "error" else "replace"
        try:
            html = decode_html(payload, record.charset, errors=errors)
            page = extract_page(
                html,
                record.url,
                timeout=self.config.timeout_s,
                include_product=self.config.include_product,
                favor=self.config.favor,
                fallback_ratio=self.config.fallback_ratio,
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
