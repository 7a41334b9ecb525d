"""Extraction quality and speed: ours vs plain trafilatura on WCXB dev, by page type, cross-validated by domain.

Word-level F1 (lower-case `\\w+` tokens, bag-of-words precision / recall) of the extracted text against
`ground_truth.main_content`, as the WCXB benchmark scores it. Ours routes commerce pages to a block model
(`corpus.extract.block_model`) that learns from the same ground truth, so it is measured by cross-validation
with folds by `domain`: each fold's model is trained on the other folds' pages only (its threshold is the
fixed default, tuned on no fold), then scores the fold's pages, none of whose domains it has seen. Reported:
per page type, the mean over folds of the fold's mean F1, the spread (std) over folds, and the mean over all
pages. Both extractors run on the same pages in the same process, alternating per page, so the time ratio is
fair; time is CPU (process) time, which a shared machine disturbs less than wall time.

    python -m bench.extraction_bench                          # 847 pages, 3 folds (~20 minutes on 2 busy cores)
    python -m bench.extraction_bench --folds 2 --limit 10     # 10 pages per type, for iterating
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

from corpus.extract.block_model import load_training_pages, train_block_model
from corpus.extract.blocks import word_f1
from corpus.extract.html import extract_page
from infra.core.paths import PROJECT_ROOT, shared_data_dir

RESULTS = PROJECT_ROOT / "bench" / "results"
# What WCXB published on its dev split (DESIGN.md, issue 10), for reference in the report.
PUBLISHED = {"product": (0.567, 0.641), "collection": (0.553, 0.716)}  # (trafilatura, best system)
EXTRACTORS = ("ours", "plain")


def load_pages(root: Path, limit_per_type: int | None, seed: int, types: list[str] | None = None) -> list[dict]:
    with open(root / "labels.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if not types or row["page_type"] in types]
    if limit_per_type:
        by_type = defaultdict(list)
        for row in rows:
            by_type[row["page_type"]].append(row)
        rng = random.Random(seed)
        rows = [r for rs in by_type.values() for r in rng.sample(rs, min(limit_per_type, len(rs)))]
    return rows


def domain_folds(rows: list[dict], n_folds: int) -> list[int]:
    """Fold of each row: whole domains per fold (scikit-learn's GroupKFold, balanced by page count)."""
    from sklearn.model_selection import GroupKFold

    fold = [0] * len(rows)
    splits = GroupKFold(n_splits=n_folds).split(rows, groups=[row["domain"] for row in rows])
    for k, (_, test) in enumerate(splits):
        for i in test:
            fold[i] = k
    return fold


def plain_trafilatura(html: bytes, url: str | None) -> str:
    import trafilatura

    return trafilatura.extract(html) or ""


def run(root: Path, limit_per_type: int | None, seed: int, n_folds: int, types: list[str] | None = None) -> dict:
    rows = load_pages(root, limit_per_type, seed, types)
    folds = domain_folds(rows, n_folds)
    training = load_training_pages(root, {row["file_id"] for row in rows}, progress=True)
    by_id = {page.file_id: page for page in training}
    per_page, seconds, train_seconds = [], dict.fromkeys(EXTRACTORS, 0.0), 0.0
    for k in range(n_folds):
        start = time.process_time()
        model = train_block_model([by_id[r["file_id"]] for r, f in zip(rows, folds, strict=True) if f != k], seed)
        train_seconds += time.process_time() - start
        test = [r for r, f in zip(rows, folds, strict=True) if f == k]
        extractors = {"ours": lambda h, u, m=model: extract_page(h, u, block_model=m), "plain": plain_trafilatura}
        for row in tqdm(test, desc=f"fold {k + 1}/{n_folds}", unit="page"):
            html = gzip.open(root / "html" / f"{row['file_id']}.html.gz").read()
            reference = by_id[row["file_id"]].reference  # 2 pages have none, 18 an empty one
            page = {"file_id": row["file_id"], "page_type": row["page_type"], "domain": row["domain"], "fold": k}
            for name, extractor in extractors.items():
                start = time.process_time()
                try:
                    result = extractor(html, row["url"])
                except Exception as err:  # scored as an empty extraction, and named in the results
                    result, page[f"{name}_error"] = "", f"{type(err).__name__}: {err}"
                seconds[name] += time.process_time() - start
                text = result if isinstance(result, str) else result.text
                if not isinstance(result, str):
                    page["route"] = result.extractor
                page[name] = round(word_f1(text, reference)[2], 4)
            per_page.append(page)
    return summarise(per_page, seconds, n_folds, train_seconds)


def summarise(per_page: list[dict], seconds: dict[str, float], n_folds: int, train_seconds: float) -> dict:
    groups: dict[str, list[dict]] = defaultdict(list)
    for page in per_page:
        groups[page["page_type"]].append(page)
        groups["all"].append(page)
    table = {}
    for page_type in sorted(groups, key=lambda t: (t == "all", t)):
        pages = groups[page_type]
        entry: dict = {"pages": len(pages)}
        for name in EXTRACTORS:
            fold_means = [
                statistics.fmean(p[name] for p in pages if p["fold"] == k)
                for k in range(n_folds)
                if any(p["fold"] == k for p in pages)
            ]
            entry[f"{name}_f1_folds"] = [round(m, 4) for m in fold_means]
            entry[f"{name}_f1"] = round(statistics.fmean(fold_means), 4)
            entry[f"{name}_f1_std"] = round(statistics.pstdev(fold_means), 4)
            entry[f"{name}_f1_pages"] = round(statistics.fmean(p[name] for p in pages), 4)
        entry["delta"] = round(entry["ours_f1"] - entry["plain_f1"], 4)
        entry["routes"] = dict(Counter(p.get("route", "error").split("+")[0] for p in pages))
        published = PUBLISHED.get(page_type)
        entry["published_trafilatura_f1"], entry["published_best_f1"] = published or (None, None)
        table[page_type] = entry
    n_pages = len(per_page)
    return {
        "pages": n_pages,
        "folds": n_folds,
        "metric": "word-level F1 (lower-case \\w+ bag of words) vs ground_truth.main_content",
        "cross_validation": "folds by domain (GroupKFold); each fold's block model trained on the other folds only",
        "by_page_type": table,
        "seconds_per_page": {name: round(s / max(n_pages, 1), 4) for name, s in seconds.items()},
        "time_ratio_ours_over_plain": round(seconds["ours"] / max(seconds["plain"], 1e-9), 3),
        "train_seconds_per_fold": round(train_seconds / max(n_folds, 1), 1),
        "per_page": per_page,
    }


def to_markdown(result: dict) -> str:
    lines = [
        f"# Extraction benchmark (WCXB dev, {result['pages']} pages, {result['folds']} folds by domain)",
        "",
        "Word-level F1 of main content. F1 = mean over folds of the fold's mean (± std over folds); each fold's",
        "block model is trained on the other folds' domains only. Plain = `trafilatura.extract(html)` defaults.",
        "Routes: which extractor ours used (blocks = block model, trafilatura, visible-text, html2txt, stream-text).",
        "",
        "| page type | pages | ours F1 | plain F1 | delta | ours (all pages) | plain (all pages) | routes "
        "| published trafilatura / best |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for page_type, e in result["by_page_type"].items():
        published = f"{e['published_trafilatura_f1']} / {e['published_best_f1']}" if e["published_best_f1"] else ""
        routes = ", ".join(f"{k} {v}" for k, v in sorted(e["routes"].items(), key=lambda kv: -kv[1]))
        lines.append(
            f"| {page_type} | {e['pages']} | {e['ours_f1']:.3f} ± {e['ours_f1_std']:.3f} "
            f"| {e['plain_f1']:.3f} ± {e['plain_f1_std']:.3f} | {e['delta']:+.3f} | {e['ours_f1_pages']:.3f} "
            f"| {e['plain_f1_pages']:.3f} | {routes} | {published} |"
        )
    sp = result["seconds_per_page"]
    lines += [
        "",
        f"CPU seconds per page: ours {sp['ours']}, plain {sp['plain']}; "
        f"ratio ours/plain = {result['time_ratio_ours_over_plain']}. "
        f"Training one fold's model: {result['train_seconds_per_fold']} CPU s.",
    ]
    return "\n".join(lines) + "\n"


def plot_results(result: dict, path: Path) -> None:
    """Bars of ours vs plain F1 per page type with the spread over folds (Agg backend: files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = [t for t in result["by_page_type"] if t != "all"]
    fig, ax = plt.subplots(figsize=(9.5, 3.5))
    for offset, name, label in ((-0.2, "plain", "plain trafilatura"), (0.2, "ours", "ours (block model routed)")):
        means = [result["by_page_type"][t][f"{name}_f1"] for t in types]
        spread = [result["by_page_type"][t][f"{name}_f1_std"] for t in types]
        ax.bar([i + offset for i in range(len(types))], means, width=0.4, yerr=spread, capsize=3, label=label)
    ax.set_xticks(list(range(len(types))), types, rotation=20)
    ax.set_ylabel("word F1 (mean ± std over folds)")
    ax.set_ylim(0, 1)
    ax.set_title(f"WCXB dev, {result['pages']} pages, {result['folds']} domain folds")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=Path, default=shared_data_dir() / "pages" / "wcxb-dev")
    parser.add_argument("--limit", type=int, default=None, help="pages per page type (default: all)")
    parser.add_argument("--folds", type=int, default=3, help="cross-validation folds, by domain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--types", default=None, help="comma-separated page types (default: all)")
    parser.add_argument("--output", type=Path, default=RESULTS / "extraction.json")
    args = parser.parse_args(argv)
    result = run(args.pages, args.limit, args.seed, args.folds, args.types.split(",") if args.types else None)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    args.output.with_suffix(".md").write_text(to_markdown(result))
    plot_results(result, args.output.with_suffix(".png"))
    print(to_markdown(result))
    return result


if __name__ == "__main__":
    main()
