"""Train the fastText e-commerce classifier from labelled pages and/or labelled JSONL.

Training itself is single-process fastText (`corpus.filter.classify`). Held-out precision / recall (split by
domain) are printed and saved beside the model as `<model>.metrics.json`. (The demo's classifier, trained on
a generated crawl, is built by `infra.demo_corpus`: the crawl generator is not shipped code.)

    spark-submit spark_jobs/train_classifier_job.py --labeled-pages pages/wcxb-dev --output model.bin
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from corpus.filter.classify import PageExample, load_labeled_jsonl, load_labeled_pages, train_classifier
from infra.core import fs
from infra.core.config import load_config


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the fastText e-commerce classifier.")
    parser.add_argument("--labeled-pages", type=fs.absolute, default=None,
                        help="wcxb-dev-shaped folder (labels.csv + html/).")
    parser.add_argument("--labeled-jsonl", type=fs.absolute, default=None, help='{"text", "label"} lines.')
    parser.add_argument("--output", type=fs.absolute, required=True, help="Model path (.bin).")
    parser.add_argument("--listing", default="exclude", choices=["exclude", "positive", "negative"])
    parser.add_argument("--seed", type=int, default=None, help="Split and training seed (default: run.seed).")
    parser.add_argument("--config", type=fs.absolute, default=None, help="Run config YAML, local or a URI (run.seed, "
                        "corpus.filter.ecommerce_threshold).")
    args = parser.parse_args(argv)
    local_only = {"--output": args.output, "--labeled-pages": args.labeled_pages, "--labeled-jsonl": args.labeled_jsonl}
    for flag, value in local_only.items():
        if value is not None and fs.is_remote(value):  # fastText reads and writes local files only
            parser.error(f"{flag} must be a local path, got {value}: train on the driver's disk, then upload the model")
    config = load_config(args.config)
    seed = config.run.seed if args.seed is None else args.seed
    metrics = train_from_sources(args.output, args.labeled_pages, args.labeled_jsonl, args.listing, seed=seed,
                                 threshold=config.corpus.filter.ecommerce_threshold)
    print(format_metrics(metrics))


if __name__ == "__main__":
    main()
