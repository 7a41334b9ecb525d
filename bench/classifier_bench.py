"""E-commerce classifier on wcxb-dev, held out by domain: precision and recall per feature set and threshold.

Positives: product and collection pages; negatives: article, documentation, forum, service (listing, a mix,
left out). Each page is extracted once with `corpus.extract.html.extract_page`; then, for seeds 0, 1, 2, 25% of
the domains are held out (`split_by_domain`), a fastText model is trained on the rest and scored on them.
Feature sets, side by side in the same run:
  text      extracted text words only (the plain fastText baseline)
  page      text + URL + title + product fields + text signal tokens (prices, cart words, ...)
  page+html page + the raw page's structural signals (`corpus.extract.html.html_signals`), kept in `extracted/`

    python -m bench.classifier_bench          # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from corpus.filter.classify import (
    EcomClassifier,
    PageExample,
    evaluate,
    load_labeled_pages,
    split_by_domain,
    train_fasttext,
)
from infra.core.paths import PROJECT_ROOT, shared_data_dir

RESULTS = PROJECT_ROOT / "bench" / "results"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6)


def feature_sets(examples: list[PageExample]) -> dict[str, list[PageExample]]:
    return {
        # The text alone: no URL, title, product or signal tokens (`text_only` makes PageExample.features skip them).
        "text": [replace(e, url=None, title=None, product=None, html_signals=None, text_only=True) for e in examples],
        "page": [replace(e, html_signals=None) for e in examples],
        "page+html": examples,
    }


def run(pages: Path, seeds: list[int], work: Path) -> dict:
    examples = load_labeled_pages(pages, progress=True)
    results: dict[str, dict] = {}
    for name, variant in feature_sets(examples).items():
        per_threshold: dict[float, list[dict]] = {t: [] for t in THRESHOLDS}
        for seed in seeds:
            train, test = split_by_domain(variant, 0.25, seed)
            model = EcomClassifier(train_fasttext(train, work / f"{name}-{seed}.bin"))
            scores = model.score_examples(test)
            for threshold in THRESHOLDS:
                per_threshold[threshold].append(evaluate(model, test, threshold, scores))
        results[name] = {
            str(t): {k: round(sum(m[k] for m in ms) / len(ms), 4) for k in ("precision", "recall", "f1")}
            for t, ms in per_threshold.items()
        }
        print(name, results[name]["0.5"])
    return {
        "pages": len(examples),
        "positives": sum(e.label for e in examples),
        "seeds": seeds,
        "held_out": "25% of domains per seed (split_by_domain); metrics are means over seeds",
        "by_feature_set": results,
    }


def to_markdown(result: dict) -> str:
    lines = [
        "# E-commerce classifier (fastText) on wcxb-dev, held out by domain",
        "",
        f"{result['pages']} pages ({result['positives']} e-commerce: product, collection; the rest article, "
        "documentation, forum, service). 25% of domains held out; mean over seeds "
        f"{', '.join(map(str, result['seeds']))}. Reproduce: `python -m bench.classifier_bench`.",
        "",
        "| features | threshold | precision | recall | F1 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, by_threshold in result["by_feature_set"].items():
        for threshold, m in by_threshold.items():
            lines.append(f"| {name} | {threshold} | {m['precision']} | {m['recall']} | {m['f1']} |")
    lines += [
        "",
        "`text`: extracted words only; `page`: + URL, title, product fields and text signal tokens; `page+html`: "
        "+ the raw page's structural signals (`corpus.extract.html.html_signals`: product markup, ItemList size, "
        "cart buttons, article markup, counts of shop and forum words in the HTML), kept in `extracted/`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=Path, default=shared_data_dir() / "pages" / "wcxb-dev")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output", type=Path, default=RESULTS / "classifier.json")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        result = run(args.pages, [int(s) for s in args.seeds.split(",")], Path(work))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
