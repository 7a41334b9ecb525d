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


def readable_copy(inputs: list[Path], dest: Path) -> int:
    """Rewrite every HTML record our reader recovers from `inputs` into clean WARC.gz files under `dest`.

    datatrove's WarcReader ends a file at its first broken gzip member, so on the raw crawl it reads only
    part of the input; on this copy (not timed) it reads the same pages our chain reads. Returns the count.
    """
    from warcio.statusandheaders import StatusAndHeaders
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
                charset = f"; charset={record.charset}" if record.charset else ""
                http = StatusAndHeaders("200 OK", [("Content-Type", f"text/html{charset}")], protocol="HTTP/1.1")
                warc_headers = {"WARC-Date": record.fetch_date} if record.fetch_date else None
                writer.write_record(writer.create_warc_record(
                    record.url or f"urn:bench:{i}:{n}", "response", payload=io.BytesIO(record.payload),
                    http_headers=http, warc_headers_dict=warc_headers))
                n += 1
    return n


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

    load_before = os.getloadavg()[0]
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    config = load_config(None, {"spark": {"master": f"local[{args.workers}]"}})
    # Several files: both engines parallelise over input files.
    generate_sample_crawl(work / "crawl", docs=args.docs, seed=0, docs_per_file=max(25, args.docs // 8))
    inputs = sorted((work / "crawl").glob("*.warc.gz"))
    shared = shared_data_dir() / "warc"
    if not args.no_shared and shared.is_dir():
        inputs += sorted(shared.glob("*.warc.gz"))
    spark = build_spark_session("corpus-chain-bench", master=f"local[{args.workers}]", shuffle_partitions=8)
    try:
        metrics = train_demo_classifier(spark, config, work / "classifier")
        classifier = metrics["model"]
        threshold = config.corpus.filter.ecommerce_threshold
        ours = run_ours(spark, inputs, work / "ours", config, classifier)
    finally:
        spark.stop()
    reference = run_datatrove(inputs, work / "datatrove", classifier, threshold, args.workers)
    n = ours["input_records"]
    n_ref = reference["documents_read"] or n
    result = {
        "bench": "corpus_chain",
        "inputs": [str(p) for p in inputs],
        "input_documents": n,
        "workers": args.workers,
        "ours": {**ours, "docs_per_s": round(n / ours["seconds"], 2)},
        "datatrove": {**reference, "docs_per_s": round(n_ref / reference["seconds"], 2)},
        "speedup_wall": round(reference["seconds"] / ours["seconds"], 3),
        "speedup": round((n / ours["seconds"]) / (n_ref / reference["seconds"]), 3),
        "note": "docs/s = input records each side read / wall seconds; ours excludes Spark JVM start-up (a "
        "warm session, as on a cluster); both write their outputs; ours reads the raw crawl (broken gzip "
        "members, clipped records and non-HTML payloads counted), datatrove a clean rewrite of the HTML records "
        "our reader recovers (its WarcReader ends a file at the first broken member), made before timing",
        "load_average_1min": {"start": round(load_before, 1), "end": round(os.getloadavg()[0], 1)},
        "classifier_heldout": {k: metrics[k] for k in ("precision", "recall", "test_pages")},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "corpus_chain.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "corpus_chain.md").write_text(
        f"# Corpus chain throughput\n\n{n} input documents ({args.docs} generated + shared WARCs), "
        f"{args.workers} workers, this machine.\n\n| chain | seconds | docs/s | kept |\n| --- | --- | --- | --- |\n"
        f"| ours (Spark local) | {ours['seconds']} | {result['ours']['docs_per_s']} | {ours['kept']} |\n"
        f"| datatrove LocalPipelineExecutor | {reference['seconds']} | {result['datatrove']['docs_per_s']} | "
        f"{reference['kept']} |\n\nSpeed-up (docs/s ratio): **{result['speedup']}x** (wall-clock ratio "
        f"{result['speedup_wall']}x). {result['note']}.\n\nStage seconds, ours: {ours['stage_seconds']}; "
        f"datatrove: {reference['stage_seconds']}. Load average (1 min) at start / end: "
        f"{result['load_average_1min']['start']} / {result['load_average_1min']['end']}.\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
