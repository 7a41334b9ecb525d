"""Input readers: WARC(.gz) files, folders of HTML pages, JSONL / Parquet of already-extracted text.

Every reader yields `InputRecord`s and never raises on bad input: a broken gzip member, a record cut
short, a non-HTML payload is yielded as an "error" or "skip" record with a kind, so the extract
stage can count it. WARC files are split into gzip members by hand (zlib, in chunks) because warcio
and fastwarc stop at the first corrupt member; each complete record is then parsed by warcio, which
undoes chunked transfer and content encodings.
"""

from __future__ import annotations

import gzip
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


def source_name(kind: str, path: str) -> str:
    return f"{kind}:{path.rstrip('/').rsplit('/', 1)[-1]}"


# --- WARC ----------------------------------------------------------------------------------------


def iter_warc(data: bytes, file: str) -> Iterator[InputRecord]:
    """Every record of a WARC file's bytes (gzipped per record, one gzip stream, or plain)."""
    source = source_name("warc", file)
    try:
        if data[:2] == GZIP_MAGIC[:2]:
            for offset, chunk, status, message in _gzip_members(data):
                if status == "bad_gzip" and not chunk:
                    yield InputRecord("error", source, file, offset, reason="bad_gzip", message=message)
                    continue
                # a member cut short or corrupt mid-way still gives its complete records first
                yield from _records(chunk, source, file, offset, tail_error=status, tail_message=message)
        else:
            yield from _records(data, source, file, 0, plain=True)
    except Exception as err:  # a reader bug must not take the job down: count it
        yield InputRecord("error", source, file, None, reason="read_failed", message=f"{type(err).__name__}: {err}")


def _gzip_members(data: bytes) -> Iterator[tuple[int, bytes, str, str]]:
    """(offset, decompressed bytes, status, message) per gzip member; status ok | truncated | bad_gzip.

    After a corrupt member, reading resumes at the next gzip header; the bytes in between are one
    bad_gzip error, however many false starts the scan finds inside them.
    """
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        if data[pos : pos + 3] != GZIP_MAGIC:
            following = data.find(GZIP_MAGIC, pos + 1)
            yield pos, b"", "bad_gzip", "bytes outside any gzip member"
            pos = following if following >= 0 else len(data)
            continue
        decompressor = zlib.decompressobj(31)
        out: list[bytes] = []
        fed = pos
        try:
            while not decompressor.eof and fed < len(data):
                out.append(decompressor.decompress(view[fed : fed + _CHUNK]))
                fed = min(fed + _CHUNK, len(data))
        except zlib.error as err:
            yield pos, b"".join(out), "bad_gzip", f"gzip member at {pos}: {err}"
            pos = _resync(data, pos)
            continue
        if decompressor.eof:
            yield pos, b"".join(out), "ok", ""
            pos = fed - len(decompressor.unused_data)
        else:
            out.append(decompressor.flush())
            yield pos, b"".join(out), "truncated", f"gzip member at {pos} ends before its end of stream"
            return


def _resync(data: bytes, bad: int) -> int:
    """Offset of the next gzip member that really decompresses (its first block), or the end."""
    candidate = data.find(GZIP_MAGIC, bad + 1)
    while candidate >= 0:
        try:
            zlib.decompressobj(31).decompress(data[candidate : candidate + 4096])
            return candidate
        except zlib.error:
            candidate = data.find(GZIP_MAGIC, candidate + 1)
    return len(data)


def _parse_headers(head: bytes) -> dict[str, str]:
    headers = {}
    for line in head.decode("utf-8", "replace").split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers


def _records(
    buf: bytes,
    source: str,
    file: str,
    member_offset: int,
    tail_error: str = "ok",
    tail_message: str = "",
    plain: bool = False,
) -> Iterator[InputRecord]:
    """Split decompressed bytes into WARC records; an incomplete last record is one error."""
    pos = 0
    while True:
        while buf.startswith((b"\r\n", b"\n"), pos):
            pos += 2 if buf.startswith(b"\r\n", pos) else 1
        offset = pos if plain else member_offset
        if pos >= len(buf):
            if tail_error == "bad_gzip":  # corruption fell between records: the lost rest is one error
                yield InputRecord("error", source, file, offset, reason="bad_gzip", message=tail_message)
            return
        head_end = buf.find(b"\r\n\r\n", pos)
        headers = _parse_headers(buf[pos:head_end]) if head_end >= 0 else _parse_headers(buf[pos:])
        url, record_id = headers.get("warc-target-uri"), headers.get("warc-record-id")
        length = headers.get("content-length", "")
        if not buf.startswith(b"WARC/", pos) or (head_end >= 0 and not length.isdigit()):
            kind = "bad_gzip" if tail_error == "bad_gzip" else "bad_record"
            yield InputRecord("error", source, file, offset, record_id, url, reason=kind, message="not a WARC record")
            return
        end = head_end + 4 + int(length) if head_end >= 0 else len(buf) + 1
        if end > len(buf):
            kind = "bad_gzip" if tail_error == "bad_gzip" else "truncated_record"
            message = "; ".join(m for m in (f"WARC block shorter than its Content-Length {length}", tail_message) if m)
            yield InputRecord("error", source, file, offset, record_id, url, reason=kind, message=message)
            return
        yield _warc_record(buf[pos:end], headers, source, file, offset)
        pos = end


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


def jsonl_lines(uri: str) -> Iterator[tuple[int, str]]:
    """(line index, line) for the non-blank lines of a (gzipped: name ends in .gz) JSONL file on any filesystem.

    A broken gzip stream raises OSError / EOFError / zlib.error after the lines before the damage.
    """
    with fs.open_input(uri) as stream:
        raw = gzip.GzipFile(fileobj=stream) if uri.lower().endswith(".gz") else stream
        for index, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8", errors="replace")):
            if line.strip():
                yield index, line


def iter_jsonl(uri: str | Path, **columns: str) -> Iterator[InputRecord]:
    """Rows of a (gzipped) JSONL file on any filesystem; a line that is not a JSON object is error
    `bad_json`, a gzip stream that breaks off is error `bad_gzip` after the lines before it."""
    uri = str(uri)
    source = source_name("jsonl", uri)
    index = 0
    try:
        for index, line in jsonl_lines(uri):
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
            except ValueError as err:
                yield InputRecord("error", source, uri, index, reason="bad_json", message=str(err))
                continue
            yield text_record(row, uri, index, **columns)
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
