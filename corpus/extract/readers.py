"""Input readers: WARC(.gz) files, folders of HTML pages, JSONL / Parquet of already-extracted text.

Every reader yields `InputRecord`s and never raises on bad input: a broken gzip member, a record cut
short, a non-HTML payload is yielded as an "error" or "skip" record with a kind, so the extract
stage can count it. WARC files are split into gzip members by hand (zlib, in chunks) because warcio
and fastwarc stop at the first corrupt member, and into records by hand because a wrong Content-Length
makes warcio swallow the records it runs over; each record whose length checks out (its block ends at a
record boundary) is then parsed by warcio, which undoes chunked transfer and content encodings. After
damage, reading resumes at the next gzip member or the next `WARC/1.x` header; every skipped byte range
is one error record with its offset, so input = kept + filtered + errors still covers every byte.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from corpus.extract.stage import InputRecord
from infra.core import fs

GZIP_MAGIC = b"\x1f\x8b\x08"
DOCUMENT_TYPES = {"response", "resource"}
HTML_TYPES = {"text/html", "application/xhtml+xml", "application/xml+html", "text/xhtml"}
_CHUNK = 1 << 20
BATCH_ROWS = 4096  # Parquet rows decoded at a time
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_HTML_SNIFF = re.compile(rb"^\s*(<!doctype html|<html|<head|<body|<!--)", re.IGNORECASE)
_VERSION_LINE = re.compile(rb"WARC/\d+\.\d+\r?\n")  # a record's first line (WARC/1.0, 1.1; ClueWeb's 0.18)
MAX_HEADER_BYTES = 1 << 16  # a WARC header longer than this is taken for damage


def source_name(kind: str, path: str) -> str:
    return f"{kind}:{path.rstrip('/').rsplit('/', 1)[-1]}"


# --- WARC ----------------------------------------------------------------------------------------


def iter_warc(data: bytes, file: str) -> Iterator[InputRecord]:
    """Every record of a WARC file's bytes (gzipped per record, one gzip stream, or plain).

    Bad input never ends the file: after a damaged gzip member reading resumes at the next member, and
    after a damaged record at the next record header; each skipped byte range is one error record.
    """
    source = source_name("warc", file)
    try:
        if _is_gzip(data, file):
            for offset, chunk, status, message in _gzip_members(data):
                if status == "bad_gzip" and not chunk:
                    yield InputRecord("error", source, file, offset, reason="bad_gzip", message=message)
                    continue
                # a member cut short or corrupt mid-way still gives its complete records first
                yield from _RecordSplitter(chunk, source, file, offset, tail_error=status, tail_message=message)
        else:
            yield from _RecordSplitter(data, source, file, plain=True)
    except Exception as err:  # a reader bug must not take the job down: count it
        yield InputRecord("error", source, file, None, reason="read_failed", message=f"{type(err).__name__}: {err}")


def _is_gzip(data: bytes, file: str) -> bool:
    """Gzip when the file starts with a gzip header, or is named .gz and holds a readable member further on
    (its first member was damaged); a `.gz` name on plain bytes is read as plain."""
    if data[:2] == GZIP_MAGIC[:2]:
        return True
    return file.lower().endswith(".gz") and _next_member(data, 0) < len(data)


def _gzip_members(data: bytes) -> Iterator[tuple[int, bytes, str, str]]:
    """(offset, decompressed bytes, status, message) per gzip member; status ok | truncated | bad_gzip.

    After a corrupt member, reading resumes at the next gzip member that really starts a WARC record; the
    bytes in between are one bad_gzip error, however many false gzip headers the scan finds inside them.
    """
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        if data[pos : pos + 3] != GZIP_MAGIC:
            following = _next_member(data, pos + 1)
            yield pos, b"", "bad_gzip", f"bytes {pos}-{following} hold no gzip member"
            pos = following
            continue
        decompressor = zlib.decompressobj(31)
        out: list[bytes] = []
        fed = pos
        try:
            while not decompressor.eof and fed < len(data):
                before = decompressor.copy()  # 3 us: lets a failing chunk give up what precedes the damage
                out.append(decompressor.decompress(view[fed : fed + _CHUNK]))
                fed = min(fed + _CHUNK, len(data))
        except zlib.error as err:
            out.append(_salvage(before, view[fed : fed + _CHUNK]))
            following = _next_member(data, pos + 1)
            yield pos, b"".join(out), "bad_gzip", f"gzip member at {pos}: {err}; resumed at byte {following}"
            pos = following
            continue
        if decompressor.eof:
            yield pos, b"".join(out), "ok", ""
            pos = fed - len(decompressor.unused_data)
        else:
            out.append(decompressor.flush())
            yield pos, b"".join(out), "truncated", f"gzip member at {pos} ends before its end of stream"
            return


def _salvage(decompressor, chunk: memoryview, steps: tuple[int, ...] = (4096, 64, 1)) -> bytes:
    """What `chunk` decompresses into before the byte where zlib fails: a call that raises returns nothing,
    so the chunk is fed again in ever smaller steps, each from a copy of the state before it."""
    out = []
    for start in range(0, len(chunk), steps[0]):
        before = decompressor.copy()
        try:
            out.append(decompressor.decompress(chunk[start : start + steps[0]]))
        except zlib.error:
            if len(steps) > 1:
                out.append(_salvage(before, chunk[start : start + steps[0]], steps[1:]))
            break
    return b"".join(out)


def _next_member(data: bytes, start: int) -> int:
    """Offset of the next gzip member from `start` whose first bytes decompress into a WARC record (a
    false `1f 8b 08` inside compressed or damaged bytes does not), or the end of the data."""
    candidate = data.find(GZIP_MAGIC, start)
    while candidate >= 0:
        try:
            head = zlib.decompressobj(31).decompress(data[candidate : candidate + 4096], 64).lstrip(b"\r\n")
            if head.startswith(b"WARC/") or b"WARC/".startswith(head):
                return candidate
        except zlib.error:
            pass
        candidate = data.find(GZIP_MAGIC, candidate + 1)
    return len(data)


def _parse_headers(head: bytes) -> dict[str, str]:
    headers = {}
    for line in head.decode("utf-8", "replace").split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers


def _header_at(buf: bytes, pos: int) -> tuple[int, dict[str, str]] | None:
    """(start of the block, headers) when a complete WARC header with a numeric Content-Length starts at
    `pos`, else None."""
    if not _VERSION_LINE.match(buf, pos):
        return None
    head_end = buf.find(b"\r\n\r\n", pos, pos + MAX_HEADER_BYTES)
    if head_end < 0:
        return None
    headers = _parse_headers(buf[pos:head_end])
    return (head_end + 4, headers) if headers.get("content-length", "").isdigit() else None


def _next_header(buf: bytes, start: int, stop: int | None = None) -> int | None:
    """Offset of the next complete WARC header starting in buf[start:stop] (None: there is none)."""
    stop = len(buf) if stop is None else stop
    pos = buf.find(b"WARC/", start, stop)
    while pos >= 0:
        if _header_at(buf, pos) is not None:
            return pos
        pos = buf.find(b"WARC/", pos + 1, stop)
    return None


def _length_holds(buf: bytes, block: int, end: int, headers: dict[str, str]) -> bool:
    """Whether a record's Content-Length can be trusted: its block ends inside the data, at a record
    boundary. The WARC-Block-Digest decides the two cases the boundary cannot: a too-long length that
    happens to end at a later record's boundary (the block then holds a record header, and the digest does
    not match; without a digest the block is taken as it is, since an archived WARC file looks the same),
    and a right length followed by bytes that are no record (the digest matches)."""
    if end > len(buf):
        return False
    if _at_boundary(buf, end):
        if _next_header(buf, block, end) is None:
            return True
        return _digest_matches(buf[block:end], headers.get("warc-block-digest", "")) is not False
    return _digest_matches(buf[block:end], headers.get("warc-block-digest", "")) is True


def _digest_matches(block: bytes, digest: str) -> bool | None:
    """Whether a WARC digest ("sha1:BASE32", or hex) matches the bytes; None when there is none to check."""
    algo, _, value = digest.partition(":")
    try:
        raw = hashlib.new(algo.strip().lower().replace("-", ""), block).digest()
    except (ValueError, TypeError):
        return None
    value = value.strip()
    return value.upper() in (base64.b32encode(raw).decode(), raw.hex().upper())


def _skip_newlines(buf: bytes, pos: int) -> int:
    while buf.startswith((b"\r\n", b"\n"), pos):
        pos += 2 if buf.startswith(b"\r\n", pos) else 1
    return pos


def _header_start(buf: bytes, pos: int) -> bool:
    """True when a record header starts at `pos`, or would, had the data not ended first."""
    return buf.startswith(b"WARC/", pos) or (len(buf) - pos < 5 and b"WARC/".startswith(buf[pos:]))


def _at_boundary(buf: bytes, pos: int) -> bool:
    """True when `pos` (after the record separator's newlines) is the end of the data or a record start:
    a block that ends anywhere else does not have the length its Content-Length says."""
    pos = _skip_newlines(buf, pos)
    return pos >= len(buf) or _header_start(buf, pos)


class _RecordSplitter:
    """Splits one buffer of (decompressed) WARC bytes into records, resynchronising at the next record
    header after a bad one; each skipped byte range is one error record.

    A record is taken when its Content-Length holds (`_length_holds`). Otherwise the bytes up to the next
    header are skipped: `bad_length` when a header follows (the length ran past it or fell short of it),
    `truncated_record` when the data was cut inside the record, `bad_record` for bytes that do not start
    with a WARC header, `bad_gzip` for the lost rest of a gzip member that broke off.

    Args:
        member_offset: file offset of the gzip member the bytes come from (the offset of its records).
        tail_error: how the bytes ended: "ok", "truncated" (the data stopped) or "bad_gzip" (corrupt).
        plain: the bytes are the whole uncompressed file: offsets are positions in it.
    """

    def __init__(
        self, buf: bytes, source: str, file: str, member_offset: int = 0, tail_error: str = "ok",
        tail_message: str = "", plain: bool = False,
    ) -> None:  # fmt: skip
        self.buf, self.source, self.file, self.member_offset = buf, source, file, member_offset
        self.tail_error, self.tail_message, self.plain = tail_error, tail_message, plain
        self.cut = plain or tail_error != "ok"  # the bytes may stop anywhere; a complete member's do not

    def __iter__(self) -> Iterator[InputRecord]:
        buf = self.buf
        pos = _skip_newlines(buf, 0)
        lost_rest = False  # an error record already covers the end of the bytes
        while pos < len(buf):
            parsed = _header_at(buf, pos)
            if parsed is None:
                following = _next_header(buf, pos + 1)
                unfinished = _header_start(buf, pos) and buf.find(b"\r\n\r\n", pos) < 0
                kind = "truncated_record" if following is None and unfinished and self.cut else "bad_record"
                yield self._skipped(pos, following, kind, "not a WARC record header", {})
            else:
                block, headers = parsed
                length = int(headers["content-length"])
                if _length_holds(buf, block, block + length, headers):
                    yield _warc_record(buf[pos : block + length], headers, self.source, self.file, self._offset(pos))
                    pos = _skip_newlines(buf, block + length)
                    continue
                following = _next_header(buf, block)
                if following is None and block + length > len(buf) and self.cut:
                    kind, what = "truncated_record", f"WARC block shorter than its Content-Length {length}"
                else:
                    kind, what = "bad_length", f"Content-Length {length} does not end at a record boundary"
                yield self._skipped(pos, following, kind, what, headers)
            lost_rest = following is None
            pos = len(buf) if following is None else following
        if self.tail_error == "bad_gzip" and not lost_rest:  # corruption fell between records: one error
            yield InputRecord("error", self.source, self.file, self.member_offset, reason="bad_gzip",
                              message=self.tail_message)

    def _offset(self, pos: int) -> int:
        return pos if self.plain else self.member_offset

    def _skipped(self, start: int, following: int | None, kind: str, what: str, headers: dict[str, str]) -> InputRecord:
        """The error record for the skipped bytes buf[start:following] (to the end when `following` is None)."""
        stop = len(self.buf) if following is None else following
        if following is None and self.tail_error == "bad_gzip":
            kind = "bad_gzip"  # the member broke off: the corruption, not the record, lost the rest
        where = (f"bytes {start}-{stop}" if self.plain
                 else f"decompressed bytes {start}-{stop} of the gzip member at {self.member_offset}")
        message = f"{what}: skipped {where} to the {'end of data' if following is None else 'next record header'}"
        if following is None and self.tail_message:
            message = f"{message}; {self.tail_message}"
        return InputRecord("error", self.source, self.file, self._offset(start), headers.get("warc-record-id"),
                           headers.get("warc-target-uri"), reason=kind, message=message)


def _warc_record(raw: bytes, headers: dict[str, str], source: str, file: str, offset: int) -> InputRecord:
    """Classify one complete WARC record: an HTML page, a skipped payload, or a non-document record."""
    from warcio.archiveiterator import ArchiveIterator

    warc_type = headers.get("warc-type", "")
    base = dict(
        source=source,
        file=file,
        offset=offset,
        record_id=headers.get("warc-record-id"),
        url=headers.get("warc-target-uri"),
        fetch_date=headers.get("warc-date"),
    )
    if warc_type not in DOCUMENT_TYPES:
        return InputRecord("meta", reason=warc_type or "unknown", **base)
    try:
        record = next(iter(ArchiveIterator(io.BytesIO(raw), check_digests=False)))
        payload = record.content_stream().read()
    except Exception as err:  # odd chunking or content encoding: count, do not guess
        return InputRecord("error", reason="bad_record", message=f"{type(err).__name__}: {err}", **base)
    http = record.http_headers
    content_type = (http.get_header("Content-Type") if http else None) or headers.get("content-type", "")
    if warc_type == "response" and http is not None:
        status = http.get_statuscode() or ""
        if not status.startswith("2"):
            return InputRecord("skip", reason="http_status", message=f"HTTP {status}", **base)
    return classify_payload(payload, content_type, **base)


def classify_payload(payload: bytes, content_type: str | None, **base: Any) -> InputRecord:
    """An "html" record when the declared type (or, without one, the bytes) says HTML; else skip non_html."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    charset = _CHARSET.search(content_type or "")
    if mime in HTML_TYPES or (not mime and _HTML_SNIFF.match(payload[:512])):
        return InputRecord("html", payload=payload, charset=charset.group(1) if charset else None, **base)
    return InputRecord("skip", reason="non_html", message=f"Content-Type {mime or 'missing'}", **base)


# --- HTML files ----------------------------------------------------------------------------------


def iter_html_file(data: bytes, file: str, url: str | None = None) -> Iterator[InputRecord]:
    """One page from an .html / .htm file (gzipped when its name ends in .gz)."""
    source = source_name("html", file)
    base = dict(source=source, file=file, offset=0, record_id=file, url=url)
    if file.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            yield InputRecord("error", reason="bad_gzip", message=str(err), **base)
            return
    yield classify_payload(data, None if _HTML_SNIFF.match(data[:512]) else "text/html", **base)


# --- already-extracted text -------------------------------------------------------------------------


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def text_record(
    row: dict[str, Any], file: str, index: int, text_column: str = "text", url_column: str = "url",
    domain_column: str = "domain",
) -> InputRecord:  # fmt: skip
    """A JSONL / Parquet row (FineFineWeb shape: text, url, domain) as a ready-text record.

    Without an `id` column the record id is `<file>#<line or row index>`, so doc ids are the same whichever
    engine (or how many partitions) read the file. Dates, URLs and labels are kept as text.
    """
    kind = fs.input_kind(fs.name_of(file)) or "jsonl"
    url = _text_or_none(row.get(url_column))
    record_id = str(row.get("id") or f"{file}#{index}")
    base = dict(source=source_name(kind, file), file=file, offset=index, record_id=record_id, url=url)
    text = row.get(text_column)
    if not isinstance(text, str):
        return InputRecord("error", reason="bad_row", message=f"no string column {text_column!r}", **base)
    return InputRecord(
        "text",
        text=text,
        title=row.get("title") if isinstance(row.get("title"), str) else None,
        domain_label=_text_or_none(row.get(domain_column)),
        fetch_date=_text_or_none(row.get("date") or row.get("fetch_date")),
        **base,
    )


def jsonl_raw_lines(uri: str) -> Iterator[tuple[int, bytes]]:
    """(line index, raw bytes) for the non-blank lines of a (gzipped: name ends in .gz) JSONL file on any
    filesystem, undecoded, so a reader can tell a non-UTF-8 line from a good one.

    A broken gzip stream raises OSError / EOFError / zlib.error after the lines before the damage.
    """
    with fs.open_input(uri) as stream:
        raw = gzip.GzipFile(fileobj=stream) if uri.lower().endswith(".gz") else io.BufferedReader(stream)
        for index, line in enumerate(raw):
            if line.strip():
                yield index, line


def jsonl_lines(uri: str) -> Iterator[tuple[int, str]]:
    """(line index, line) like `jsonl_raw_lines`, decoded as UTF-8 with bad bytes replaced by U+FFFD."""
    for index, line in jsonl_raw_lines(uri):
        yield index, line.decode("utf-8-sig", errors="replace")


def iter_jsonl(uri: str | Path, **columns: str) -> Iterator[InputRecord]:
    """Rows of a (gzipped) JSONL file on any filesystem; a line that is not a JSON object is error `bad_json`,
    a gzip stream that breaks off error `bad_gzip` after the lines before it.

    A line that is not UTF-8 is read with replacement characters and marked `extra["undecodable"]`: the
    stage counts it as error `undecodable` or keeps it, as `corpus.extract.on_undecodable` says, the same
    as an HTML payload that does not decode.
    """
    uri = str(uri)
    source = source_name("jsonl", uri)
    index = 0
    try:
        for index, raw in jsonl_raw_lines(uri):
            undecodable = None
            try:
                line = raw.decode("utf-8-sig")
            except UnicodeDecodeError as err:
                undecodable = f"line {index + 1} is not UTF-8: {err.reason} at byte {err.start}"
                line = raw.decode("utf-8-sig", errors="replace")
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
            except ValueError as err:
                yield InputRecord("error", source, uri, index, reason="bad_json", message=str(err))
                continue
            record = text_record(row, uri, index, **columns)
            if undecodable:
                record.extra["undecodable"] = undecodable
            yield record
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        yield InputRecord("error", source, uri, index, reason="bad_gzip", message=f"{type(err).__name__}: {err}")


def iter_parquet(uri: str | Path, **columns: str) -> Iterator[InputRecord]:
    """Rows of a Parquet file on any filesystem, streamed batch by batch; an unreadable file is error
    `bad_parquet` after the rows before the damage."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    uri = str(uri)
    index = 0
    try:
        with fs.open_input(uri) as stream:
            for batch in pq.ParquetFile(stream).iter_batches(batch_size=BATCH_ROWS):
                for row in batch.to_pylist():
                    yield text_record(row, uri, index, **columns)
                    index += 1
    except (pa.ArrowException, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        yield InputRecord("error", source_name("parquet", uri), uri, index, reason="bad_parquet",
                          message=f"{type(err).__name__}: {err}")


# --- any input -----------------------------------------------------------------------------------


def iter_file(kind: str, uri: str, **columns: str) -> Iterator[InputRecord]:
    """Every record of one input file of a known kind (see `infra.core.fs.input_kind`), on any filesystem.

    What the Spark job runs per file on its executors, and `iter_inputs` in one process.
    """
    if kind == "warc":
        yield from iter_warc(fs.read_bytes(uri), uri)
    elif kind == "html":
        yield from iter_html_file(fs.read_bytes(uri), uri)
    elif kind == "jsonl":
        yield from iter_jsonl(uri, **columns)
    elif kind == "parquet":
        yield from iter_parquet(uri, **columns)
    else:
        raise ValueError(f"unknown input kind {kind!r} for {uri}")


def iter_inputs(paths: Iterable[str | Path], **columns: str) -> Iterator[InputRecord]:
    """Every record of the inputs (files, folders, globs; any filesystem): the single-process twin of the
    Spark extract job, with the same discovery (`infra.core.fs.list_inputs`)."""
    for kind, file in fs.list_inputs(paths):
        yield from iter_file(kind, file, **columns)
