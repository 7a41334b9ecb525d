"""Extraction quality and speed: ours vs plain trafilatura on WCXB dev, by page type.

Word-level F1 (lower-case `\\w+` tokens, bag-of-words precision / recall) of the extracted text
against `ground_truth.main_content`, as the WCXB benchmark scores it. Both extractors run on the
same pages in the same process, alternating per page, so the time ratio is fair; time is CPU
(process) time, which a shared machine disturbs less than wall time. Scores are given
on all pages and on the held-out half (odd file_id) that was never looked at while tuning.

    python -m bench.extraction_bench                 # every page (847; minutes on 2 cores)
    python -m bench.extraction_bench --limit 20      # 20 pages per type, for iterating
    python -m bench.extraction_bench --types product,collection --output bench/results/extraction-commerce.json
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

from corpus.extract.html import extract_page
from infra.core.paths import PROJECT_ROOT, shared_data_dir

RESULTS = PROJECT_ROOT / "bench" / "results"
# What WCXB published for trafilatura on its dev split (DESIGN.md), for reference in the report.
PUBLISHED_TRAFILATURA = {"product": 0.567, "collection": 0.553}


def word_f1(predicted: str, reference: str) -> tuple[float, float, float]:
    """Bag-of-words precision, recall, F1 over lower-cased `\\w+` tokens."""
    import re

    pred = Counter(re.findall(r"\w+", (predicted or "").lower()))
    ref = Counter(re.findall(r"\w+", (reference or "").lower()))
    if not pred and not ref:
        return 1.0, 1.0, 1.0
    overlap = sum((pred & ref).values())
    precision = overlap / sum(pred.values()) if pred else 0.0
    recall = overlap / sum(ref.values()) if ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


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


def plain_trafilatura(html: bytes, url: str | None) -> str:
    import trafilatura

    return trafilatura.extract(html) or ""


def run(root: Path, limit_per_type: int | None, seed: int, types: list[str] | None = None) -> dict:
    rows = load_pages(root, limit_per_type, seed, types)
    scores: dict[str, dict[str, list]] = {"ours": defaultdict(list), "plain": defaultdict(list)}
    seconds = {"ours": 0.0, "plain": 0.0}
    per_page = []
    for row in tqdm(rows, desc="wcxb pages", unit="page"):
        html = gzip.open(root / "html" / f"{row['file_id']}.html.gz").read()
        truth = json.loads((root / "ground-truth" / f"{row['file_id']}.json").read_text())
        reference = truth["ground_truth"].get("main_content") or ""  # 2 pages have none, 18 an empty one
        page_scores = {}
        for name, extractor in (("ours", lambda h, u: extract_page(h, u).text), ("plain", plain_trafilatura)):
            start = time.process_time()
            try:
                text = extractor(html, row["url"])
            except Exception as err:  # scored as an empty extraction, and named in the results
                text, page_scores[f"{name}_error"] = "", f"{type(err).__name__}: {err}"
            seconds[name] += time.process_time() - start
            _, _, f1 = word_f1(text, reference)
            held_out = int(row["file_id"]) % 2 == 1
            for key in (row["page_type"], "all"):
                scores[name][key].append((f1, held_out))
            page_scores[name] = round(f1, 4)
        per_page.append({"file_id": row["file_id"], "page_type": row["page_type"], **page_scores})
    return summarise(scores, seconds, len(rows), per_page)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarise(scores, seconds, n_pages, per_page) -> dict:
    table = {}
    for page_type in sorted(scores["ours"], key=lambda t: (t == "all", t)):
        entry = {"pages": len(scores["ours"][page_type])}
        for name in ("ours", "plain"):
            values = scores[name][page_type]
            entry[f"{name}_f1"] = _mean([f for f, _ in values])
            entry[f"{name}_f1_held_out"] = _mean([f for f, held in values if held])
        entry["published_trafilatura_f1"] = PUBLISHED_TRAFILATURA.get(page_type)
        table[page_type] = entry
    return {
        "pages": n_pages,
        "metric": "word-level F1 (lower-case \\w+ bag of words) vs ground_truth.main_content",
        "held_out": "odd file_id (never inspected while tuning)",
        "by_page_type": table,
        "seconds_per_page": {name: round(s / max(n_pages, 1), 4) for name, s in seconds.items()},
        "time_ratio_ours_over_plain": round(seconds["ours"] / max(seconds["plain"], 1e-9), 3),
        "per_page": per_page,
    }


def to_markdown(result: dict) -> str:
    lines = [
        f"# Extraction benchmark (WCXB dev, {result['pages']} pages)",
        "",
        "Word-level F1 of main content; held-out = odd file_id. Plain = `trafilatura.extract(html)` defaults.",
        "",
        "| page type | pages | ours F1 | plain F1 | ours held-out | plain held-out | published trafilatura |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for page_type, e in result["by_page_type"].items():
        published = e["published_trafilatura_f1"]
        lines.append(
            f"| {page_type} | {e['pages']} | {e['ours_f1']} | {e['plain_f1']} | {e['ours_f1_held_out']} "
            f"| {e['plain_f1_held_out']} | {published if published is not None else ''} |"
        )
    sp = result["seconds_per_page"]
    lines += [
        "",
        f"Seconds per page: ours {sp['ours']}, plain {sp['plain']}; "
        f"ratio ours/plain = {result['time_ratio_ours_over_plain']}.",
    ]
    return "\n".join(lines) + "\n"


def plot_results(result: dict, path: Path) -> None:
    """Bars of ours vs plain F1 per page type (Agg backend: files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = [t for t in result["by_page_type"] if t != "all"]
    ours = [result["by_page_type"][t]["ours_f1"] for t in types]
    plain = [result["by_page_type"][t]["plain_f1"] for t in types]
    x = range(len(types))
    fig, ax = plt.subplots(figsize=(9.5, 3.5))
    ax.bar([i - 0.2 for i in x], plain, width=0.4, label="plain trafilatura")
    ax.bar([i + 0.2 for i in x], ours, width=0.4, label="ours")
    ax.set_xticks(list(x), types, rotation=20)
    ax.set_ylabel("word F1")
    ax.set_ylim(0, 1)
    ax.set_title(f"WCXB dev, {result['pages']} pages")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=Path, default=shared_data_dir() / "pages" / "wcxb-dev")
    parser.add_argument("--limit", type=int, default=None, help="pages per page type (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--types", default=None, help="comma-separated page types (default: all)")
    parser.add_argument("--output", type=Path, default=RESULTS / "extraction.json")
    args = parser.parse_args()
    result = run(args.pages, args.limit, args.seed, args.types.split(",") if args.types else None)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    args.output.with_suffix(".md").write_text(to_markdown(result))
    plot_results(result, args.output.with_suffix(".png"))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
