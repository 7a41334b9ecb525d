"""Whole-chain throughput: our Spark build vs datatrove's LocalPipelineExecutor, same input, same run.

Chain: extract -> langid -> e-commerce classifier -> Gopher repetition / Gopher quality / C4 /
FineWeb quality -> MinHash dedup (signatures, buckets, clusters, filter).
- ours: `spark_jobs.build_job.build_corpus` (one warm local Spark session; the stats report is off);
- datatrove: WarcReader -> Trafilatura -> LambdaFilter(py3langid, as ours) -> LambdaFilter(the same
  fastText classifier) -> the same four datatrove filters -> JsonlWriter, then MinhashDedupSignature,
  MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter (FineWeb's 14x8 MinHash).
Both run with as many workers as CPUs. The classifier is trained first (not timed) on a separately
generated crawl, as the demo does. Input: a generated crawl plus ../shared/data/warc/*.warc.gz; datatrove
reads a clean rewrite of the HTML records our reader recovers from them (`readable_copy`), since its
WarcReader ends a file at the first broken gzip member and would otherwise see a fraction of the pages.

    .venv/bin/python bench/corpus_chain_bench.py --docs 6000     # about 3 minutes
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
_STATE: dict = {}


def _langid_en(doc) -> bool:
    from corpus.extract.stage import identify_language

    lang, _ = identify_language(doc.text)
    doc.metadata["language"] = lang
    return lang == "en"


def _is_ecommerce(doc) -> bool:
    from corpus.filter.classify import EcomClassifier

    if "clf" not in _STATE:
        _STATE["clf"] = EcomClassifier(os.environ["BENCH_CLASSIFIER"], float(os.environ["BENCH_THRESHOLD"]))
    clf = _STATE["clf"]
    return clf.score(doc.text, doc.metadata.get("url")) >= clf.threshold


def _tolerant_warc_reader(folder: str):
    """datatrove's WarcReader, except that a broken gzip member ends its file instead of the whole task.

    Unmodified, WarcReader raises on `clipped.warc.gz` and on the generated crawl's defects (EOFError,
    ArchiveLoadFailed) and the executor stops; the records after the break in that file are lost.
    """
    from datatrove.pipeline.readers import WarcReader

    class TolerantWarcReader(WarcReader):
        def read_file(self, filepath: str):
            try:
                yield from super().read_file(filepath)
            except Exception as exc:  # noqa: BLE001 - count it and go on to the next file
                self.stat_update(f"file_error_{type(exc).__name__}")

    return TolerantWarcReader(folder, glob_pattern="*.warc.gz")


def write_html_response(writer, url: str, payload: bytes, charset: str | None = None,
                        fetch_date: str | None = None) -> None:
    """One HTTP response record of an HTML page, as both engines read it."""
    from warcio.statusandheaders import StatusAndHeaders

    content_type = f"text/html; charset={charset}" if charset else "text/html"
    http = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
    # datatrove's WarcReader guesses a record's type with libmagic when this header is missing, and skips the
    # pages it calls JavaScript or INI (148 of the 987 real pages): both sides read them all
    warc_headers = {"WARC-Identified-Payload-Type": "text/html"}
    if fetch_date:
        warc_headers["WARC-Date"] = fetch_date
    writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload), http_headers=http,
                                                  warc_headers_dict=warc_headers))


def readable_copy(inputs: list[Path], dest: Path) -> int:
    """Rewrite every HTML record our reader recovers from `inputs` into clean WARC.gz files under `dest`.

    datatrove's WarcReader ends a file at its first broken gzip member, so on the raw crawl it reads only
    part of the input; on this copy (not timed) it reads the same pages our chain reads. Returns the count.
    """
    from warcio.warcwriter import WARCWriter

    from corpus.extract.readers import iter_warc

    dest.mkdir(parents=True)
    n = 0
    for i, path in enumerate(inputs):
        with (dest / f"{i:03d}-{path.name}").open("wb") as out:
            writer = WARCWriter(out, gzip=True)
            for record in iter_warc(path.read_bytes(), str(path)):
                if record.status != "html":
                    continue
                write_html_response(writer, record.url or f"urn:bench:{i}:{n}", record.payload, record.charset,
                                    record.fetch_date)
                n += 1
    return n


def real_pages(mix: bool) -> list[tuple[str, str, bytes]]:
    """(page type, URL, HTML bytes) of the shared real pages: wcxb-dev's 847 (every type) and zyte-products' 140
    product pages; with `mix`, a crawl-shaped subset where e-commerce is a minority (1 in 10, as in Common
    Crawl): every non-e-commerce wcxb page and a seeded sample of e-commerce ones (zyte's included)."""
    import csv
    import gzip
    import random

    from corpus.filter.classify import POSITIVE_TYPES
    from infra.core.paths import shared_data_dir

    root = shared_data_dir() / "pages"
    wcxb, zyte = root / "wcxb-dev", root / "zyte-products"
    if not (wcxb / "labels.csv").is_file() or not (zyte / "html").is_dir():
        raise SystemExit(f"--pages real / crawl-mix need {wcxb} and {zyte} (../shared/data)")
    with (wcxb / "labels.csv").open(newline="") as fh:
        pages = [(r["page_type"], r["url"], gzip.decompress((wcxb / "html" / f"{r['file_id']}.html.gz").read_bytes()))
                 for r in csv.DictReader(fh)]
    zyte_urls = {key: row["url"] for key, row in json.loads((zyte / "ground-truth.json").read_text()).items()}
    for path in sorted((zyte / "html").glob("*.html.gz")):
        key = path.name.split(".")[0]
        pages.append(("product", zyte_urls.get(key, f"https://zyte-products.invalid/{key}"),
                      gzip.decompress(path.read_bytes())))
    if mix:
        other = [p for p in pages if p[0] not in POSITIVE_TYPES]
        ecom = random.Random(0).sample([p for p in pages if p[0] in POSITIVE_TYPES], round(len(other) / 9))
        pages = other + ecom
    return random.Random(1).sample(pages, len(pages))  # page types spread over the files


def write_page_warcs(pages: list[tuple[str, str, bytes]], dest: Path, files: int) -> list[Path]:
    """The pages as `files` WARC.gz files of HTTP responses (both engines read the same files)."""
    from warcio.warcwriter import WARCWriter

    dest.mkdir(parents=True)
    paths = [dest / f"real-{i:02d}.warc.gz" for i in range(files)]
    for i, path in enumerate(paths):
        with path.open("wb") as out:
            writer = WARCWriter(out, gzip=True)
            for _, url, html in pages[i::files]:
                write_html_response(writer, url, html, "utf-8")
    return paths


def prefilter_pass_rates(pages: list[tuple[str, str, bytes]]) -> dict[str, dict[str, int]]:
    """Per page type: pages, and how many the extract stage's pre-classifier (`commerce_evidence`) lets through."""
    from corpus.extract.html import commerce_evidence, decode_html

    rates: dict[str, dict[str, int]] = {}
    for page_type, _, html in pages:
        row = rates.setdefault(page_type, {"pages": 0, "passed": 0})
        row["pages"] += 1
        row["passed"] += commerce_evidence(decode_html(html).lower())
    return dict(sorted(rates.items()))


def _datatrove_read_count(logging_dir: Path) -> int | None:
    """Documents the first step (the reader) produced, from the executor's merged stats.json."""
    try:
        stats = json.loads((logging_dir / "stats.json").read_text())
        reader = stats[0]["stats"]
        return int(reader.get("documents", {}).get("total", 0))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def run_datatrove(inputs: list[Path], work: Path, classifier: str, threshold: float, workers: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LambdaFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    os.environ["BENCH_CLASSIFIER"], os.environ["BENCH_THRESHOLD"] = classifier, str(threshold)
    warcs = work / "warc"
    readable_copy(inputs, warcs)  # in /tmp, never next to the shared data
    mh = MinhashConfig()  # FineWeb: 5-grams, 14 buckets x 8 hashes
    tasks = max(1, min(workers, len(inputs)))
    stages = [
        ("extract+filter", [
            _tolerant_warc_reader(str(warcs)),
            Trafilatura(favour_precision=True, timeout=10),
            LambdaFilter(_langid_en),
            LambdaFilter(_is_ecommerce),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(filter_no_terminal_punct=False),
            FineWebQualityFilter(),
            JsonlWriter(str(work / "filtered")),
        ], tasks),
        ("minhash-signature", [JsonlReader(str(work / "filtered")),
                               MinhashDedupSignature(str(work / "sigs"), config=mh)], tasks),
        ("minhash-buckets", [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=mh)],
         mh.num_buckets),
        ("minhash-cluster", [MinhashDedupCluster(str(work / "buckets"), str(work / "clusters"), config=mh)], 1),
        ("minhash-filter", [JsonlReader(str(work / "filtered")), MinhashDedupFilter(str(work / "clusters")),
                            JsonlWriter(str(work / "deduped"))], tasks),
    ]
    seconds = {}
    start = time.perf_counter()
    for name, pipeline, n_tasks in stages:
        t0 = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=n_tasks, workers=min(workers, n_tasks),
                              logging_dir=str(work / "logs" / name)).run()
        seconds[name] = round(time.perf_counter() - t0, 2)
    total = time.perf_counter() - start
    kept = sum(1 for f in (work / "deduped").glob("*.jsonl*") for _ in _open_lines(f))
    read = _datatrove_read_count(work / "logs" / "extract+filter")
    return {"seconds": round(total, 2), "stage_seconds": seconds, "kept": kept, "documents_read": read}


def _open_lines(path: Path):
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        yield from fh


def run_ours(spark, inputs: list[Path], out: Path, config, classifier: str) -> dict:
    from spark_jobs.build_job import build_corpus

    start = time.perf_counter()
    manifest = build_corpus([str(p) for p in inputs], str(out), config, classifier, spark=spark, report=False)
    seconds = time.perf_counter() - start
    stage_seconds = {k: v["seconds"] for k, v in manifest["stages"].items()}
    # The extract stage's counted `seconds` sum its tasks' time; its manifest's own `seconds` is the wall clock.
    stage_seconds["extracted"] = json.loads((out / "extracted" / "manifest.json").read_text())["seconds"]
    return {"seconds": round(seconds, 2), "kept": manifest["counts"]["kept"], "funnel": manifest["funnel"],
            "input_records": manifest["counts"]["input"], "stage_seconds": stage_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", choices=["generated", "real", "crawl-mix"], default="generated",
                        help="generated: a generated crawl plus the shared WARCs; real: the shared real pages "
                        "(wcxb-dev + zyte-products); crawl-mix: real pages with e-commerce a 1-in-10 minority.")
    parser.add_argument("--docs", type=int, default=300, help="Generated crawl size (the reported run used 6000).")
    parser.add_argument("--work", default="/tmp/rexbert-chain-bench")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-shared", action="store_true", help="Leave out ../shared/data/warc.")
    args = parser.parse_args()

    from infra.core.config import load_config
    from infra.core.paths import shared_data_dir
    from infra.demo_corpus import train_demo_classifier
    from infra.sample_crawl.generate import generate_sample_crawl
    from spark_jobs.session import build_spark_session
    from spark_jobs.train_classifier_job import train_from_sources

    load_before = os.getloadavg()[0]
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    config = load_config(None, {"spark": {"master": f"local[{args.workers}]"}})
    pass_rates = None
    if args.pages == "generated":
        # Several files: both engines parallelise over input files.
        generate_sample_crawl(work / "crawl", docs=args.docs, seed=0, docs_per_file=max(25, args.docs // 8))
        inputs = sorted((work / "crawl").glob("*.warc.gz"))
        shared = shared_data_dir() / "warc"
        if not args.no_shared and shared.is_dir():
            inputs += sorted(shared.glob("*.warc.gz"))
        described = f"{args.docs} generated + shared WARCs"
    else:
        pages = real_pages(args.pages == "crawl-mix")
        inputs = write_page_warcs(pages, work / "crawl", files=4 * args.workers)
        pass_rates = prefilter_pass_rates(pages)
        types = {t: r["pages"] for t, r in pass_rates.items()}
        mixed = " (crawl-shaped mix)" if args.pages == "crawl-mix" else ""
        described = f"real pages: wcxb-dev + zyte-products{mixed}, {types}"
    spark = build_spark_session("corpus-chain-bench", master=f"local[{args.workers}]", shuffle_partitions=8)
    try:
        if args.pages == "generated":
            metrics = train_demo_classifier(spark, config, work / "classifier")
        else:  # trained on wcxb-dev's labelled pages (not timed; the bench measures speed, not accuracy)
            (work / "classifier").mkdir()
            metrics = train_from_sources(work / "classifier" / "model.bin",
                                         labeled_pages=shared_data_dir() / "pages" / "wcxb-dev",
                                         threshold=config.corpus.filter.ecommerce_threshold)
            metrics["model"] = str(work / "classifier" / "model.bin")
        classifier = metrics["model"]
        threshold = config.corpus.filter.ecommerce_threshold
        ours = run_ours(spark, inputs, work / "ours", config, classifier)
        prefiltered = None
        if pass_rates is not None:  # the same chain with the extract stage's pre-classifier on
            pre_config = load_config(None, {"spark": {"master": f"local[{args.workers}]"},
                                            "corpus": {"extract": {"prefilter": "commerce_evidence"}}})
            prefiltered = run_ours(spark, inputs, work / "ours-prefilter", pre_config, classifier)
    finally:
        spark.stop()
    reference = run_datatrove(inputs, work / "datatrove", classifier, threshold, args.workers)
    n = ours["input_records"]
    n_ref = reference["documents_read"] or n
    ref_rate = n_ref / reference["seconds"]
    result = {
        "bench": "corpus_chain",
        "pages": args.pages,
        "inputs": [str(p) for p in inputs],
        "input_documents": n,
        "workers": args.workers,
        "ours": {**ours, "docs_per_s": round(n / ours["seconds"], 2)},
        "datatrove": {**reference, "docs_per_s": round(ref_rate, 2)},
        "speedup_wall": round(reference["seconds"] / ours["seconds"], 3),
        "speedup": round((n / ours["seconds"]) / ref_rate, 3),
        "note": "docs/s = input records each side read / wall seconds; ours excludes Spark JVM start-up (a "
        "warm session, as on a cluster); both write their outputs; ours reads the raw crawl (broken gzip "
        "members, clipped records and non-HTML payloads counted), datatrove a clean rewrite of the HTML records "
        "our reader recovers (its WarcReader ends a file at the first broken member), made before timing",
        "load_average_1min": {"start": round(load_before, 1), "end": round(os.getloadavg()[0], 1)},
        "classifier_heldout": {k: metrics[k] for k in ("precision", "recall", "test_pages")},
    }
    rows = [("ours (Spark local)", ours)]
    if prefiltered is not None:
        result["ours_prefilter"] = {**prefiltered, "docs_per_s": round(n / prefiltered["seconds"], 2)}
        result["speedup_prefilter"] = round((n / prefiltered["seconds"]) / ref_rate, 3)
        result["prefilter_pass"] = pass_rates
        rows.append(("ours, pre-classifier on (`corpus.extract.prefilter: commerce_evidence`)", prefiltered))
    table = "".join(f"| {label} | {n} | {r['seconds']} | {round(n / r['seconds'], 2)} | "
                    f"{round(n / r['seconds'] / ref_rate, 3)}x | {r['kept']} |\n" for label, r in rows)
    table += (f"| datatrove LocalPipelineExecutor | {n_ref} | {reference['seconds']} | {round(ref_rate, 2)} | 1x | "
              f"{reference['kept']} |\n")
    extra = ""
    if prefiltered is not None:
        passed = "; ".join(f"{t} {r['passed']}/{r['pages']}" for t, r in pass_rates.items())
        extra = (f"\nPre-classifier (`corpus.extract.commerce_evidence`, raw HTML only) lets through, per page type: "
                 f"{passed}. Stage seconds with it: {prefiltered['stage_seconds']}. The classifier here is "
                 "trained on wcxb-dev's labelled pages (not timed): kept counts show what each chain keeps, "
                 "not held-out accuracy.\n")
    name = {"generated": "corpus_chain", "real": "corpus_chain_real", "crawl-mix": "corpus_chain_crawl_mix"}[args.pages]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{name}.md").write_text(
        f"# Corpus chain throughput ({args.pages})\n\n{n} input documents ({described}), "
        f"{args.workers} workers, this machine. `python bench/corpus_chain_bench.py --pages {args.pages}"
        f"{' --docs ' + str(args.docs) if args.pages == 'generated' else ''}`\n\n"
        "| chain | docs read | seconds | docs/s | vs datatrove | kept |\n| --- | --- | --- | --- | --- | --- |\n"
        f"{table}\nSpeed-up (docs/s ratio): **{result['speedup']}x** (wall-clock ratio "
        f"{result['speedup_wall']}x). {result['note']}.\n\nStage seconds, ours: {ours['stage_seconds']}; "
        f"datatrove: {reference['stage_seconds']}. Load average (1 min) at start / end: "
        f"{result['load_average_1min']['start']} / {result['load_average_1min']['end']}.\n{extra}"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
