"""The demo's corpus stage: a classifier from a second generated crawl, then one corpus build per demo corpus.

Demo-only: it generates data with `infra.sample_crawl` (never shipped to executors), so it lives in infra/
and calls the Spark jobs, not the reverse. Everything it does is set in `config.demo`:

    classifier/          fastText model trained on `demo.classifier_docs` pages of a crawl seeded run.seed + 1
    <name>/ per corpus   `spark_jobs.build_job.build_corpus` over `sample-data/`, with the e-commerce
                         filter on or off as `demo.corpora[name]` says (off: general web text for phase 1)
    shared-text/general/ real pretraining text from the shared data, when `tokenize.corpora` names them:
    shared-text/ecom/    wikitext-2 and wcxb-dev article, documentation, forum and service pages (general);
                         WDC offers (`text/wdc-offers`), wcxb-dev product and collection pages and the
                         zyte-products pages (e-commerce); nothing from `eval/`
    hygiene.json         evaluation overlap (`training.evaluation.hygiene`): every shared-text document that
                         repeats a validation or test item is dropped (counted by reason in its manifest), and
                         the crawl corpora are checked too (generated text; an overlap there is reported, not
                         dropped, since the corpus build owns that folder)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from tqdm import tqdm

from infra.core import fs
from infra.core.config import RexbertConfig
from infra.demo import LOG_DIR
from infra.sample_crawl.generate import GROUND_TRUTH_NAME, generate_sample_crawl
from spark_jobs.build_job import build_corpus
from spark_jobs.extract_job import run_extract
from spark_jobs.output import read_parquet_dir
from spark_jobs.session import stage_session
from spark_jobs.train_classifier_job import format_metrics, train_from_sources
from training.evaluation.pages import PAGE_CACHE

LABELED_COLUMNS = ("url", "title", "text", "product", "html_signals")
SHARED_TEXT = "shared-text"
SHARED_TEXT_STAGE = "shared-text"
HYGIENE_NAME = "hygiene.json"
GENERAL_PAGE_TYPES = ("article", "documentation", "forum", "service")
ECOMMERCE_PAGE_TYPES = ("product", "collection")


def crawl_to_jsonl(spark: SparkSession, crawl_dir: Path, out_jsonl: Path, config: RexbertConfig) -> int:
    """Extract a generated crawl with the extract stage and join its ground truth into labelled JSONL."""
    truth = {}
    with (crawl_dir / GROUND_TRUTH_NAME).open() as fh:
        for line in fh:
            row = json.loads(line)
            truth[row["url"]] = "ecommerce" if row["label"] == "ecommerce" else "non_ecommerce"
    extracted = crawl_dir.parent / "train-extracted"
    run_extract(spark, [str(crawl_dir)], str(extracted), config.corpus)
    rows = read_parquet_dir(spark, str(extracted)).select(*LABELED_COLUMNS).collect()
    n = 0
    with out_jsonl.open("w") as fh:
        for row in rows:
            label = truth.get(row["url"])
            if label is None or not row["text"]:
                continue
            product = row["product"].asDict() if row["product"] is not None else None
            record = {"text": row["text"], "label": label, "url": row["url"], "title": row["title"],
                      "product": product, "html_signals": row["html_signals"]}
            fh.write(json.dumps(record) + "\n")
            n += 1
    return n


def train_demo_classifier(
    spark: SparkSession, config: RexbertConfig, out_dir: Path, docs: int | None = None
) -> dict[str, Any]:
    """The demo's classifier, from a crawl generated with seed run.seed + 1 (needs no ../shared/data).

    Args:
        docs: pages of that crawl (default `config.demo.classifier_docs`).
    """
    docs = config.demo.classifier_docs if docs is None else docs
    out_dir = Path(out_dir)
    crawl = out_dir / "train-crawl"
    # Several files so extraction runs in parallel (Spark distributes input files).
    generate_sample_crawl(crawl, docs=docs, seed=config.run.seed + 1, docs_per_file=max(25, docs // 4),
                          progress=False)
    labeled = out_dir / "labeled.jsonl"
    crawl_to_jsonl(spark, crawl, labeled, config)
    metrics = train_from_sources(out_dir / "model.bin", labeled_jsonl=labeled, seed=config.run.seed,
                                 threshold=config.corpus.filter.ecommerce_threshold)
    tqdm.write(f"demo classifier: {format_metrics(metrics).splitlines()[0]}")
    return metrics


def run_corpus_stage(config: RexbertConfig, root: str | Path, spark: SparkSession | None = None) -> dict[str, Any]:
    """Train the demo classifier, then build every corpus of `config.demo.corpora` from `root/sample-data`.

    Returns the classifier's held-out metrics and, per corpus, its funnel, counts and folder.
    """
    start = time.perf_counter()
    root = Path(root)
    crawl = root / "sample-data"
    inputs = [file for _, file in fs.list_inputs([crawl], kinds=("warc",))] if crawl.is_dir() else []
    if not inputs:
        raise FileNotFoundError(f"no sample crawl in {crawl}: generate it first")
    summary: dict[str, Any] = {}
    steps = tqdm(total=len(config.demo.corpora) + 2, desc="corpus: classifier", unit="step", dynamic_ncols=True)
    with steps, stage_session("rexbert-demo-corpus", config.spark, root, spark, log_dir=root / LOG_DIR) as spark:
        summary["classifier"] = train_demo_classifier(spark, config, root / "classifier")
        steps.update(1)
        for name, ecommerce_filter in config.demo.corpora.items():
            steps.set_description(f"corpus: build {name}")
            corpus_config = config.model_copy(deep=True)
            corpus_config.corpus.filter.ecommerce_filter = ecommerce_filter
            manifest = build_corpus(inputs, str(root / name), corpus_config, summary["classifier"]["model"],
                                    spark=spark)
            summary[name] = {"funnel": manifest["funnel"], "counts": manifest["counts"], "path": str(root / name),
                             "ecommerce_filter": ecommerce_filter}
            steps.update(1)
        steps.set_description("corpus: evaluation overlap")
        summary["hygiene"] = write_hygiene(config, root)
        steps.update(1)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def _doc_id(source: str, key: str) -> str:
    return hashlib.sha1(f"{source}\n{key}".encode()).hexdigest()[:16]


def wikitext_articles(path: Path) -> Iterator[dict[str, Any]]:
    """WikiText-2 raw split into articles at its top-level headings (` = Title = `)."""
    title, lines = None, []
    for line in [*path.read_text(encoding="utf-8").splitlines(), " = end = "]:
        if line.startswith(" = ") and line.endswith(" = ") and not line.startswith(" = = "):
            if title is not None and any(part.strip() for part in lines):
                yield {"doc_id": _doc_id("wikitext-2", f"{path.name}:{title}"), "url": None, "source": "wikitext-2",
                       "text": "\n".join(part.strip() for part in lines if part.strip())}
            title, lines = line.strip(" ="), []
        else:
            lines.append(line)


def wcxb_pages(folder: Path, page_types: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The reference main content of the wcxb-dev pages of `page_types`, with their URLs."""
    from training.evaluation.page_type import read_labels

    for row in read_labels(folder / "labels.csv"):
        truth = folder / "ground-truth" / f"{row['file_id']}.json"
        if row["page_type"] in page_types and truth.is_file():
            text = (json.loads(truth.read_text(encoding="utf-8")).get("ground_truth") or {}).get("main_content")
            yield {"doc_id": _doc_id("wcxb-dev", row["file_id"]), "url": row["url"] or None, "source": "wcxb-dev",
                   "text": text or ""}


def wdc_offers(folder: Path) -> Iterator[dict[str, Any]]:
    """Every offer of the WDC training pairs in `text/wdc-offers`, one document each (repeats included: the
    same offer is in many pairs; they are counted as duplicates)."""
    from training.evaluation.hygiene import OFFER_PREFIX

    for path in sorted(folder.glob("*-train.txt*")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for side, offer in zip("ab", line.split("\t")[:2], strict=False):
                yield {"doc_id": _doc_id("wdc-offers", f"{path.name}:{lineno}{side}"), "url": None,
                       "source": "wdc-offers", "text": offer.removeprefix(OFFER_PREFIX).strip()}


def zyte_pages(folder: Path, cache_dir: Path) -> Iterator[dict[str, Any]]:
    """Extracted text of the zyte-products pages, extracted as attribute-tagging extracts them and into the same
    cache layout (`<cache_dir>/attribute-tagging/texts.jsonl`), so the demo's evaluation reuses it."""
    from training.evaluation.attribute_tagging import read_ground_truth
    from training.evaluation.pages import extract_pages

    truth = read_ground_truth(folder / "ground-truth.json")
    pages = [(key, folder / "html" / f"{key}.html.gz", truth[key].get("url")) for key in sorted(truth)]
    texts = extract_pages(pages, cache_dir / "attribute-tagging" / "texts.jsonl", include_product=False,
                          desc="shared-text extract")
    for key, _, url in pages:
        yield {"doc_id": _doc_id("zyte-products", key), "url": url, "source": "zyte-products",
               "text": f"{texts[key]['title']}\n{texts[key]['text']}".strip()}


def shared_text_sources(shared: Path, cache_dir: Path) -> dict[str, list[Iterator[dict[str, Any]]]]:
    """The shared data's pretraining text, by corpus: general and e-commerce (read lazily, when iterated)."""
    pages = shared / "pages"
    return {
        "general": [wikitext_articles(shared / "text" / "wikitext-2" / name) for name in ("valid.txt", "test.txt")]
        + [wcxb_pages(pages / "wcxb-dev", GENERAL_PAGE_TYPES)],
        "ecom": [wdc_offers(shared / "text" / "wdc-offers"), wcxb_pages(pages / "wcxb-dev", ECOMMERCE_PAGE_TYPES),
                 zyte_pages(pages / "zyte-products", cache_dir)],
    }


def write_shared_text(name: str, sources: list[Iterator[dict[str, Any]]], out: Path, decontaminator,
                      report, inputs: list[str], batch_size: int = 512) -> dict[str, Any]:
    """One shared-text corpus (Parquet: doc_id, url, text, source) without the documents that overlap an
    evaluation split; its manifest counts input = kept + filtered (empty, eval_*) + duplicates."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from infra.core.manifest import StageStats, build_manifest, write_manifest
    from infra.core.outputs import staged_output
    from training.evaluation.hygiene import normalized_text

    start = time.perf_counter()
    stats = StageStats()
    seen: set[str] = set()
    per_source: dict[str, int] = {}
    schema = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("text", pa.string()), ("source", pa.string())])
    with staged_output(out, SHARED_TEXT_STAGE, inputs) as staging, \
            pq.ParquetWriter(Path(staging) / "part-00000.parquet", schema, compression="zstd") as writer:
        for source in sources:
            while batch := list(itertools.islice(source, batch_size)):
                kept, first = [], []
                for record in batch:  # a repeat of an earlier text is a duplicate, whatever became of that one
                    stats.input += 1
                    key = normalized_text(record["text"])
                    if key and key in seen:
                        stats.duplicates += 1
                        continue
                    seen.add(key)
                    first.append({**record, "_key": key})
                overlaps = decontaminator.check_batch([r["text"] for r in first], [r["url"] for r in first])
                for record, overlap in zip(first, overlaps, strict=True):
                    report.add(f"{name}/{record['source']}", overlap)
                    if overlap is not None:
                        stats.drop(overlap.reason)
                    elif not record.pop("_key"):
                        stats.drop("empty")  # no word at all
                    else:
                        stats.kept += 1
                        kept.append(record)
                        per_source[record["source"]] = per_source.get(record["source"], 0) + 1
                if kept:
                    writer.write_table(pa.Table.from_pylist(kept, schema=schema))
        writer.close()
        stats.seconds = time.perf_counter() - start
        write_manifest(staging, build_manifest(SHARED_TEXT_STAGE, stats, inputs=inputs,
                                               extra={"kept_per_source": per_source, "hygiene": HYGIENE_NAME}))
    return {"path": str(out), "counts": stats.to_dict(), "kept_per_source": per_source}


def crawl_corpus_overlap(corpus_dir: Path, decontaminator, report, name: str, batch_size: int = 512) -> None:
    """Check a corpus built from the crawl (`<name>/corpus`), a batch of rows at a time."""
    import pyarrow.parquet as pq

    for part in sorted(corpus_dir.glob("*.parquet")):
        reader = pq.ParquetFile(part)
        columns = [c for c in ("text", "url") if c in reader.schema_arrow.names]
        for batch in reader.iter_batches(batch_size=batch_size, columns=columns):
            rows = batch.to_pylist()
            overlaps = decontaminator.check_batch([r.get("text") or "" for r in rows], [r.get("url") for r in rows])
            for overlap in overlaps:
                report.add(name, overlap)


def write_hygiene(config: RexbertConfig, root: Path,
                  sources: dict[str, list[Iterator[dict[str, Any]]]] | None = None) -> dict[str, Any]:
    """Build the shared-text corpora `tokenize.corpora` names (if any), check the crawl corpora, and write
    `<root>/hygiene.json` with the overlap counts; returns its summary.

    Args:
        sources: the shared-text documents by corpus name (default: `shared_text_sources`).
    """
    from infra.core.paths import shared_data_dir
    from training.evaluation.hygiene import Decontaminator, OverlapReport, evaluation_items

    shared = shared_data_dir()
    result: dict[str, Any] = {"path": str(root / HYGIENE_NAME)}
    if not (shared / "README.md").is_file():
        result["skipped"] = f"no shared data at {shared}: no evaluation set to check against"
        (root / HYGIENE_NAME).write_text(json.dumps(result, indent=2))
        return result
    items = evaluation_items(shared)
    decontaminator = Decontaminator(items)
    wanted = {Path(path).name for path in config.tokenize.corpora.values()
              if Path(path).parts[:1] == (SHARED_TEXT,)}
    shared_report, written = OverlapReport(), {}
    sources = shared_text_sources(shared, root / PAGE_CACHE) if sources is None else sources
    for name, readers in sources.items():
        if name in wanted:
            written[name] = write_shared_text(name, readers, root / SHARED_TEXT / name, decontaminator,
                                              shared_report, [str(shared / "text"), str(shared / "pages")])
    crawl_report = OverlapReport()
    for name in config.demo.corpora:
        crawl_corpus_overlap(root / name / "corpus", decontaminator, crawl_report, name)
    rule = {"ngram": decontaminator.ngram, "near_duplicate_jaccard": decontaminator.threshold,
            "min_line_words": decontaminator.min_line_words, "splits": "validation and test of every task",
            "dropped_from": "pretraining text (shared-text corpora); evaluation sets unchanged"}
    result.update(rule=rule, evaluation_items=len(items), shared_text=written,
                  shared_text_overlap=shared_report.to_dict(items) if written else None,
                  crawl_corpora_overlap=crawl_report.to_dict(items),
                  clean_crawl_corpora=not crawl_report.dropped if crawl_report.checked else None)
    (root / HYGIENE_NAME).write_text(json.dumps(result, indent=2))
    dropped = shared_report.to_dict(items)["documents_dropped"] if written else 0
    tqdm.write(f"hygiene: {dropped} shared-text documents repeating an evaluation item dropped, "
          f"{sum(crawl_report.dropped.values())} crawl corpus documents overlap; {root / HYGIENE_NAME}")
    return {"path": result["path"], "shared_text_dropped": dropped,
            "crawl_overlap": sum(crawl_report.dropped.values())}
