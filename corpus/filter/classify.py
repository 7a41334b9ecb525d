"""fastText e-commerce page classifier: features, training, held-out evaluation and scoring.

The paper keeps e-commerce content with light fastText classifiers distilled from LLM labels.
Bag-of-words text alone misses many shop pages (recall near 0.6: product grids and spec tables
have little prose), so each page becomes extracted text plus URL words, title words, structural
signal tokens of the text (product markup present, price patterns, cart / checkout / stock words,
their counts bucketed) and of the raw HTML (`corpus.extract.html.html_signals`, kept in `extracted/`).
Training data comes from a labelled-pages folder (the wcxb-dev layout) or from `{"text", "label"}`
JSONL lines (the shape of LLM-labelled data at scale; an optional `html_signals` field too).
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus.extract.html import count_bucket
from infra.core import fs

ECOM_LABEL = "__label__ecom"
OTHER_LABEL = "__label__other"
POSITIVE_TYPES = ("product", "collection")
NEGATIVE_TYPES = ("article", "documentation", "forum", "service")
POSITIVE_LABELS = {"ecommerce", "ecom", "e-commerce", "positive", "product", "collection", "1", "true", "yes"}
MAX_TEXT_WORDS = 100  # the page's opening words; longer text drowns the structural tokens
STRUCTURE_REPEAT = 1  # copies of the signal / URL / title / product tokens (their weight in the mean)
HTML_SIGNAL_REPEAT = 2  # copies of the raw page's signal tokens: 2 measured best on wcxb-dev (recall +0.08 over 1)

_TOKEN = re.compile(r"[a-z0-9]+(?:['.][a-z0-9]+)*")
_PRICE = re.compile(
    r"(?:[$€£¥₹]|\b(?:usd|eur|gbp|cad|aud|rs\.?|kr)\b)\s?\d[\d,.]*|\d[\d,.]*\s?(?:[$€£¥₹]|\b(?:usd|eur|gbp)\b)",
    re.IGNORECASE,
)
_SIGNALS: dict[str, re.Pattern] = {
    "cart": re.compile(r"add(?:ed)? to (?:cart|bag|basket)|shopping (?:cart|bag)|\bcart\b|\bbasket\b", re.I),
    "buy": re.compile(r"buy (?:now|it now)|shop now|order now|pre-?order|\bcheckout\b", re.I),
    "stock": re.compile(r"in stock|out of stock|sold out|availability|back in stock|only \d+ left", re.I),
    "shipping": re.compile(r"free (?:shipping|delivery|returns)|ships? (?:in|within|free)|delivery", re.I),
    "sku": re.compile(r"\b(?:sku|mpn|upc|ean|model (?:no|number)|item (?:no|number)|part number)\b", re.I),
    "variant": re.compile(r"\b(?:select (?:size|color|colour)|size guide|quantity|qty|colou?r:)\b", re.I),
    "reviews": re.compile(r"\b\d+ (?:reviews?|ratings?)\b|customer reviews|write a review|out of 5 stars", re.I),
    "sale": re.compile(r"\b(?:sale|discount|\d+% off|save \d+|was \S+ now|clearance|deal)\b", re.I),
    "listing": re.compile(r"sort by|filter by|\bresults\b|showing \d+|items? per page|view all|\bproducts\b", re.I),
    "prose": re.compile(r"\b(?:i|we|you|he|she|they) (?:was|were|have|had|think|said|will)\b", re.I),
    "docs": re.compile(r"\b(?:parameters?|returns?|example|syntax|install|api|function|reply|posted|thread)\b", re.I),
}


@dataclass
class PageExample:
    """One labelled page in the classifier's input shape."""

    text: str
    label: bool  # True: e-commerce
    url: str | None = None
    title: str | None = None
    product: dict | None = None
    domain: str | None = None
    page_type: str | None = None
    html_signals: str | None = None  # `corpus.extract.html.html_signals` of the raw page, when there was one
    text_only: bool = False  # features from the text's words alone (the plain-fastText baseline of the benchmark)

    def features(self) -> str:
        if self.text_only:
            return " ".join(_TOKEN.findall(self.text.lower())[:MAX_TEXT_WORDS]) or "__empty"  # fastText NaNs on none
        return page_features(self.text, self.url, self.title, self.product, self.html_signals)


def page_features(
    text: str | None,
    url: str | None = None,
    title: str | None = None,
    product: dict | None = None,
    html_signals: str | None = None,
) -> str:
    """The fastText input line of one page: signal tokens, URL and title words, product fields, text words."""
    text = text or ""
    tokens: list[str] = [f"__html_{signal}" for signal in (html_signals or "").split()] * HTML_SIGNAL_REPEAT
    has_product = bool(product) and any(v for v in (product or {}).values())
    tokens.append(f"__sig_markup_{'yes' if has_product else 'no'}")
    if has_product:
        tokens += [f"__sig_field_{k}" for k, v in sorted(product.items()) if v]
    tokens.append(f"__sig_price_{count_bucket(len(_PRICE.findall(text)))}")
    for name, pattern in _SIGNALS.items():
        tokens.append(f"__sig_{name}_{count_bucket(len(pattern.findall(text)))}")
    words = _TOKEN.findall(text.lower())
    tokens.append(f"__sig_len_{count_bucket(len(words) // 50)}")
    lines = [line for line in text.splitlines() if line.strip()]
    short = sum(1 for line in lines if len(line.split()) <= 4)
    tokens.append(f"__sig_shortlines_{int(10 * short / len(lines)) if lines else 0}")
    if url:
        path = re.sub(r"^[a-z]+://", "", url.lower())
        tokens += [f"u_{w}" for w in _TOKEN.findall(path)[:30]]
    if title:
        tokens += [f"t_{w}" for w in _TOKEN.findall(title.lower())[:30]]
    if has_product:
        tokens += [f"p_{w}" for w in _TOKEN.findall(str(product.get("name") or "").lower())[:20]]
    return " ".join(tokens * STRUCTURE_REPEAT + words[:MAX_TEXT_WORDS])


def is_positive_label(label: Any) -> bool:
    return str(label).strip().lower() in POSITIVE_LABELS


def domain_of(url: str | None) -> str:
    host = re.sub(r"^[a-z]+://", "", (url or "").lower()).split("/")[0].split(":")[0]
    return host.removeprefix("www.")


def load_labeled_jsonl(path: str | Path) -> list[PageExample]:
    """`{"text", "label"}` lines (optionally `url`, `title`); labels like "ecommerce"/"non_ecommerce", 1/0.

    `path` may be local or a URI (infra.core.fs).
    """
    examples = []
    for lineno, line in enumerate(fs.read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, label = row["text"], row["label"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{lineno}: expected a JSON object with 'text' and 'label' ({exc})") from None
        url = row.get("url")
        examples.append(
            PageExample(
                text=text or "",
                label=is_positive_label(label),
                url=url,
                title=row.get("title"),
                product=row.get("product"),
                domain=row.get("domain") or domain_of(url) or None,
                html_signals=row.get("html_signals"),
            )
        )
    return examples


def load_labeled_pages(
    folder: str | Path,
    positives: Sequence[str] = POSITIVE_TYPES,
    negatives: Sequence[str] = NEGATIVE_TYPES,
    limit: int | None = None,
    progress: bool = True,
) -> list[PageExample]:
    """Pages of a wcxb-dev-shaped folder (`labels.csv` + `html/ID.html.gz`), extracted with `extract_page`.

    Page types in neither list (wcxb's mixed `listing`) are left out; pass them in one list to use them.
    """
    import csv
    import gzip

    from tqdm import tqdm

    from corpus.extract.html import extract_page

    folder = Path(folder)
    with (folder / "labels.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["page_type"] in set(positives) | set(negatives)]
    if limit is not None:
        rows = random.Random(0).sample(rows, min(limit, len(rows)))
    examples = []
    for row in tqdm(rows, desc="extract labelled pages", disable=not progress):
        path = folder / "html" / f"{row['file_id']}.html.gz"
        if not path.is_file():
            continue
        page = extract_page(gzip.decompress(path.read_bytes()), row.get("url"), timeout=30)
        examples.append(
            PageExample(
                text=page.text,
                label=row["page_type"] in positives,
                url=row.get("url"),
                title=page.title,
                product=page.product,
                domain=row.get("domain") or domain_of(row.get("url")),
                page_type=row["page_type"],
                html_signals=page.signals,
            )
        )
    return examples


def split_by_domain(
    examples: Sequence[PageExample], test_fraction: float = 0.25, seed: int = 0
) -> tuple[list[PageExample], list[PageExample]]:
    """Train / held-out split where no domain is on both sides (a stable hash of domain and seed)."""
    train, test = [], []
    for ex in examples:
        key = f"{seed}:{ex.domain or domain_of(ex.url) or ex.text[:64]}".encode()
        (test if (zlib.crc32(key) % 10_000) / 10_000 < test_fraction else train).append(ex)
    return train, test


@dataclass
class TrainParams:
    """fastText supervised settings; small and fast by default (pages, not sentences)."""

    epoch: int = 25
    lr: float = 0.5
    word_ngrams: int = 2
    dim: int = 50
    min_count: int = 1
    bucket: int = 200_000
    threads: int = 2
    seed: int = 0
    max_positive_weight: int = 2  # upsample the (usually rarer) e-commerce pages up to this factor


def train_fasttext(examples: Iterable[PageExample], output: str | Path, params: TrainParams | None = None) -> Path:
    """Train and save a fastText model (`.bin`) on the examples."""
    import fasttext

    params = params or TrainParams()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{ECOM_LABEL if ex.label else OTHER_LABEL} {ex.features()}" for ex in examples]
    positives = [line for line in lines if line.startswith(ECOM_LABEL)]
    if not positives or len(positives) == len(lines):
        raise ValueError("training needs both e-commerce and non-e-commerce examples")
    weight = max(1, min(params.max_positive_weight, round((len(lines) - len(positives)) / len(positives))))
    rows = lines + positives * (weight - 1)
    random.Random(params.seed).shuffle(rows)
    fd, train_path = tempfile.mkstemp(suffix=".txt", prefix="fasttext-train-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(rows) + "\n")
        model = fasttext.train_supervised(
            input=train_path,
            epoch=params.epoch,
            lr=params.lr,
            wordNgrams=params.word_ngrams,
            dim=params.dim,
            minCount=params.min_count,
            bucket=params.bucket,
            thread=params.threads,
            seed=params.seed,
            verbose=0,
        )
    finally:
        os.unlink(train_path)
    model.save_model(str(output))
    return output


class EcomClassifier:
    """A trained model: `score` gives P(e-commerce) in [0, 1] for one page or a batch."""

    def __init__(self, model_path: str | Path, threshold: float = 0.5):
        import fasttext

        self.model_path = str(model_path)
        self.threshold = threshold
        self.model = fasttext.load_model(self.model_path)

    def score_lines(self, lines: list[str]) -> list[float]:
        if not lines:
            return []
        labels, probs = self.model.predict(lines, k=2)
        scores = []
        for labs, ps in zip(labels, probs, strict=True):
            prob = dict(zip(labs, ps, strict=True))
            scores.append(float(min(1.0, max(0.0, prob.get(ECOM_LABEL, 1.0 - prob.get(OTHER_LABEL, 1.0))))))
        return scores

    def score(
        self, text: str | None, url: str | None = None, title: str | None = None, product=None, html_signals=None
    ) -> float:
        return self.score_lines([page_features(text, url, title, product, html_signals)])[0]

    def score_examples(self, examples: Sequence[PageExample]) -> list[float]:
        return self.score_lines([e.features() for e in examples])


def evaluate(
    classifier: EcomClassifier,
    examples: Sequence[PageExample],
    threshold: float | None = None,
    scores: Sequence[float] | None = None,
) -> dict:
    """Precision, recall, F1 and accuracy of e-commerce at the threshold, plus recall per page type.
    `scores` are the classifier's for `examples` when the caller has them already (several thresholds)."""
    threshold = classifier.threshold if threshold is None else threshold
    scores = classifier.score_examples(examples) if scores is None else scores
    predicted = [s >= threshold for s in scores]
    tp = sum(p and e.label for p, e in zip(predicted, examples, strict=True))
    fp = sum(p and not e.label for p, e in zip(predicted, examples, strict=True))
    fn = sum((not p) and e.label for p, e in zip(predicted, examples, strict=True))
    correct = sum(p == e.label for p, e in zip(predicted, examples, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    by_type: dict[str, dict[str, int]] = {}
    for p, e in zip(predicted, examples, strict=True):
        if e.page_type:
            row = by_type.setdefault(e.page_type, {"n": 0, "predicted_ecom": 0})
            row["n"] += 1
            row["predicted_ecom"] += int(p)
    return {
        "threshold": threshold,
        "n": len(examples),
        "positives": sum(e.label for e in examples),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "accuracy": round(correct / len(examples), 4) if examples else 0.0,
        "by_page_type": by_type,
    }


def train_classifier(
    examples: Sequence[PageExample],
    output: str | Path,
    test_fraction: float = 0.25,
    seed: int = 0,
    threshold: float = 0.5,
    params: TrainParams | None = None,
) -> dict:
    """Split by domain, train on one side, report precision / recall on the held-out side, then retrain
    on everything so the saved model uses all labels. Returns the held-out metrics (and counts)."""
    params = params or TrainParams(seed=seed)
    train, test = split_by_domain(examples, test_fraction, seed)
    if not test or not any(e.label for e in test):
        raise ValueError(f"held-out split has no positive examples ({len(test)} pages): add more labelled domains")
    output = Path(output)
    held_out_model = train_fasttext(train, output.with_suffix(".heldout.bin"), params)
    held_out = EcomClassifier(held_out_model, threshold)
    scores = held_out.score_examples(test)
    metrics = evaluate(held_out, test, scores=scores)
    # The operating points around it, so a user can pick the threshold (corpus.filter.ecommerce_threshold).
    metrics["by_threshold"] = {
        str(t): {k: evaluate(held_out, test, t, scores)[k] for k in ("precision", "recall")}
        for t in (0.3, 0.4, 0.5, 0.6)
    }
    held_out_model.unlink()
    train_fasttext(examples, output, params)
    metrics.update(
        train_pages=len(train),
        test_pages=len(test),
        test_domains=len({e.domain for e in test}),
        model=str(output),
    )
    return metrics
