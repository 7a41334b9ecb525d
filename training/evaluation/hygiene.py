"""Evaluation data kept out of pretraining text: find every pretraining document that repeats an evaluation item.

A model that saw a test offer, page or text while pretraining is scored on memory, not on what it learned.
The shared data makes this easy to get wrong: `text/wdc-offers` (the WDC training pairs of the cameras
large and computers medium sets) repeats about half of the offers of `eval/wdc-products/*/test.txt`, and
the wcxb-dev pages are both pretraining text and the page-type and fill-mask evaluation sets.

The evaluation side (`evaluation_items`) is every item of a validation or test split, split by the task's own
rule (`training.evaluation.base.split_of`): the offers of the WDC valid and test files of both categories
(product-matching and similarity read them), the wcxb-dev pages of page-type's valid and test domains, every
wcxb-dev product and collection page (fill-mask's valid and test halves: it has no train split), and the
zyte-products pages of attribute-tagging's valid and test keys (by URL: their text is extracted per model run).
Train splits are fine-tuning data, not evaluation data, and are not checked.

A pretraining document overlaps when (first reason that applies):

    eval_url             its URL is an evaluation page's URL (scheme, `www.`, query order and trailing `/` ignored)
    eval_exact           its normalised text equals an evaluation item's (NFKC, lower case, \\w+ words)
    eval_line            one of its lines (of at least `min_line_words` words) equals an evaluation item's text
    eval_near_duplicate  MinHash LSH finds an item whose word-`ngram` Jaccard with it is >= `threshold`
                         (`corpus.minhash`: 128 permutations, 16 bands x 8 rows; each candidate verified exactly)

Overlapping documents are dropped from the pretraining side (the evaluation sets stay the published ones, the
same for every model), and counted by reason and by the task and split of the item they repeat.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

from corpus.minhash import Permutations, band_hashes, jaccard, normalize_words, shingles, signatures
from training.evaluation.base import TaskDataError, split_of

EVAL_SPLITS = ("valid", "test")
WDC_FILES = {"valid": "valid.txt.small", "test": "test.txt"}
OFFER_PREFIX = "COL title VAL"
ECOMMERCE_PAGE_TYPES = ("product", "collection")


@dataclass(frozen=True)
class EvalItem:
    """One evaluation item: where it comes from (task, split, key), its text and, for a page, its URL."""

    task: str
    split: str
    key: str
    text: str = ""
    url: str | None = None


@dataclass
class Overlap:
    """Why a pretraining document overlaps, and the evaluation items it repeats."""

    reason: str
    items: list[EvalItem]


def normalized_text(text: str) -> str:
    return " ".join(normalize_words(text))


def normalized_url(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    if not host:
        return None
    query = urlencode(sorted(parse_qsl(parts.query)))
    return f"{host}{parts.path.rstrip('/')}{'?' + query if query else ''}"


def _wdc_items(folder: Path, category: str) -> list[EvalItem]:
    items = []
    for split, name in WDC_FILES.items():
        path = folder / name
        if not path.is_file():
            raise TaskDataError(f"hygiene: WDC file not found: {path}")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for side, offer in zip("ab", line.split("\t")[:2], strict=False):
                text = offer.removeprefix(OFFER_PREFIX).strip()
                if text:
                    items.append(EvalItem("product-matching", split, f"{category}/{name}:{lineno}{side}", text))
    return items


def _wcxb_items(folder: Path) -> list[EvalItem]:
    from training.evaluation.page_type import read_labels

    items = []
    for row in read_labels(folder / "labels.csv"):
        truth = folder / "ground-truth" / f"{row['file_id']}.json"
        text = ""
        if truth.is_file():
            text = (json.loads(truth.read_text(encoding="utf-8")).get("ground_truth") or {}).get("main_content") or ""
        split = split_of(row["split_key"])
        if split in EVAL_SPLITS:
            items.append(EvalItem("page-type", split, row["file_id"], text, row["url"] or None))
        if row["page_type"] in ECOMMERCE_PAGE_TYPES and text.strip():
            # fill-mask splits its texts into a validation and a test half; both are evaluation data.
            items.append(EvalItem("fill-mask", "valid+test", row["file_id"], text, row["url"] or None))
    return items


def _zyte_items(folder: Path) -> list[EvalItem]:
    path = folder / "ground-truth.json"
    if not path.is_file():
        raise TaskDataError(f"hygiene: file not found: {path}")
    truth = json.loads(path.read_text(encoding="utf-8"))
    return [EvalItem("attribute-tagging", split_of(key), key, url=record.get("url"))
            for key, record in sorted(truth.items()) if split_of(key) in EVAL_SPLITS and isinstance(record, dict)]


def evaluation_items(shared: Path) -> list[EvalItem]:
    """The validation and test items of every task's default data under the shared data folder."""
    items: list[EvalItem] = []
    for category in ("computers", "cameras"):
        items += _wdc_items(shared / "eval" / "wdc-products" / category, category)
    items += _wcxb_items(shared / "pages" / "wcxb-dev")
    items += _zyte_items(shared / "pages" / "zyte-products")
    return items


@dataclass
class OverlapReport:
    """Counts of a decontamination pass: documents checked and dropped by reason, and the evaluation items hit."""

    checked: int = 0
    dropped: Counter = field(default_factory=Counter)
    by_source: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    items_hit: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, source: str, overlap: Overlap | None) -> None:
        self.checked += 1
        self.by_source[source]["checked"] += 1
        if overlap is None:
            return
        self.dropped[overlap.reason] += 1
        self.by_source[source][overlap.reason] += 1
        self.items_hit.update((i.task, i.split, i.key) for i in overlap.items)

    def to_dict(self, items: Sequence[EvalItem]) -> dict[str, Any]:
        total = Counter((i.task, i.split) for i in items)
        hit = Counter((task, split) for task, split, _ in self.items_hit)
        return {
            "documents_checked": self.checked,
            "documents_dropped": sum(self.dropped.values()),
            "dropped_by_reason": dict(sorted(self.dropped.items())),
            "by_source": {s: dict(c) for s, c in sorted(self.by_source.items())},
            "evaluation_items_found_in_pretraining": {
                f"{task}/{split}": {"items": n, "found": hit[(task, split)]}
                for (task, split), n in sorted(total.items())
            },
        }


class Decontaminator:
    """An index of evaluation items; `check` says whether a pretraining document repeats one of them.

    Args:
        ngram: word n-gram size of the near-duplicate shingles (short offers need short shingles).
        threshold: Jaccard similarity from which a document is a near duplicate of an item.
        min_line_words: shorter lines are not compared line by line (a line "Add to cart" repeats everywhere).
    """

    def __init__(self, items: Iterable[EvalItem], ngram: int = 3, threshold: float = 0.7, min_line_words: int = 4,
                 num_perm: int = 128, bands: int = 16, rows: int = 8, seed: int = 1):
        self.items = list(items)
        self.ngram, self.threshold, self.min_line_words = ngram, threshold, min_line_words
        self.bands, self.rows = bands, rows
        self.perms = Permutations.create(num_perm, seed)
        self.by_url: dict[str, list[EvalItem]] = defaultdict(list)
        self.by_text: dict[str, list[EvalItem]] = defaultdict(list)
        for item in self.items:
            if (url := normalized_url(item.url)) is not None:
                self.by_url[url].append(item)
            if (text := normalized_text(item.text)):
                self.by_text[text].append(item)
        self.texts = list(self.by_text)  # one entry per distinct normalised text
        self._shingle_sets: dict[int, set[str]] = {}  # of the items that were candidates once
        sigs, ok = signatures(self.texts, self.perms, ngram)
        self.buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, row in enumerate(band_hashes(sigs, bands, rows)):
            if ok[index]:
                for band, value in enumerate(row.tolist()):
                    self.buckets[(band, value)].append(index)

    def _shingles_of(self, index: int) -> set[str]:
        if index not in self._shingle_sets:
            self._shingle_sets[index] = set(shingles(self.texts[index], self.ngram))
        return self._shingle_sets[index]

    def check_batch(self, texts: Sequence[str], urls: Sequence[str | None] | None = None) -> list[Overlap | None]:
        """The overlap of each document (None when it repeats no evaluation item); one MinHash pass per batch."""
        urls = urls if urls is not None else [None] * len(texts)
        normalized = [normalized_text(t or "") for t in texts]
        sigs, ok = signatures(normalized, self.perms, self.ngram)
        bands = band_hashes(sigs, self.bands, self.rows) if len(texts) else np.empty((0, self.bands), np.int64)
        out = []
        for text, norm, url, has, row in zip(texts, normalized, urls, ok, bands, strict=True):
            out.append(self._check(text or "", norm, url, row if has else None))
        return out

    def check(self, text: str, url: str | None = None) -> Overlap | None:
        return self.check_batch([text], [url])[0]

    def _check(self, text: str, norm: str, url: str | None, bands: np.ndarray | None) -> Overlap | None:
        if (key := normalized_url(url)) is not None and key in self.by_url:
            return Overlap("eval_url", self.by_url[key])
        if norm in self.by_text:
            return Overlap("eval_exact", self.by_text[norm])
        lines = {normalized_text(line) for line in text.splitlines()}
        hits = [item for line in lines if len(line.split()) >= self.min_line_words
                for item in self.by_text.get(line, [])]
        if hits:
            return Overlap("eval_line", hits)
        if bands is None:
            return None
        candidates = {i for band, value in enumerate(bands.tolist()) for i in self.buckets.get((band, value), [])}
        if not candidates:
            return None
        doc = set(shingles(norm, self.ngram))
        near = [i for i in sorted(candidates) if jaccard(doc, self._shingles_of(i)) >= self.threshold]
        if near:
            return Overlap("eval_near_duplicate", [item for i in near for item in self.by_text[self.texts[i]]])
        return None
