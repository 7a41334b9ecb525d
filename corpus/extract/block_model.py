"""The learned main-content model: gradient-boosted trees over a page's DOM blocks (`corpus.extract.blocks`).

Trained on WCXB dev's reference main content (a block is in when its words are; `blocks.block_labels`),
weighted by the block's words, since word F1 counts words, not blocks. The shipped model is a small JSON
file of trees next to this module (`block_model.json`), rebuilt from the shared data with

    python -m corpus.extract.block_model --pages ../shared/data/pages/wcxb-dev

A committed file, not training on first use: executors and users have no WCXB pages, and a first-use
cache would make extraction depend on which machine trained it. The trees are stored as plain arrays and
scored with numpy, so the file does not depend on scikit-learn's pickle format (scikit-learn only trains).
"""

from __future__ import annotations

import gzip
import json
import math
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from corpus.extract.blocks import (
    FEATURE_NAMES,
    KEYWORDS,
    Block,
    PageContext,
    block_features,
    block_labels,
    page_blocks,
    word_f1,
)

if TYPE_CHECKING:
    from corpus.extract.html import ProductData

MODEL_PATH = Path(__file__).with_name("block_model.json")
FORMAT = "rexbert-block-model/3"
# Gradient boosting settings: shallow trees keep numpy scoring at a few ms per page.
TRAIN_PARAMS: dict[str, Any] = {
    "max_iter": 40, "learning_rate": 0.25, "max_depth": 8, "max_leaf_nodes": 31, "min_samples_leaf": 40,
    "l2_regularization": 1.0,
}  # fmt: skip
THRESHOLD = 0.5
# The second stage reads the block's own numeric features (not the class / id keyword bits) and its
# neighbourhood's first-stage scores: a block in a box of content is content, one among menus is not.
STAGE2_BASE = FEATURE_NAMES.index(f"kw_{KEYWORDS[0]}")
CONTEXT_NAMES = (
    "p1", "p1_prev", "p1_next", "p1_window2", "p1_window5", "p1_window15", "p1_box1", "p1_box2", "p1_box3",
    "p1_box4", "box1_log_words", "box2_log_words", "box3_log_words", "box4_log_words", "page_p1_mean",
    "page_p1_max", "page_share_kept", "p1_rank",
)  # fmt: skip
INNER_FOLDS = 2  # out-of-fold first-stage scores for training the second stage
# The router: page-level signals deciding whether the block model or trafilatura reads a page that has no
# commerce signals. Its labels are which of the two scored the higher word F1 on the page, with the block
# model's F1 out of fold (models trained without the page's domain), weighted by the F1 difference.
ROUTER_PARAMS: dict[str, Any] = {
    "max_iter": 60, "learning_rate": 0.1, "max_depth": 3, "min_samples_leaf": 10,
}  # fmt: skip
ROUTE_THRESHOLD = 0.5
_PAGE_COLUMNS = (
    "page_log_blocks", "page_log_words", "page_link_density", "page_product_markup", "page_listed", "page_itemlist",
    "page_article_markup", "page_commerce", "page_extracted_log_words",
)  # fmt: skip
_ROUTE_KEYWORDS = ("product", "card", "grid", "item", "tile", "price", "cart", "list", "post", "article", "comment",
                   "content")  # fmt: skip
ROUTE_NAMES = (
    *_PAGE_COLUMNS, *(f"words_kw_{k}" for k in _ROUTE_KEYWORDS), "words_in_extracted", "words_link_density",
    "words_currency", "share_repeated", "words_ends_sentence", "log_long_blocks", "log_median_words",
)  # fmt: skip


class ModelFileError(ValueError):
    """The block model file is missing or not a model this code can read; the message names the file."""


@dataclass
class Trees:
    """Boosted trees as flat arrays: node i tests `x[feature[i]] <= threshold[i]`, goes to left[i] or right[i];
    a leaf points to itself, so every tree is walked the same number of steps (`depth`)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int
    baseline: float

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """P(positive) per row of `rows` (samples x features)."""
        if not len(rows):
            return np.zeros(0)
        n = rows.shape[0]
        nodes = np.repeat(self.roots[:, None], n, axis=1)  # (trees, samples)
        samples = np.broadcast_to(np.arange(n), nodes.shape)
        for _ in range(self.depth):
            go_left = rows[samples, self.feature[nodes]] <= self.threshold[nodes]
            nodes = np.where(go_left, self.left[nodes], self.right[nodes])
        raw = self.baseline + self.value[nodes].sum(axis=0)
        return 1.0 / (1.0 + np.exp(-raw))

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "depth": self.depth,
            "roots": self.roots.tolist(),
            "feature": self.feature.tolist(),
            "threshold": [float(t) if math.isfinite(t) else None for t in self.threshold],
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "value": [round(float(v), 7) for v in self.value],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trees:
        return cls(
            feature=np.asarray(data["feature"], dtype=np.int32),
            threshold=np.asarray([np.inf if t is None else t for t in data["threshold"]], dtype=np.float64),
            left=np.asarray(data["left"], dtype=np.int32),
            right=np.asarray(data["right"], dtype=np.int32),
            value=np.asarray(data["value"], dtype=np.float64),
            roots=np.asarray(data["roots"], dtype=np.int32),
            depth=int(data["depth"]),
            baseline=float(data["baseline"]),
        )

    @classmethod
    def from_sklearn(cls, model: Any) -> Trees:
        """Flatten a fitted binary HistGradientBoostingClassifier (numeric features, no missing values)."""
        feature, thresholds, left, right, value, roots = [], [], [], [], [], []
        depth = 0
        for (predictor,) in model._predictors:
            offset = len(feature)
            roots.append(offset)
            for i, node in enumerate(predictor.nodes):
                leaf = bool(node["is_leaf"])
                feature.append(0 if leaf else int(node["feature_idx"]))
                thresholds.append(np.inf if leaf else float(node["num_threshold"]))
                left.append(offset + (i if leaf else int(node["left"])))
                right.append(offset + (i if leaf else int(node["right"])))
                value.append(float(node["value"]) if leaf else 0.0)
                depth = max(depth, int(node["depth"]))
        return cls(
            np.asarray(feature, dtype=np.int32),
            np.asarray(thresholds),
            np.asarray(left, dtype=np.int32),
            np.asarray(right, dtype=np.int32),
            np.asarray(value),
            np.asarray(roots, dtype=np.int32),
            depth,
            float(np.ravel(model._baseline_prediction)[0]),
        )


def context_features(blocks: list[Block], p1: np.ndarray) -> np.ndarray:
    """Each block's neighbourhood as the first stage scored it (`CONTEXT_NAMES`): neighbours, word-weighted
    windows, the enclosing boxes (the block-level elements 1 to 4 levels up) and the page."""
    n = len(blocks)
    out = np.zeros((n, len(CONTEXT_NAMES)))
    if not n:
        return out
    w = np.asarray([b.words for b in blocks], dtype=np.float64)
    wp = np.concatenate([[0.0], np.cumsum(w * p1)])
    ww = np.concatenate([[0.0], np.cumsum(w)])
    idx = np.arange(n)
    out[:, 0] = p1
    out[1:, 1] = p1[:-1]
    out[:-1, 2] = p1[1:]
    for col, radius in ((3, 2), (4, 5), (5, 15)):
        lo, hi = np.maximum(idx - radius, 0), np.minimum(idx + radius + 1, n)
        out[:, col] = (wp[hi] - wp[lo]) / (ww[hi] - ww[lo])
    for level in range(1, 5):
        keys = [b.context.boxes[-level] if len(b.context.boxes) >= level else 0 for b in blocks]
        sums: dict[int, list[float]] = {}
        for key, words, score in zip(keys, w, p1, strict=True):
            acc = sums.setdefault(key, [0.0, 0.0])
            acc[0] += words * score
            acc[1] += words
        out[:, 5 + level] = [sums[k][0] / sums[k][1] for k in keys]
        out[:, 9 + level] = [math.log1p(sums[k][1]) for k in keys]
    total = w.sum()
    out[:, 14] = float((w * p1).sum() / total)
    out[:, 15] = float(p1.max())
    out[:, 16] = float(w[p1 >= THRESHOLD].sum() / total)
    out[:, 17] = p1.argsort().argsort() / max(n - 1, 1)
    return out


def stage2_rows(rows: np.ndarray, blocks: list[Block], p1: np.ndarray) -> np.ndarray:
    return np.hstack([rows[:, :STAGE2_BASE], context_features(blocks, p1)])


_COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def route_features(rows: np.ndarray, blocks: list[Block]) -> np.ndarray:
    """The page's `ROUTE_NAMES` row: its page-level block features and word-weighted shares of block features
    (how much of its text sits in product / card / post boxes, in links, in what trafilatura kept)."""
    if not len(blocks):
        return np.zeros(len(ROUTE_NAMES))
    w = np.asarray([b.words for b in blocks], dtype=np.float64)
    share = w / w.sum()

    def weighted(name: str) -> float:
        return float(share @ rows[:, _COL[name]])

    return np.asarray([
        *rows[0, [_COL[n] for n in _PAGE_COLUMNS]],
        *(weighted(f"kw_{k}") for k in _ROUTE_KEYWORDS),
        weighted("in_extracted"), weighted("link_density"), weighted("currency"),
        float((rows[:, _COL["repeats"]] > 1).mean()), weighted("ends_sentence"),
        math.log1p(float((w >= 20).sum())), math.log1p(float(np.median(w))),
    ])  # fmt: skip


@dataclass
class BlockModel:
    """Two stages of trees: the first scores each block alone, the second rescores it with its neighbourhood's
    first-stage scores. A block is main content when the second stage gives it at least `threshold`."""

    stage1: Trees
    stage2: Trees
    threshold: float = THRESHOLD
    router: Trees | None = None  # None: trained on too few domains to learn one; commerce pages only
    route_threshold: float = ROUTE_THRESHOLD

    def prefers_blocks(self, rows: np.ndarray, blocks: list[Block]) -> bool:
        """Whether the router expects this model to read the page better than trafilatura."""
        if self.router is None or not len(blocks):
            return False
        return bool(self.router.predict_proba(route_features(rows, blocks)[None])[0] >= self.route_threshold)

    def main_text(self, rows: np.ndarray, blocks: list[Block]) -> str:
        """The kept blocks' text (`select_text`)."""
        return select_text(blocks, self.predict_proba(rows, blocks), self.threshold) if len(blocks) else ""

    def predict_proba(self, rows: np.ndarray, blocks: list[Block]) -> np.ndarray:
        """P(main content) per block; `rows` are the blocks' `block_features`."""
        if not len(blocks):
            return np.zeros(0)
        return self.stage2.predict_proba(stage2_rows(rows, blocks, self.stage1.predict_proba(rows)))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "feature_names": list(FEATURE_NAMES),
            "threshold": self.threshold,
            "stage1": self.stage1.to_json(),
            "stage2": self.stage2.to_json(),
            "route_names": list(ROUTE_NAMES),
            "route_threshold": self.route_threshold,
            "router": self.router.to_json() if self.router else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "block model") -> BlockModel:
        if (
            data.get("format") != FORMAT
            or tuple(data.get("feature_names", ())) != FEATURE_NAMES
            or tuple(data.get("route_names", ())) != ROUTE_NAMES
        ):
            raise ModelFileError(
                f"{source}: not a block model for these features; rebuild it (python -m corpus.extract.block_model)"
            )
        router = Trees.from_json(data["router"]) if data.get("router") else None
        stages = Trees.from_json(data["stage1"]), Trees.from_json(data["stage2"])
        return cls(*stages, float(data["threshold"]), router, float(data["route_threshold"]))


@lru_cache(maxsize=4)
def load_block_model(path: str | None = None) -> BlockModel:
    """The shipped model (or the one at `path`), read once per process."""
    file = Path(path) if path else MODEL_PATH
    try:
        if path:
            data = json.loads(file.read_text())
        else:  # through the package's loader: found in a checkout, an installed package and the Spark code zip
            raw = pkgutil.get_data("corpus.extract", MODEL_PATH.name)
            if raw is None:
                raise FileNotFoundError(file)
            data = json.loads(raw)
    except FileNotFoundError:
        raise ModelFileError(
            f"block model file not found: {file} (python -m corpus.extract.block_model rebuilds it)"
        ) from None
    except (OSError, ValueError) as err:
        raise ModelFileError(f"block model file unreadable: {file}: {err}") from None
    return BlockModel.from_json(data, str(file))


def select_text(blocks: list[Block], proba: np.ndarray, threshold: float, min_repeat_words: int = 4) -> str:
    """The kept blocks' text, one per line; a repeated block (carousels, tabs) is kept once."""
    seen: set[str] = set()
    lines = []
    for block, p in zip(blocks, proba, strict=True):
        if p < threshold:
            continue
        key = block.text.lower()
        if block.words >= min_repeat_words and key in seen:
            continue
        seen.add(key)
        lines.append(block.text)
    return "\n".join(lines)


def block_rows(blocks: list[Block], page: PageContext) -> np.ndarray:
    """The blocks' feature rows (blocks x `FEATURE_NAMES`)."""
    return np.asarray(block_features(blocks, page), dtype=np.float64).reshape(len(blocks), len(FEATURE_NAMES))


# --- training ---------------------------------------------------------------------------------------------------------


@dataclass
class PageBlocks:
    """One training page: its blocks, their feature rows and labels."""

    file_id: str
    page_type: str
    domain: str
    reference: str
    blocks: list[Block]
    rows: np.ndarray
    labels: np.ndarray
    extracted: str = ""  # trafilatura's text (`html._main_text`): what the router compares the model with


def page_context(
    lowered: str, data: ProductData, title: str | None, commerce: bool, article: bool, extracted: str | None
) -> PageContext:
    """The block features' page-level signals, from what `extract_page` has computed already."""
    return PageContext(
        extracted=extracted,
        title=title,
        product_markup=data.product is not None,
        listed=len(data.listed_names),
        itemlist='"itemlist"' in lowered or "schema.org/itemlist" in lowered,
        article_markup=article,
        commerce=commerce,
    )


def html_page_context(html: str, url: str | None = None) -> PageContext:
    """`page_context` of a raw page, computed as `extract_page` computes it."""
    from corpus.extract.html import (
        _ARTICLE_MARKUP,
        _main_text,
        extract_product_data,
        fast_trafilatura,
        has_commerce_signals,
        page_title,
    )

    lowered = html.lower()
    data = extract_product_data(html, url, lowered)
    commerce = data.markup is not None or bool(data.listed_names) or has_commerce_signals(lowered)
    article = data.product is None and _ARTICLE_MARKUP.search(lowered) is not None
    extracted, _ = _main_text(html, url, "auto", fast=fast_trafilatura(commerce, article, data))
    return page_context(lowered, data, page_title(html), commerce, article, extracted)


def load_training_pages(root: Path, file_ids: set[str] | None = None, progress: bool = False) -> list[PageBlocks]:
    """Blocks, features and labels of the wcxb-dev-shaped pages under `root` (all, or those in `file_ids`)."""
    import csv

    from tqdm import tqdm

    from corpus.extract.html import decode_html

    pages = []
    with open(root / "labels.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if file_ids is None or row["file_id"] in file_ids]
    for row in tqdm(rows, desc="block features", unit="page", disable=not progress):
        truth = json.loads((root / "ground-truth" / f"{row['file_id']}.json").read_text())
        reference = (truth.get("ground_truth") or {}).get("main_content") or ""
        html = decode_html(gzip.open(root / "html" / f"{row['file_id']}.html.gz").read())
        context = html_page_context(html, row.get("url"))
        blocks = page_blocks(html)
        rows_ = block_rows(blocks, context)
        labels = np.asarray(block_labels(blocks, reference), dtype=np.int8)
        pages.append(
            PageBlocks(row["file_id"], row["page_type"], row["domain"], reference, blocks, rows_, labels,
                       context.extracted or "")
        )  # fmt: skip
    return pages


SHORT_WORDS = 3  # negatives this short are most of the rows and little of the words: a quarter of them is kept
SHORT_KEEP = 0.25


def _fit(rows: np.ndarray, labels: np.ndarray, weights: np.ndarray, seed: int) -> Trees:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(**TRAIN_PARAMS, early_stopping=False, random_state=seed)
    return Trees.from_sklearn(model.fit(rows.astype(np.float32), labels, sample_weight=weights))


def train_block_model(
    pages: list[PageBlocks], seed: int = 0, threshold: float = THRESHOLD, router: bool = True
) -> BlockModel:
    """Fit both stages on the pages' labelled blocks (pages without a reference text teach nothing: left out),
    then the router (`train_router`; `router=False`, or pages from fewer than 2 x `INNER_FOLDS` domains: none).

    The second stage learns from first-stage scores the first stage did not see in training: out-of-fold
    scores over `INNER_FOLDS` folds of the training pages, by domain. Short negative blocks (menus, buttons,
    breadcrumbs) are subsampled, by `seed`, and reweighted to their full share: training time follows the
    rows, while the weights keep what the model learns.
    """
    from sklearn.model_selection import GroupKFold

    used = [p for p in pages if p.reference.strip() and len(p.blocks)]
    if len({p.domain for p in used}) < INNER_FOLDS:
        raise ValueError(f"training needs pages with blocks and a reference text from {INNER_FOLDS}+ domains")
    rng = np.random.default_rng(seed)
    keeps, weights = [], []
    for page in used:
        n_words = np.asarray([b.words for b in page.blocks], dtype=np.float64)
        short = (page.labels == 0) & (n_words <= SHORT_WORDS)
        keeps.append(~short | (rng.random(len(short)) < SHORT_KEEP))
        weights.append(np.sqrt(n_words) / np.where(short, SHORT_KEEP, 1.0))

    def stack(arrays: list[np.ndarray], which: list[int]) -> np.ndarray:
        return np.concatenate([arrays[i][keeps[i]] for i in which])

    rows, labels = [p.rows for p in used], [p.labels for p in used]
    everything = list(range(len(used)))
    p1: list[np.ndarray] = [np.zeros(0)] * len(used)
    for train, test in GroupKFold(n_splits=INNER_FOLDS).split(used, groups=[p.domain for p in used]):
        inner = _fit(stack(rows, train), stack(labels, train), stack(weights, train), seed)
        for i in test:
            p1[i] = inner.predict_proba(rows[i])
    stage1 = _fit(stack(rows, everything), stack(labels, everything), stack(weights, everything), seed)
    second = [stage2_rows(rows[i], used[i].blocks, p1[i]) for i in everything]
    stage2 = _fit(stack(second, everything), stack(labels, everything), stack(weights, everything), seed)
    model = BlockModel(stage1, stage2, threshold)
    if router and len({p.domain for p in used}) >= 2 * INNER_FOLDS:
        model.router = train_router(used, seed, threshold)
    return model


def train_router(pages: list[PageBlocks], seed: int, threshold: float = THRESHOLD) -> Trees | None:
    """The router, from which extractor reads each page better: the block model's word F1 out of fold (two-stage
    models trained on the other `INNER_FOLDS` folds' domains) against trafilatura's (`PageBlocks.extracted`)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    gains = np.zeros(len(pages))
    for train, test in GroupKFold(n_splits=INNER_FOLDS).split(pages, groups=[p.domain for p in pages]):
        inner = train_block_model([pages[i] for i in train], seed, threshold, router=False)
        for i in test:
            page = pages[i]
            blocks_f1 = word_f1(inner.main_text(page.rows, page.blocks), page.reference)[2]
            gains[i] = blocks_f1 - word_f1(page.extracted, page.reference)[2]
    better = (gains > 0).astype(int)
    if better.min() == better.max():  # one extractor wins everywhere: nothing to route (None)
        return None
    features = np.asarray([route_features(p.rows, p.blocks) for p in pages], dtype=np.float32)
    model = HistGradientBoostingClassifier(**ROUTER_PARAMS, early_stopping=False, random_state=seed)
    return Trees.from_sklearn(model.fit(features, better, sample_weight=np.abs(gains) + 1e-3))


def main(argv: list[str] | None = None) -> None:
    import argparse

    from infra.core.paths import shared_data_dir

    parser = argparse.ArgumentParser(description="Rebuild the shipped block model from WCXB dev pages.")
    parser.add_argument("--pages", type=Path, default=shared_data_dir() / "pages" / "wcxb-dev")
    parser.add_argument("--output", type=Path, default=MODEL_PATH)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pages = load_training_pages(args.pages, progress=True)
    model = train_block_model(pages, seed=args.seed)
    args.output.write_text(json.dumps(model.to_json(), separators=(",", ":")))
    nodes = len(model.stage1.feature) + len(model.stage2.feature)
    router = "a router" if model.router else "no router"
    print(f"{args.output}: 2 stages, {nodes} tree nodes, {router}, from {len(pages)} pages")


if __name__ == "__main__":
    main()
