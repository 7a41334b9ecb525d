"""page-type: classify a web page (product, collection, listing, article, forum, documentation,
service) from its extracted title and text. Data: wcxb-dev `labels.csv` + `html/ID.html.gz`.

The split is fixed by domain (a stable hash of the domain: 70/10/20 train/valid/test), so no site
is seen in both training and test. Metric: macro-F1 over the page types.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sklearn.metrics import accuracy_score, f1_score

from infra.core.config import EvaluateConfig
from training.evaluation.base import (
    EpochCallback,
    Task,
    TaskData,
    TaskDataError,
    TrialParams,
    require_file,
    split_of,
)
from training.evaluation.baselines import majority_class
from training.evaluation.pages import extract_pages
from training.evaluation.sequence_classification import LabeledText, run_sequence_classification

COLUMNS = ("file_id", "page_type", "domain", "url")


def read_labels(path: Path) -> list[dict[str, str]]:
    """Rows of labels.csv; a missing column or empty field is an error naming the file and line."""
    require_file(path, "page-type")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TaskDataError(f"{path}:1: header lacks column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            empty = [c for c in ("file_id", "page_type") if not (row.get(c) or "").strip()]
            if empty:
                raise TaskDataError(f"{path}:{lineno}: empty field(s) {', '.join(empty)}")
            record = {c: (row.get(c) or "").strip() for c in COLUMNS}
            # A few real rows have no domain: the split key falls back to the URL host, then the page id.
            record["split_key"] = record["domain"] or urlsplit(record["url"]).hostname or f"page:{record['file_id']}"
            rows.append(record)
    if not rows:
        raise TaskDataError(f"{path}: no labelled pages")
    return rows


def macro_f1(gold: list[int], pred: list[int]) -> dict[str, float]:
    labels = sorted(set(gold))  # classes present in the split; a class never in gold has no F1
    return {
        "score": float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(gold, pred)),
    }


class PageType(Task):
    name = "page-type"
    metric = "macro_f1"
    default_data = "pages/wcxb-dev"

    def load(self, path: str | None, config: EvaluateConfig, cache_dir: Path) -> TaskData:
        folder = self.data_source(path)
        rows = read_labels(folder / "labels.csv")
        labels = sorted({r["page_type"] for r in rows})
        if len(labels) < 2:
            raise TaskDataError(f"{folder / 'labels.csv'}: page-type needs at least 2 page types, found {labels}")
        # Choose pages before extracting them: limits bound the slow part.
        per_split: dict[str, list[dict[str, str]]] = defaultdict(list)
        seen: Counter[tuple[str, str]] = Counter()
        cap = config.limits.pages_per_class
        for row in sorted(rows, key=lambda r: r["file_id"]):
            split = split_of(row["split_key"])
            if cap is not None and seen[(split, row["page_type"])] >= cap:
                continue
            seen[(split, row["page_type"])] += 1
            per_split[split].append(row)
        wanted = [(r["file_id"], folder / "html" / f"{r['file_id']}.html.gz", r["url"] or None)
                  for split in ("train", "valid", "test") for r in per_split[split]]
        texts = extract_pages(wanted, cache_dir / "page-type" / "texts.jsonl", desc="page-type extract")
        index = {name: i for i, name in enumerate(labels)}

        def examples(split: str) -> list[LabeledText]:
            out = []
            for r in per_split[split]:
                page = texts[r["file_id"]]
                out.append(LabeledText(text=f"{page['title']}\n{page['text']}".strip(), label=index[r["page_type"]]))
            return out

        data = TaskData(train=examples("train"), valid=examples("valid"), test=examples("test"))
        for split in ("train", "valid", "test"):
            if not getattr(data, split):
                raise TaskDataError(f"page-type: the {split} split of {folder} is empty (too few domains?)")
        data.info = {
            "source": str(folder), "labels": labels, "split": "stable hash of domain, 70/10/20",
            "used": data.sizes(), "read": len(rows),
            "no_domain": sum(1 for r in rows if not r["domain"]),
            "per_class": {s: dict(Counter(labels[e.label] for e in getattr(data, s)))
                          for s in ("train", "valid", "test")},
            "empty_texts": sum(1 for s in ("train", "valid", "test") for e in getattr(data, s) if not e.text),
        }
        return data

    def run(self, model_dir: str, data: TaskData, params: TrialParams, config: EvaluateConfig,
            on_epoch: EpochCallback | None = None) -> dict[str, Any]:
        return run_sequence_classification(model_dir, data, params, config, macro_f1, on_epoch)

    def baselines(self, data: TaskData, config: EvaluateConfig, model_dirs: dict[str, str]) -> dict[str, dict]:
        return {"majority-class": majority_class(data, macro_f1, data.info["labels"])}
