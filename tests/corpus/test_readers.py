"""Readers on real WARCs (Common Crawl, ClueWeb quirks, a clipped file), generated crawl defects, text inputs."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from corpus.extract.readers import iter_html_file, iter_inputs, iter_warc
from infra.core.fs import list_inputs, select_inputs

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def sample_crawl(tmp_path_factory):
    from infra.sample_crawl.generate import generate_sample_crawl

    out = tmp_path_factory.mktemp("sample-crawl")
    generate_sample_crawl(out, docs=200, seed=3, docs_per_file=100, progress=False)
    return out


def _statuses(records) -> Counter:
    return Counter((r.status, r.reason) for r in records)


def test_common_crawl_warc_yields_its_16_html_responses(shared_data):
    records = list(iter_inputs([shared_data / "warc" / "warcfile.warc.gz"]))
    pages = [r for r in records if r.status == "html"]
    assert len(pages) == 16
    assert all(r.url.startswith("http") and r.record_id and r.fetch_date and r.payload for r in pages)
    assert _statuses(r for r in records if r.status == "meta") == {
        ("meta", "request"): 17,
        ("meta", "metadata"): 16,
        ("meta", "warcinfo"): 1,
    }
    assert all(r.source == "warc:warcfile.warc.gz" for r in records)


def test_clueweb_quirks_are_read(shared_data):
    records = list(iter_inputs([shared_data / "warc" / "clueweb-quirk.warc.gz"]))
    assert _statuses(records)[("html", None)] == 29


def test_clipped_warc_reports_the_broken_record(shared_data):
    records = list(iter_inputs([shared_data / "warc" / "clipped.warc.gz"]))
    errors = [r for r in records if r.status == "error"]
    assert [e.reason for e in errors] == ["truncated_record"]
    assert errors[0].url.startswith("http://www.houstonpress.com/")
    assert "Content-Length" in errors[0].message


def test_corrupt_member_is_one_error_and_reading_resumes(shared_data):
    data = bytearray((shared_data / "warc" / "warcfile.warc.gz").read_bytes())
    # corrupt the deflate bytes of a member in the middle of the file
    start = data.find(b"\x1f\x8b\x08", len(data) // 2)
    data[start + 30 : start + 90] = bytes(60)
    records = list(iter_warc(bytes(data), "broken.warc.gz"))
    statuses = _statuses(records)
    assert statuses[("error", "bad_gzip")] == 1
    read = sum(n for (status, _), n in statuses.items() if status in ("html", "meta"))
    assert read == 49  # 50 records, one lost to the corrupt member


def test_generated_crawl_defects_are_each_counted(sample_crawl):
    truth = [json.loads(line) for line in (sample_crawl / "ground-truth.jsonl").read_text().splitlines()]
    defects = Counter(t["defect"] for t in truth if t["defect"])
    assert set(defects) >= {"bad_gzip", "non_html", "undecodable"}
    statuses = _statuses(iter_inputs([sample_crawl]))
    assert statuses[("error", "bad_gzip")] == defects["bad_gzip"]
    assert statuses[("skip", "non_html")] == defects["non_html"]
    assert statuses[("error", "truncated_record")] == defects.get("truncated", 0)
    # every other page (undecodable ones too: they fail later, at decoding) is an HTML record
    others = len(truth) - defects["bad_gzip"] - defects["non_html"] - defects.get("truncated", 0)
    assert statuses[("html", None)] == others


def test_folder_of_pages_ignores_side_files(sample_crawl):
    kinds = Counter(kind for kind, _ in list_inputs([sample_crawl]))
    assert set(kinds) == {"warc"}  # ground-truth.jsonl and manifest.json are not inputs
    assert select_inputs(["d/a.jsonl", "d/_SUCCESS", "d/b.parquet"]) == [
        ("jsonl", "d/a.jsonl"),
        ("parquet", "d/b.parquet"),
    ]


def test_html_files_plain_and_gzipped(shared_data, tmp_path):
    page = gzip.open(shared_data / "pages" / "wcxb-dev" / "html" / "0580.html.gz").read()
    (tmp_path / "a.html").write_bytes(page)
    (tmp_path / "b.html.gz").write_bytes(gzip.compress(page))
    (tmp_path / "c.html.gz").write_bytes(b"\x1f\x8b\x08 not really gzip")
    statuses = _statuses(iter_inputs([tmp_path]))
    assert statuses == {("html", None): 2, ("error", "bad_gzip"): 1}
    record = next(iter_html_file(page, "/pages/a.html", url="https://www.allbirds.com/"))
    assert record.source == "html:a.html" and record.url == "https://www.allbirds.com/" and record.payload == page


def test_jsonl_and_parquet_text_inputs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": "Wool runners, machine washable.", "url": "https://a.test/p", "domain": "fashion"}]
    (tmp_path / "t.jsonl").write_text(json.dumps(rows[0]) + "\n{broken\n" + json.dumps({"url": "x"}) + "\n")
    pq.write_table(pa.Table.from_pylist(rows * 2), tmp_path / "t.parquet")
    records = list(iter_inputs([tmp_path]))
    assert _statuses(records) == {("text", None): 3, ("error", "bad_json"): 1, ("error", "bad_row"): 1}
    text = next(r for r in records if r.status == "text")
    assert text.domain_label == "fashion" and text.url == "https://a.test/p"


def test_uncompressed_warc_cut_short_counts_the_cut_record(shared_data):
    plain = gzip.decompress((shared_data / "warc" / "warcfile.warc.gz").read_bytes())
    assert _statuses(iter_warc(plain, "plain.warc"))[("html", None)] == 16
    statuses = _statuses(iter_warc(plain[:-5000], "plain.warc"))
    assert statuses[("html", None)] + statuses[("error", "truncated_record")] == 16
    assert statuses[("error", "truncated_record")] == 1
