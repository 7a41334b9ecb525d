"""A realistic synthetic web crawl with ground truth: `rexbert sample-data`.

`generate_sample_crawl(out_dir, docs, seed)` writes Common-Crawl-shaped WARC files
(`crawl-00000.warc.gz`, ...: a `warcinfo` record, then a `request` and a `response` record per page,
every record its own gzip member), beside each one whose pages include records broken at the gzip level
(`bad_gzip`, `truncated`) a companion `malformed-00000.warc.gz` holding those pages (its own `warcinfo`,
then their request and response records), `ground-truth.jsonl` (one line per page, in generation order) and
`manifest.json` (infra.core.manifest's schema: config, counts with every defect an error of its kind, and
the generator's breakdowns `by_label`, `by_defect`, ..., its files, duplicate groups and version). Pages (see
`infra.sample_crawl.pages`): e-commerce product and category pages with schema.org JSON-LD or microdata,
news, forum, documentation and recipe pages, German / French / Spanish pages, junk pages, exact and near
duplicates, and a few malformed records.

Ground truth per page: `record_id` (the response's WARC-Record-ID, angle brackets included), `url`,
`file`, `offset` / `length` (the response's gzip member in the file, as a CDX index gives them),
`label` (ecommerce | non_ecommerce | junk), `page_type`, `category`, `lang`, `dup_group`, `dup_kind`
(null | exact | near), `dup_variant` (exact | mirror | template | edit), `dup_of` (the original's
record_id), `jaccard`, `defect`, `has_product_markup` (jsonld | microdata | null; on a category page
"jsonld" is an ItemList of Products) and `product` (name, brand, price as a float, currency, sku,
gtin) for product pages; plus `content_type`, `warc_date`, `junk_kind` and `title`. Non-HTML records
are labelled junk with page_type "binary" and lang null; lorem and symbol junk has lang null.

Duplicates. A group's original comes first and carries `dup_group` with `dup_kind` null. `exact`:
the same payload bytes under another URL. `near`: a `mirror` (same `<main>`, another site's
boilerplate), a `template` variant (the same product page in another colour, its own SKU) or an
`edit` (words of the visible text replaced until the similarity is nearest a target of 0.95, 0.85,
0.7 or 0.5). `jaccard` is always computed, never assumed: the Jaccard similarity of the sets of word
5-grams of `main_text(html)` of the two pages: lxml's `text_content()` of the `<main>` element
with `<script>`/`<style>` removed, lower-cased, split into `\\w+` words (`shingles`, `jaccard`).

Defects (each a real malformation a reader must count, then continue). The two that break a file's
gzip stream live in the `malformed-*` files, so every `crawl-*` file reads to its end with warcio, fastwarc
and datatrove's WarcReader; `non_html` and `undecodable` are well-formed records and stay in place:
- `bad_gzip`: the response's gzip member has corrupted deflate bytes. warcio raises
  `ArchiveLoadFailed` and fastwarc raises `OSError` ("Gzip decompression error") at that member and
  both stop iterating; a reader resumes at the next member (the next `\\x1f\\x8b\\x08` gzip header,
  or the next ground-truth `offset`). The page's `request` record before it is intact.
- `non_html`: a `response` with Content-Type `application/pdf` or `image/jpeg` and binary bytes.
- `undecodable`: Content-Type says `text/html; charset=utf-8`, but the payload holds byte
  sequences that are not UTF-8 (`payload.decode("utf-8")` raises UnicodeDecodeError).
- `truncated`: the last member of a `malformed-*` file (the last page of its crawl file), cut short
  mid-payload (a download that stopped). Readers yield the record with fewer payload bytes than its HTTP
  Content-Length (the WARC block is shorter than the WARC Content-Length) and no error; the member never
  reaches its gzip end of stream.

Deterministic: the same arguments give byte-identical crawl and ground-truth files (dates and record ids
come from the seed, gzip headers carry mtime 0); the manifest differs only in when it was made and how long
it took (`created_utc`, `seconds`). Streaming: pages are built and written one at a time; duplicates
are scheduled at most `LOOKAHEAD` pages after their original, so memory does not grow with `docs`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import time
import uuid
import zlib
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import lxml.html
from tqdm import tqdm

from infra.core.config import write_resolved_config
from infra.core.manifest import MANIFEST_NAME, StageStats, build_manifest, write_manifest  # noqa: F401 (MANIFEST_NAME re-exported)
from infra.core.outputs import staged_output
from infra.sample_crawl import pages as sp
from infra.sample_crawl.pages import PageDraft, Para

VERSION = "1.0"
LOOKAHEAD = 64  # duplicates follow their original within this many pages (the bounded cache)
NEAR_TARGETS = (0.95, 0.85, 0.7, 0.5)
SAMPLE_STAGE = "sample-data"  # the manifest's stage and the folder's owner
DEFECT_RATE = 0.012  # per defect kind, on fresh pages (plus one truncated tail in about half the files)
DUP_SOURCE_RATE = 0.08
JUNK_SHARE = 0.05
LANG_WEIGHTS = {"en": 0.7, "de": 0.1, "fr": 0.1, "es": 0.1}
MALFORMED_DEFECTS = ("bad_gzip", "truncated")  # broken at the WARC / gzip level: written to `malformed-*` files
FORCED_DEFECT_AT = {"bad_gzip": 11, "non_html": 23, "undecodable": 37}  # guarantees one each when docs >= 200
GROUND_TRUTH_NAME = "ground-truth.jsonl"
_WORD = re.compile(r"\w+")


def main_text(html: str | bytes) -> str:
    """Visible text of the `<main>` element (the whole body when there is none), scripts removed."""
    root = lxml.html.fromstring(html)
    for node in root.xpath("//script|//style"):
        node.drop_tree()
    found = root.xpath("//main")
    return (found[0] if found else root).text_content()


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """The set of word n-grams of lower-cased `\\w+` words (one short gram when the text is shorter)."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def gzip_member(data: bytes) -> bytes:
    """One gzip member (zlib's gzip header has mtime 0, so output is reproducible)."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def warc_record(record_type: str, headers: dict[str, str], block: bytes) -> bytes:
    lines = [f"WARC-Type: {record_type}", *(f"{k}: {v}" for k, v in headers.items()), f"Content-Length: {len(block)}"]
    return ("WARC/1.0\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + block + b"\r\n\r\n"


def _corrupt_member(member: bytes, rng: random.Random) -> bytes:
    """Flip bytes inside the deflate stream until decompression really fails."""
    data = bytearray(member)
    while True:  # the 10-byte gzip header stays valid, so readers see a gzip member that fails mid-way
        for k in range(20 + rng.randrange(len(data) // 4), min(len(data) - 8, 60 + len(data) // 2)):
            data[k] = rng.randrange(256)
        try:
            zlib.decompressobj(31).decompress(bytes(data))
        except zlib.error:
            return bytes(data)


def _truncated_member(head: bytes, payload: bytes) -> bytes:
    """A gzip member cut halfway through the payload; the headers before it stay decodable."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    start = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    rest = comp.compress(payload) + comp.flush()
    return start + rest[: len(rest) // 2]


class _WarcFile:
    """One WARC file being written: its handle, its `warcinfo` record's id, and where the next member lands."""

    def __init__(self, path: Path, warcinfo_id: str) -> None:
        self.name, self.warcinfo_id = path.name, warcinfo_id
        self.file: IO[bytes] = open(path, "wb")
        self.offset = 0

    def write(self, member_or_record: bytes, raw: bool = False) -> tuple[int, int]:
        member = member_or_record if raw else gzip_member(member_or_record)
        self.file.write(member)
        start, self.offset = self.offset, self.offset + len(member)
        return start, len(member)


class _CrawlWriter:
    """Writes pages into rotating WARC files and remembers where each member lands.

    Records malformed at the WARC level (`MALFORMED_DEFECTS`) go to a companion file per crawl file
    (`malformed-00000.warc.gz` beside `crawl-00000.warc.gz`), opened at the first such record: a broken gzip
    member ends sequential reading in warcio, fastwarc and datatrove, so the crawl files read completely with
    any of them, and a reader that resumes past broken members still meets (and counts) the malformed ones.
    """

    def __init__(self, out_dir: Path, seed: int) -> None:
        self.out_dir, self.seed = out_dir, seed
        self.ids = random.Random(f"{seed}:record-ids")
        self.main: _WarcFile | None = None
        self.malformed: _WarcFile | None = None
        self.index, self.date, self.files = 0, "", []

    def record_id(self) -> str:
        return f"<urn:uuid:{uuid.UUID(int=self.ids.getrandbits(128), version=4)}>"

    def open(self, index: int, date: str) -> None:
        self.close()
        self.index, self.date = index, date
        self.main = self._start(f"crawl-{index:05d}.warc.gz")

    def target(self, defect: str | None) -> _WarcFile:
        """The file a page with this defect goes to (the crawl file, or its malformed companion)."""
        if defect not in MALFORMED_DEFECTS:
            assert self.main is not None
            return self.main
        if self.malformed is None:
            self.malformed = self._start(f"malformed-{self.index:05d}.warc.gz")
        return self.malformed

    def _start(self, name: str) -> _WarcFile:
        warc = _WarcFile(self.out_dir / name, self.record_id())
        self.files.append(name)
        fields = f"software: rexbert-sample-data/{VERSION}\r\nformat: WARC File Format 1.0\r\nseed: {self.seed}\r\n"
        warc.write(
            warc_record(
                "warcinfo",
                {
                    "WARC-Date": self.date,
                    "WARC-Record-ID": warc.warcinfo_id,
                    "WARC-Filename": name,
                    "Content-Type": "application/warc-fields",
                },
                fields.encode(),
            )
        )
        return warc

    def close(self) -> None:
        for warc in (self.main, self.malformed):
            if warc is not None:
                warc.file.close()
        self.main = self.malformed = None


def _http_response(payload: bytes, content_type: str, date: datetime) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nDate: {date.strftime('%a, %d %b %Y %H:%M:%S GMT')}\r\nServer: nginx\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()


def _binary_payload(rng: random.Random) -> tuple[str, bytes, str]:
    noise = rng.randbytes(rng.randint(2000, 8000))
    if rng.random() < 0.5:
        return "application/pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + noise + b"\n%%EOF\n", ".pdf"
    return "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + noise + b"\xff\xd9", ".jpg"


def _undecodable(html: bytes, rng: random.Random) -> bytes:
    """Splice invalid UTF-8 (lone continuation bytes, a bad lead byte) into the visible text."""
    cut = [m.start() for m in re.finditer(rb"<p>", html)] or [len(html) // 2]
    for pos in sorted(rng.sample(cut, k=min(3, len(cut))), reverse=True):
        html = html[: pos + 3] + b"\xff\xfe\xc3\x28\xa0\xa1 " + html[pos + 3 :]
    return html


def _lang_words(lang: str) -> list[str]:
    text = " ".join(sp.PRODUCT_SENTENCES[lang]) + " " + " ".join(" ".join(p) for p in sp.NEWS_PARTS[lang])
    return sorted({w for w in re.findall(r"[^\W\d_]{4,}", text)})


def _edited(page: PageDraft, edits: list[tuple[int, int, str]]) -> PageDraft:
    words = {j: page.main[j].text.split(" ") for j, _, _ in edits}  # type: ignore[union-attr]
    for j, t, word in edits:
        words[j][t] = word
    main = list(page.main)
    for j, ws in words.items():
        main[j] = replace(main[j], text=" ".join(ws))  # type: ignore[type-var]
    return replace(page, main=main)


def edit_towards(page: PageDraft, target: float, rng: random.Random) -> tuple[PageDraft, float]:
    """Replace words of the page's `Para` blocks until the 5-gram Jaccard to `page` is nearest `target`."""
    base = shingles(main_text(f"<main>{sp.render_main(page)}</main>"))
    slots = [
        (j, t) for j, part in enumerate(page.main) if isinstance(part, Para) for t in range(len(part.text.split(" ")))
    ]
    vocab = _lang_words(page.lang or "en")
    order = [(j, t, rng.choice(vocab)) for j, t in rng.sample(slots, len(slots))]

    def similarity(k: int) -> tuple[PageDraft, float]:
        draft = _edited(page, order[:k])
        return draft, jaccard(base, shingles(main_text(f"<main>{sp.render_main(draft)}</main>")))

    lo, hi = 1, len(order)  # smallest k whose similarity is <= target (similarity falls as k grows)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if similarity(mid)[1] <= target else (mid + 1, hi)
    options = [similarity(k) for k in {max(1, lo - 1), lo}]
    return min(options, key=lambda o: (abs(o[1] - target), -o[1]))


class _Planner:
    """Seeded decisions: what each fresh page is, which become originals, where duplicates go."""

    def __init__(self, seed: int, docs: int, docs_per_file: int, ecommerce_share: float) -> None:
        self.seed, self.docs, self.per_file, self.ecom = seed, docs, docs_per_file, ecommerce_share
        self.rng = random.Random(f"{seed}:plan")
        n_files = -(-docs // docs_per_file)
        self.truncated_tails = {
            min(docs, (f + 1) * docs_per_file) - 1
            for f in range(n_files)
            if f == n_files - 1 or random.Random(f"{seed}:file:{f}").random() < 0.5
        }
        self.schedule: dict[int, tuple[int, str, float | None]] = {}  # index -> (origin, variant, target)
        self.forced = dict(FORCED_DEFECT_AT) if docs >= 200 else {}
        self.has_groups = False

    def defect(self, i: int) -> str | None:
        if i in self.truncated_tails:
            return "truncated"
        for kind, start in list(self.forced.items()):
            if i >= start:
                del self.forced[kind]
                return kind
        roll = self.rng.random()
        for k, kind in enumerate(("bad_gzip", "non_html", "undecodable")):
            if roll < DEFECT_RATE * (k + 1):
                self.forced.pop(kind, None)
                return kind
        return None

    def kind(self) -> tuple[str, str, str | None]:
        """(page_type, lang, category) of a fresh page."""
        r = self.rng.random()
        lang = self.rng.choices(list(LANG_WEIGHTS), weights=list(LANG_WEIGHTS.values()))[0]
        if r < JUNK_SHARE:
            return "junk", "en", None
        if r < JUNK_SHARE + (1 - JUNK_SHARE) * self.ecom:
            return self.rng.choices(["product", "category"], weights=[7, 3])[0], lang, self.rng.choice(sp.CATEGORIES)
        if lang != "en":
            return "news", lang, None
        return self.rng.choices(["news", "forum", "documentation", "recipe"], weights=[3, 2.5, 2, 2.5])[0], lang, None

    def maybe_schedule_duplicates(self, i: int, page_type: str) -> bool:
        """Make page i an original with 1-3 duplicates ahead (the first non-junk page from index 3 always is)."""
        first = not self.has_groups and i >= 3 and page_type != "junk"
        if self.rng.random() >= DUP_SOURCE_RATE and not first:
            return False
        free = [
            i + off
            for off in self.rng.sample(range(1, LOOKAHEAD + 1), k=self.rng.choice([1, 1, 2, 3]))
            if i + off < self.docs and i + off not in self.schedule and i + off not in self.truncated_tails
        ]
        for slot in free:
            if page_type == "junk":
                variant = "exact"
            else:
                variant = self.rng.choices(["exact", "mirror", "template", "edit"], weights=[3, 1.5, 1.5, 4])[0]
                if variant == "template" and page_type != "product":
                    variant = "edit"
            target = self.rng.choice(NEAR_TARGETS) if variant == "edit" else None
            self.schedule[slot] = (i, variant, target)
        self.has_groups = self.has_groups or bool(free)
        return bool(free)


def _site_for(seed: int, kind: str, lang: str, rng: random.Random) -> sp.Site:
    return sp.make_site(random.Random(f"{seed}:site:{kind}:{lang}:{rng.randrange(40)}"), kind, lang)


def _build_fresh(seed: int, i: int, page_type: str, lang: str, category: str | None) -> PageDraft:
    key = f"{seed}:page:{i}"
    rng = random.Random(key)
    site_kind = {
        "product": "shop",
        "category": "shop",
        "news": "news",
        "forum": "forum",
        "documentation": "docs",
        "recipe": "recipes",
        "junk": "junk",
    }[page_type]
    site = _site_for(seed, site_kind, lang, random.Random(f"{key}:site"))  # keeps rng for the page alone
    if page_type == "product":
        page = sp.build_product(rng, site, lang, category)  # type: ignore[arg-type]
    elif page_type == "category":
        page = sp.build_category(rng, site, lang, category)  # type: ignore[arg-type]
    elif page_type == "news":
        page = sp.build_news(rng, site, lang)
    else:
        builder = {
            "forum": sp.build_forum,
            "documentation": sp.build_documentation,
            "recipe": sp.build_recipe,
            "junk": sp.build_junk,
        }[page_type]
        page = builder(rng, site)
    page.extra["key"] = key
    return page


def _build_duplicate(seed: int, i: int, origin: dict, variant: str, target: float | None) -> tuple[PageDraft, bytes]:
    page: PageDraft = origin["page"]
    rng = random.Random(f"{seed}:dup:{i}")
    suffix = rng.choice(
        ["?utm_source=newsletter", "?ref=home", "/amp", "?page=1", "?sessionid=" + str(rng.randint(1, 9**9))]
    )
    if variant == "exact":
        return replace(page, path=page.path + suffix), origin["html"]
    if variant == "mirror":
        draft = page.with_site(_site_for(seed + 1, page.site.kind, page.lang or "en", rng))
    elif variant == "template":
        base_name = page.product["name"]  # type: ignore[index]
        colour = rng.randrange(len(sp.COLOURS[page.lang or "en"]))
        draft = sp.build_product(random.Random(page.extra["key"]), page.site, page.lang or "en", page.category, colour)
        if draft.product["name"] == base_name:  # type: ignore[index]
            colour = (colour + 1) % len(sp.COLOURS[page.lang or "en"])
            draft = sp.build_product(
                random.Random(page.extra["key"]), page.site, page.lang or "en", page.category, colour
            )
    else:
        draft, _ = edit_towards(page, target or 0.9, rng)
        draft = replace(draft, path=page.path + suffix)
    return draft, sp.render_html(draft).encode()


def _write_page(
    warc: _WarcFile,
    url: str,
    payload: bytes,
    content_type: str,
    defect: str | None,
    date: datetime,
    rng: random.Random,
    ids: _CrawlWriter,
) -> tuple[str, int, int]:
    """Write the request and response records of one page into `warc` (record ids drawn from `ids`);
    returns (record_id, offset, length) of the response."""
    stamp = date.strftime("%Y-%m-%dT%H:%M:%SZ")
    host = url.split("/")[2]
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    request_id, response_id = ids.record_id(), ids.record_id()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: rexbert-sample-data/{VERSION}\r\n"
        "Accept: text/html,application/xhtml+xml\r\n\r\n"
    ).encode()
    warc.write(
        warc_record(
            "request",
            {
                "WARC-Date": stamp,
                "WARC-Record-ID": request_id,
                "WARC-Target-URI": url,
                "WARC-Warcinfo-ID": warc.warcinfo_id,
                "Content-Type": "application/http; msgtype=request",
            },
            request,
        )
    )
    head = _http_response(payload, content_type, date)
    headers = {
        "WARC-Date": stamp,
        "WARC-Record-ID": response_id,
        "WARC-Target-URI": url,
        "WARC-Concurrent-To": request_id,
        "WARC-Warcinfo-ID": warc.warcinfo_id,
        "WARC-IP-Address": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "Content-Type": "application/http; msgtype=response",
        "WARC-Payload-Digest": _digest(payload),
        "WARC-Block-Digest": _digest(head + payload),
    }
    record = warc_record("response", headers, head + payload)
    if defect == "bad_gzip":
        offset, length = warc.write(_corrupt_member(gzip_member(record), rng), raw=True)
    elif defect == "truncated":
        body_start = len(record) - len(payload) - 4
        offset, length = warc.write(_truncated_member(record[:body_start], record[body_start:]), raw=True)
    else:
        offset, length = warc.write(record)
    return response_id, offset, length


def generate_sample_crawl(
    out_dir: str | Path,
    docs: int = 1000,
    seed: int = 0,
    docs_per_file: int = 500,
    progress: bool = True,
    ecommerce_share: float = 0.5,
) -> dict:
    """Write the synthetic crawl, its ground truth and manifest under `out_dir`; return the manifest.

    The folder appears whole (`staged_output`), and replaces only a previous sample crawl."""
    if docs < 1 or docs_per_file < 1 or not 0 <= ecommerce_share <= 1:
        raise ValueError("docs and docs_per_file must be >= 1 and ecommerce_share in [0, 1]")
    with staged_output(out_dir, SAMPLE_STAGE) as staging:
        return _generate(staging, docs, seed, docs_per_file, progress, ecommerce_share)


def _generate(out_dir: str, docs: int, seed: int, docs_per_file: int, progress: bool, ecommerce_share: float) -> dict:
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    planner, writer = _Planner(seed, docs, docs_per_file, ecommerce_share), _CrawlWriter(out, seed)
    start = datetime(2026, 1, 1) + timedelta(days=seed % 365, seconds=seed % 86400)
    originals: dict[int, dict] = {}  # index -> original page, kept only while a duplicate may still follow
    counts: dict[str, Counter] = {
        k: Counter()
        for k in ("label", "lang", "page_type", "category", "defect", "dup_kind", "dup_variant", "has_product_markup")
    }
    groups = 0
    with (
        open(out / GROUND_TRUTH_NAME, "w", encoding="utf-8") as truth,
        tqdm(total=docs, desc="sample-data", unit="doc", disable=not progress) as bar,
    ):
        for i in range(docs):
            date = start + timedelta(seconds=7 * i)
            if i % docs_per_file == 0:
                writer.open(i // docs_per_file, date.strftime("%Y-%m-%dT%H:%M:%SZ"))
            rng = random.Random(f"{seed}:record:{i}")
            dup = planner.schedule.pop(i, None)
            defect, jac, dup_info = (
                None,
                None,
                {"dup_group": None, "dup_kind": None, "dup_variant": None, "dup_of": None},
            )
            if dup is not None:
                origin = originals[dup[0]]
                page, payload = _build_duplicate(seed, i, origin, dup[1], dup[2])
                jac = 1.0 if dup[1] == "exact" else jaccard(origin["shingles"], shingles(main_text(payload)))
                dup_info = {
                    "dup_group": origin["group"],
                    "dup_kind": "exact" if dup[1] == "exact" else "near",
                    "dup_variant": dup[1],
                    "dup_of": origin["record_id"],
                }
            else:
                defect = planner.defect(i)
                page_type, lang, category = planner.kind()
                page = _build_fresh(seed, i, page_type, lang, category)
                payload = sp.render_html(page).encode()
            content_type, url = "text/html; charset=utf-8", page.url
            if defect == "non_html":
                content_type, payload, ext = _binary_payload(rng)
                url = url.rstrip("/") + ext
                page = replace(
                    page, label="junk", page_type="binary", lang=None, category=None, markup=None, product=None
                )
            elif defect == "undecodable":
                payload = _undecodable(payload, rng)
            target = writer.target(defect)
            record_id, offset, length = _write_page(target, url, payload, content_type, defect, date, rng, writer)
            if defect is None and dup is None and planner.maybe_schedule_duplicates(i, page.page_type):
                groups += 1
                dup_info["dup_group"] = f"g{seed}-{i:08d}"
                originals[i] = {
                    "page": page,
                    "html": payload,
                    "shingles": shingles(main_text(payload)),
                    "group": dup_info["dup_group"],
                    "record_id": record_id,
                }
            originals.pop(i - LOOKAHEAD, None)
            row = {
                "record_id": record_id,
                "url": url,
                "file": target.name,
                "offset": offset,
                "length": length,
                "warc_date": date.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "label": page.label,
                "page_type": page.page_type,
                "category": page.category,
                "lang": page.lang,
                **dup_info,
                "jaccard": jac,
                "defect": defect,
                "content_type": content_type,
                "has_product_markup": page.markup,
                "product": page.product,
                "junk_kind": page.junk_kind,
                "title": page.title,
            }
            truth.write(json.dumps(row, ensure_ascii=False) + "\n")
            for key in counts:
                counts[key][str(row[key])] += 1
            bar.update(1)
    writer.close()
    return _write_manifest(out, counts, groups, sorted(writer.files), time.perf_counter() - started,
                           {"docs": docs, "seed": seed, "docs_per_file": docs_per_file,
                            "ecommerce_share": ecommerce_share})


def _write_manifest(out: Path, counts: dict[str, Counter], groups: int, files: list[str], seconds: float,
                    config: dict[str, Any]) -> dict:
    """The crawl's manifest in the one stage schema: every generated page is an input; a page written
    malformed on purpose (a defect) is an error of that kind, every other page is kept. The generator's own
    breakdowns (`by_label`, `by_defect`, ...), its files and duplicate groups are the stage's extra keys."""
    docs = sum(counts["label"].values())
    stats = StageStats(input=docs, seconds=seconds)
    for defect, n in counts["defect"].items():
        if defect != "None":
            stats.error(defect, n)
    stats.kept = docs - sum(stats.errors.values())
    manifest = build_manifest(
        SAMPLE_STAGE,
        stats,
        config=config,
        outputs={"files": len(files), "records": 2 * docs + len(files)},  # beside this manifest
        extra={
            "version": VERSION,
            "dup_groups": groups,
            **{f"by_{k}": dict(sorted(v.items())) for k, v in counts.items()},
            "files": files,
            "ground_truth": GROUND_TRUTH_NAME,
        },
    )
    write_manifest(str(out), manifest)
    return manifest


def run_demo(config: Any, root: Path) -> dict:
    """Demo stage: `config.demo.docs` pages seeded by `config.run.seed` under `root/sample-data`.

    `config` is the run's `RexbertConfig` (typed loosely: corpus/ does not import infra/); its resolved
    form is written next to the crawl.
    """
    out = Path(root) / "sample-data"
    docs = config.demo.docs
    manifest = generate_sample_crawl(out, docs=docs, seed=config.run.seed, docs_per_file=config.demo.docs_per_file)
    write_resolved_config(config, out)
    return {"output": str(out), "files": manifest["files"], "docs": manifest["counts"]["input"], **manifest["counts"]}
