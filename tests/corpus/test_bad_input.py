"""Bad input: damaged WARC records and gzip members, pathological HTML, non-UTF-8 JSONL rows.

Every case plants the damage in the middle of otherwise good input and checks that every good record
after it is still read and that every record is accounted for: input = kept + filtered + errors, one
error (with its kind and offset) per skipped byte range.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import time
import zlib

import pytest

from corpus.extract.html import MAX_TREE_DEPTH, extract_page, page_shape, stream_text
from corpus.extract.readers import iter_inputs, iter_warc
from corpus.extract.stage import ExtractStage
from infra.core.config import ExtractConfig

# --- building WARC files ------------------------------------------------------------------------------


def _page(i: int) -> bytes:
    words = " ".join(f"word{i}x{k}" for k in range(60))
    return f"<html><head><title>Page {i}</title></head><body><p>Page {i} says: {words}.</p></body></html>".encode()


def warc_record(i: int, length_delta: int = 0) -> bytes:
    """One response record for page i with a correct block digest, its Content-Length off by `length_delta`."""
    payload = _page(i)
    block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + payload
    digest = "sha1:" + base64.b32encode(hashlib.sha1(block).digest()).decode()
    head = (
        "WARC/1.0\r\nWARC-Type: response\r\n"
        f"WARC-Record-ID: <urn:uuid:rec-{i}>\r\nWARC-Target-URI: https://shop.test/p/{i}\r\n"
        "WARC-Date: 2024-05-01T00:00:00Z\r\nContent-Type: application/http; msgtype=response\r\n"
        f"WARC-Block-Digest: {digest}\r\nContent-Length: {len(block) + length_delta}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


def _id(i: int) -> str:
    return f"<urn:uuid:rec-{i}>"


GARBAGE = bytes(random.Random(0).randrange(256) for _ in range(700)) + b"WARC/ not a header\r\n\x1f\x8b\x08junk\n"


def _read(data: bytes, name: str):
    """(ids of the HTML records read, error records) of a WARC file's bytes."""
    records = list(iter_warc(data, name))
    return [r.record_id for r in records if r.status == "html"], [r for r in records if r.status == "error"]


def _account(data: bytes, name: str, expected_input: int) -> ExtractStage:
    """Run the stage over the file and check that every record is an input and the counts add up."""
    stage = ExtractStage(ExtractConfig(min_text_chars=20))
    list(stage.run(iter_warc(data, name)))
    stage.stats.check("extract")
    assert stage.stats.input == expected_input
    assert stage.stats.input == stage.stats.kept + sum(stage.stats.filtered.values()) + sum(stage.stats.errors.values())
    return stage


def _warcio_ids(data: bytes) -> list[str]:
    """What plain warcio reads before it gives up (it raises on what it cannot resynchronise)."""
    from warcio.archiveiterator import ArchiveIterator

    ids = []
    try:
        for record in ArchiveIterator(io.BytesIO(data), check_digests=False):
            ids.append(record.rec_headers.get_header("WARC-Record-ID"))
    except Exception:  # warcio's ArchiveLoadFailed: the rest of the file is lost to it
        pass
    return ids


# --- a too-long Content-Length, compared with warcio ------------------------------------------------


def _five_with_long_second(overrun: int) -> list[bytes]:
    records = [warc_record(i) for i in range(1, 6)]
    records[1] = warc_record(2, len(records[2]) + overrun)
    return records


@pytest.mark.parametrize("overrun", [-30, 0, 40, 300], ids=["into-3", "ends-at-4", "past-4-header", "into-4"])
@pytest.mark.parametrize("form", ["plain", "single-gzip"])
def test_too_long_content_length_reads_at_least_what_warcio_reads(form, overrun):
    """Record 2 of 5 runs past record 3's header; overrun 0 ends exactly at record 4, swallowing record 3 whole."""
    records = _five_with_long_second(overrun)
    plain = b"".join(records)
    data, name = (plain, "five.warc") if form == "plain" else (gzip.compress(plain), "five.warc.gz")
    ids, errors = _read(data, name)
    assert ids == [_id(1), _id(3), _id(4), _id(5)]
    assert [(e.reason, e.record_id) for e in errors] == [("bad_length", _id(2))]
    warcio = set(_warcio_ids(data)) - {_id(2)}  # warcio yields record 2 with record 3 inside it, or stops
    assert warcio <= set(ids)
    start, stop = len(records[0]), len(records[0]) + len(records[1])  # exactly record 2's bytes are skipped
    if form == "plain":
        assert errors[0].offset == start and f"bytes {start}-{stop} " in errors[0].message
    else:
        assert errors[0].offset == 0 and f"decompressed bytes {start}-{stop} " in errors[0].message
    _account(data, name, expected_input=5)


# --- bad records planted in the middle of each format -------------------------------------------------


def _plant(defects: dict[int, str], n: int = 12) -> tuple[list[bytes], list[str]]:
    """Records 0..n-1 as bytes, with the record at each key replaced by a damaged one; the good ids."""
    parts, good = [], []
    for i in range(n):
        kind = defects.get(i)
        record = warc_record(i)
        if kind is None:
            parts.append(record)
            good.append(_id(i))
        elif kind == "too_long":
            parts.append(warc_record(i, 333))
        elif kind == "too_short":
            parts.append(warc_record(i, -120))
        elif kind == "cut":  # a record that stops half-way, and the next record follows
            parts.append(record[: len(record) // 2])
        elif kind == "garbage":  # bytes that are no record, then the good record
            parts.append(GARBAGE)
            parts.append(record)
            good.append(_id(i))
        elif kind == "no_length":
            parts.append(record.replace(b"Content-Length:", b"Content-Lenght:"))
    return parts, good


RECORD_DEFECTS = {2: "too_long", 4: "garbage", 6: "too_short", 8: "cut", 10: "no_length"}
RECORD_KINDS = {"too_long": "bad_length", "too_short": "bad_length", "cut": "bad_length", "garbage": "bad_record",
                "no_length": "bad_record"}  # fmt: skip


@pytest.mark.parametrize("form", ["plain", "single-gzip", "per-record-gzip"])
def test_bad_records_in_the_middle_of_each_format(form):
    parts, good = _plant(RECORD_DEFECTS)
    if form == "plain":
        data, name = b"".join(parts), "bad.warc"
    elif form == "single-gzip":
        data, name = gzip.compress(b"".join(parts)), "bad.warc.gz"
    else:
        data, name = b"".join(gzip.compress(p) for p in parts), "bad.warc.gz"
    ids, errors = _read(data, name)
    assert ids == good  # every good record, the ones after each defect too
    assert sorted(e.reason for e in errors) == sorted(RECORD_KINDS[k] for k in RECORD_DEFECTS.values())
    assert all(e.offset is not None and e.message for e in errors)
    _account(data, name, expected_input=len(good) + len(RECORD_DEFECTS))


def test_plain_warc_errors_carry_the_offset_of_the_skipped_bytes():
    parts, _ = _plant(RECORD_DEFECTS)
    starts, pos = [], 0
    for part in parts:
        starts.append(pos)
        pos += len(part)
    data = b"".join(parts)
    _, errors = _read(data, "bad.warc")
    # the damaged parts are the ones that are not a good record (the garbage comes before record 4)
    damaged = [starts[k] for k, part in enumerate(parts) if part not in {warc_record(i) for i in range(12)}]
    assert [e.offset for e in errors] == damaged
    for error in errors:
        assert f"bytes {error.offset}-" in error.message


def _corrupt(member: bytes) -> bytes:
    """The member with deflate bytes overwritten until decompression really fails."""
    data = bytearray(member)
    rng = random.Random(1)
    while True:
        for k in range(40, len(data) - 8):
            data[k] = rng.randrange(256)
        try:
            zlib.decompressobj(31).decompress(bytes(data))
        except zlib.error:
            return bytes(data)


def test_bad_gzip_members_resume_at_the_next_member():
    """Per-record gzip with a corrupt member, a member cut short in the middle, garbage between members,
    and a multi-record member (a single-stream chunk) that breaks off: reading goes on after each."""
    members, good, n_errors = [], [], 0
    for i in range(14):
        member = gzip.compress(warc_record(i))
        if i == 2:
            members.append(_corrupt(member))
            n_errors += 1
        elif i == 5:
            members.append(member[: len(member) // 2])
            n_errors += 1
        elif i == 8:
            members += [GARBAGE, member]
            good.append(_id(i))
            n_errors += 1
        elif i == 11:  # records 11-13 in one member whose deflate stream breaks after record 11
            stream = zlib.compressobj(6, zlib.DEFLATED, 31)
            head = stream.compress(warc_record(11)) + stream.flush(zlib.Z_FULL_FLUSH)
            tail = stream.compress(warc_record(12) + warc_record(13)) + stream.flush()
            members.append(head + b"\xff" * 40 + tail[40:])
            good.append(_id(11))
            n_errors += 1
            members.append(gzip.compress(warc_record(14)))
            good.append(_id(14))
            break
        else:
            members.append(member)
            good.append(_id(i))
    data = b"".join(members)
    ids, errors = _read(data, "members.warc.gz")
    assert ids == good
    assert [e.reason for e in errors] == ["bad_gzip"] * n_errors
    assert sorted({e.offset for e in errors}) == [e.offset for e in errors]  # one error per skipped range, in order
    stage = _account(data, "members.warc.gz", expected_input=len(good) + n_errors)
    assert stage.stats.errors == {"bad_gzip": n_errors}


def test_gz_file_whose_first_member_is_damaged_is_still_read_as_gzip():
    members = [gzip.compress(warc_record(i)) for i in range(4)]
    members[0] = b"\x00\x00" + members[0][2:]  # the gzip magic of the first member is gone
    ids, errors = _read(b"".join(members), "head.warc.gz")
    assert ids == [_id(1), _id(2), _id(3)]
    assert [(e.reason, e.offset) for e in errors] == [("bad_gzip", 0)]


def test_warc_held_inside_a_record_with_a_matching_digest_is_taken_as_it_is():
    """A resource record that archives a WARC file holds record headers; its digest matches, so its length
    is trusted and the inner records are payload, not records of this file."""
    inner = warc_record(100) + warc_record(101)
    digest = "sha1:" + base64.b32encode(hashlib.sha1(inner).digest()).decode()
    head = (
        "WARC/1.0\r\nWARC-Type: resource\r\nWARC-Record-ID: <urn:uuid:archive>\r\n"
        f"WARC-Target-URI: https://files.test/crawl.warc\r\nContent-Type: application/warc\r\n"
        f"WARC-Block-Digest: {digest}\r\nContent-Length: {len(inner)}\r\n\r\n"
    )
    data = warc_record(1) + head.encode() + inner + b"\r\n\r\n" + warc_record(2)
    records = list(iter_warc(data, "nested.warc"))
    assert [(r.status, r.reason, r.record_id) for r in records] == [
        ("html", None, _id(1)),
        ("skip", "non_html", "<urn:uuid:archive>"),
        ("html", None, _id(2)),
    ]


# --- pathological HTML ----------------------------------------------------------------------------------


def _deep_page(depth: int) -> str:
    """`depth` nested divs, a sentence at every 1000th level and a paragraph at the bottom."""
    opening = "".join(f"<div>Level {k} note. " if k % 1000 == 0 else "<div>" for k in range(depth))
    bottom = "<p>" + "The deepest paragraph describes merino wool running shoes in detail. " * 20 + "</p>"
    return f"<html><head><title>Deep</title></head><body>{opening}{bottom}{'</div>' * depth}</body></html>"


def _flat_page(paragraphs: int) -> str:
    body = "".join(f"<p>Sock {k}, size {k % 13}.</p>" for k in range(paragraphs))
    return f"<html><head><title>Flat</title></head><body><h1>All socks</h1>{body}</body></html>"


def _stage_run(html: str) -> tuple[ExtractStage, list]:
    config = ExtractConfig()  # the default per-page time limit
    stage = ExtractStage(config)
    record = next(iter_html_page(html))
    start = time.perf_counter()
    results = list(stage.run([record]))
    assert time.perf_counter() - start < config.timeout_s
    stage.stats.check("extract")
    return stage, results


def iter_html_page(html: str):
    from corpus.extract.readers import iter_html_file

    return iter_html_file(html.encode(), "/pages/page.html", url="https://shop.test/page")


@pytest.mark.parametrize("depth", [50_000, 400_000])
def test_deeply_nested_page_keeps_its_text_within_the_time_limit(depth):
    html = _deep_page(depth)
    assert page_shape(html).depth > depth
    stage, results = _stage_run(html)
    assert stage.stats.kept == 1, (stage.stats.filtered, stage.stats.errors)
    doc = results[0]
    assert doc.extractor == "stream-text"
    assert "deepest paragraph describes merino wool" in doc.text
    assert f"Level {(depth - 1) // 1000 * 1000} note." in doc.text  # text from every depth, not only the top 256
    assert doc.text.count(" note.") == len(range(0, depth, 1000))


def test_huge_flat_page_keeps_every_paragraph_within_the_time_limit():
    """150k paragraphs in 3.4 MB (under `max_html_bytes`): trafilatura alone would take minutes."""
    html = _flat_page(150_000)
    assert len(html) < ExtractConfig().max_html_bytes
    stage, results = _stage_run(html)
    assert stage.stats.kept == 1, (stage.stats.filtered, stage.stats.errors)
    doc = results[0]
    assert doc.extractor == "stream-text" and doc.title == "All socks"
    lines = doc.text.split("\n")
    assert lines[0] == "All socks" and len(lines) == 150_001
    assert lines[-1] == "Sock 149999, size 5."


def test_ordinary_nesting_still_goes_to_trafilatura():
    html = _deep_page(MAX_TREE_DEPTH - 10)
    assert not page_shape(html).pathological
    page = extract_page(html)
    assert page.extractor in ("trafilatura", "blocks") and "deepest paragraph describes merino wool" in page.text


def test_stream_text_skips_scripts_navigation_and_hidden_blocks():
    html = (
        "<html><head><title>T</title><script>var x = 1;</script></head><body>"
        "<nav class='menu'><a>Home</a><a>Shop</a></nav><div style='display: none'>secret</div>"
        "<main><h2>Wool socks</h2><p>Warm and soft.</p><ul><li>Size S</li><li>Size M</li></ul></main>"
        "<footer>(c) shop</footer></body></html>"
    )
    assert stream_text(html) == "Wool socks\nWarm and soft.\nSize S\nSize M"


def test_page_trafilatura_leaves_empty_keeps_its_visible_text():
    """An old frameset page keeps its text in <noframes>, where trafilatura finds nothing."""
    body = "".join(f"<p>Organic cotton sheet set number {k} in queen size, soft and breathable.</p>" for k in range(30))
    html = f"<html><head><title>Sheets</title></head><frameset><noframes>{body}</noframes></frameset></html>"
    import trafilatura

    assert not trafilatura.extract(html, include_tables=True)
    # the block model (its router sends it there) or, when that keeps nothing, the streaming rescue
    assert extract_page(html, block_model=False).extractor == "stream-text"
    for page in (extract_page(html), extract_page(html, block_model=False)):
        assert page.extractor in ("blocks", "stream-text")
        assert page.text.count("Organic cotton sheet set number") == 30


# --- JSONL rows that are not UTF-8 --------------------------------------------------------------------------


def _jsonl_with_bad_bytes() -> bytes:
    text = "Linen shirt number {}, breathable and light, in six colours and four sizes."
    good = [json.dumps({"text": text.format(k), "url": f"https://s.test/{k}"}) for k in range(3)]
    bad = b'{"text": "caf\xe9 au lait \xff\xfe", "url": "https://s.test/bad"}'
    return (good[0] + "\n" + good[1] + "\n").encode() + bad + b"\n" + good[2].encode() + b"\n"


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz"])
def test_non_utf8_jsonl_row_is_undecodable(tmp_path, name):
    data = _jsonl_with_bad_bytes()
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    records = list(iter_inputs([tmp_path / name]))
    assert [r.status for r in records] == ["text"] * 4
    assert [bool(r.extra.get("undecodable")) for r in records] == [False, False, True, False]
    stage = ExtractStage(ExtractConfig(min_text_chars=20))
    results = list(stage.run(records))
    stage.stats.check("extract")
    assert (stage.stats.input, stage.stats.kept, stage.stats.errors) == (4, 3, {"undecodable": 1})
    error = next(r for r in results if not hasattr(r, "doc_id"))
    assert (error.kind, error.offset, error.url) == ("undecodable", 2, "https://s.test/bad")
    assert error.message.startswith("line 3 is not UTF-8")
    # asked to, the stage keeps the row with replacement characters, like an HTML payload
    stage = ExtractStage(ExtractConfig(min_text_chars=5, on_undecodable="replace"))
    docs = list(stage.run(records))
    assert stage.stats.kept == 4 and "caf\ufffd au lait" in docs[2].text


# --- the Spark job on all of it ---------------------------------------------------------------------------------


@pytest.mark.spark
def test_extract_job_counts_every_planted_defect(spark, tmp_path):
    from infra.core.config import CorpusConfig
    from spark_jobs.extract_job import DOC_SCHEMA, ERRORS_DIR, run_extract
    from spark_jobs.output import read_parquet_dir

    inputs = tmp_path / "in"
    inputs.mkdir()
    parts, good = _plant(RECORD_DEFECTS)
    (inputs / "plain.warc").write_bytes(b"".join(parts))
    (inputs / "single.warc.gz").write_bytes(gzip.compress(b"".join(parts)))
    (inputs / "members.warc.gz").write_bytes(b"".join(gzip.compress(p) for p in parts))
    rows = tmp_path / "rows.jsonl"  # beside a crawl, JSONL is side data: named on its own
    rows.write_bytes(_jsonl_with_bad_bytes())
    out = tmp_path / "extracted"
    manifest = run_extract(spark, [str(inputs), str(rows)], str(out), CorpusConfig())
    counts = manifest["counts"]
    per_file = len(good) + len(RECORD_DEFECTS)
    assert counts["input"] == 3 * per_file + 4
    expected = {"bad_length": 0, "bad_record": 0}
    for kind in RECORD_DEFECTS.values():
        expected[RECORD_KINDS[kind]] += 3
    assert counts["errors"] == {**expected, "undecodable": 1}
    assert counts["kept"] == 3 * len(good) + 3
    docs = read_parquet_dir(spark, str(out))
    assert docs.columns == [f.name for f in DOC_SCHEMA] and "_corrupt_record" not in docs.columns
    assert docs.count() == counts["kept"]
    assert spark.read.parquet(str(out / ERRORS_DIR)).where("offset is null").count() == 0
