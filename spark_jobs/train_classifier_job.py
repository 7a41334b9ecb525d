"""Train the fastText e-commerce classifier: from labelled pages, labelled JSONL, or (demo) a generated crawl.

Training itself is single-process fastText (`corpus.filter.classify`); Spark only extracts the demo's
generated crawl. Held-out precision / recall (split by domain) are printed and saved beside the model
as `<model>.metrics.json`.

    spark-submit spark_jobs/train_classifier_job.py --labeled-pages pages/wcxb-dev --output model.bin
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from corpus.filter.classify import PageExample, load_labeled_jsonl, load_labeled_pages, train_classifier

DEMO_TRAIN_DOCS = 300


def train_from_sources(
    output: str | Path,
    labeled_pages: str | Path | None = None,
    labeled_jsonl: str | Path | None = None,
    listing: str = "exclude",
    test_fraction: float = 0.25,
    seed: int = 0,
    threshold: float = 0.5,
    limit: int | None = None,
) -> dict[str, Any]:
    """Train on a wcxb-dev-shaped folder and/or `{"text","label"}` JSONL; returns held-out metrics.

    Args:
        listing: wcxb's mixed `listing` pages: "exclude", "positive" or "negative".
    """
    if listing not in ("exclude", "positive", "negative"):
        raise ValueError(f"listing must be exclude, positive or negative, not {listing!r}")
    examples: list[PageExample] = []
    if labeled_pages is not None:
        positives = ["product", "collection"] + (["listing"] if listing == "positive" else [])
        negatives = ["article", "documentation", "forum", "service"] + (["listing"] if listing == "negative" else [])
        examples += load_labeled_pages(labeled_pages, positives, negatives, limit=limit)
    if labeled_jsonl is not None:
        examples += load_labeled_jsonl(labeled_jsonl)
    if not examples:
        raise ValueError("no training data: give --labeled-pages DIR and/or --labeled-jsonl FILE")
    metrics = train_classifier(examples, output, test_fraction=test_fraction, seed=seed, threshold=threshold)
    metrics["sources"] = {"labeled_pages": str(labeled_pages) if labeled_pages else None,
                          "labeled_jsonl": str(labeled_jsonl) if labeled_jsonl else None, "listing": listing}
    Path(f"{output}.metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    return (
        f"held-out ({metrics['test_pages']} pages, {metrics['test_domains']} domains, threshold "
        f"{metrics['threshold']}): precision {metrics['precision']:.3f} recall {metrics['recall']:.3f} "
        f"f1 {metrics['f1']:.3f}"
    ) + "".join(
        f"\n  threshold {t}: precision {m['precision']:.3f} recall {m['recall']:.3f}"
        for t, m in metrics.get("by_threshold", {}).items()
    )


def crawl_to_jsonl(spark, crawl_dir: Path, out_jsonl: Path, config) -> int:
    """Extract a generated crawl with the extract stage and join its ground truth into labelled JSONL."""
    from spark_jobs.extract_job import run_extract
    from spark_jobs.output import read_parquet_dir

    truth = {}
    with (crawl_dir / "ground-truth.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            truth[row["url"]] = "ecommerce" if row["label"] == "ecommerce" else "non_ecommerce"
    extracted = crawl_dir.parent / "train-extracted"
    run_extract(spark, sorted(str(p) for p in crawl_dir.glob("*.warc.gz")), str(extracted), config.corpus)
    rows = read_parquet_dir(spark, str(extracted)).select("url", "title", "text", "product", "html_signals").collect()
    n = 0
    with out_jsonl.open("w") as fh:
        for row in rows:
            label = truth.get(row["url"])
            if label is None or not row["text"]:
                continue
            product = row["product"].asDict() if row["product"] is not None else None
            record = {"text": row["text"], "label": label, "url": row["url"], "title": row["title"], "product": product,
                      "html_signals": row["html_signals"]}
            fh.write(json.dumps(record) + "\n")
            n += 1
    return n


def train_demo_classifier(spark, config, out_dir: Path, docs: int = DEMO_TRAIN_DOCS) -> dict[str, Any]:
    """The demo's classifier, from a crawl generated with another seed (needs no ../shared/data)."""
    from infra.sample_crawl.generate import generate_sample_crawl

    out_dir = Path(out_dir)
    crawl = out_dir / "train-crawl"
    # Several files so extraction runs in parallel (Spark splits binary inputs by file).
    generate_sample_crawl(crawl, docs=docs, seed=config.run.seed + 1, docs_per_file=max(25, docs // 4),
                          progress=False)
    labeled = out_dir / "labeled.jsonl"
    crawl_to_jsonl(spark, crawl, labeled, config)
    metrics = train_from_sources(out_dir / "model.bin", labeled_jsonl=labeled, seed=config.run.seed,
                                 threshold=config.corpus.filter.ecommerce_threshold)
    print(f"demo classifier: {format_metrics(metrics)}")
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the fastText e-commerce classifier.")
    parser.add_argument("--labeled-pages", default=None, help="wcxb-dev-shaped folder (labels.csv + html/).")
    parser.add_argument("--labeled-jsonl", default=None, help='{"text", "label"} lines.')
    parser.add_argument("--output", required=True, help="Model path (.bin).")
    parser.add_argument("--listing", default="exclude", choices=["exclude", "positive", "negative"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    metrics = train_from_sources(args.output, args.labeled_pages, args.labeled_jsonl, args.listing, seed=args.seed)
    print(format_metrics(metrics))


if __name__ == "__main__":
    main()
