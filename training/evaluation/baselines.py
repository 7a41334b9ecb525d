"""Trivial baselines every task reports beside the models' scores, computed from the task's own data.

A fine-tuned score means little until it is set against what needs no model: always answering the majority
class, or a rule as plain as "two offers match when their titles are equal". The train split decides what
a baseline predicts (the majority class, the most frequent tag); it is scored on the same test split the
models are scored on (after `evaluate.limits`), with the task's own metric. Fill-mask has no train split:
its validation half decides the most frequent tokens, and the score on the test half is the exact expected
acc@k under uniform random masking (the share of maskable test tokens that are among those k tokens), so it
has no sampling noise and no seed.

Every baseline is a dict shaped like a model's summary (`test_mean`, `test_std` = 0.0, `valid_score`) plus
`rule`, the sentence a reader needs to know what it predicts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from corpus.minhash import normalize_words

_TOKEN = re.compile(r"\S+")


def baseline(test: float, valid: float | None, rule: str, **extra: Any) -> dict[str, Any]:
    return {"test_mean": float(test), "test_std": 0.0, "valid_score": None if valid is None else float(valid),
            "rule": rule, **extra}


def majority_class(data, score: Callable[[list[int], list[int]], dict[str, float]],
                   labels: list[str]) -> dict[str, Any]:
    """Predict the train split's most frequent label for every example (ties: the lower label id)."""
    counts = Counter(e.label for e in data.train)
    majority = min(counts, key=lambda label: (-counts[label], label))
    return always_label(data, score, labels, majority, "the most frequent label of the train split")


def always_label(data, score: Callable[[list[int], list[int]], dict[str, float]], labels: list[str], label: int,
                 why: str) -> dict[str, Any]:
    """Predict `label` for every example. For an F1 of the positive class, always answering it is the rule to
    beat (recall 1, precision the positive share), not the majority class (F1 0)."""
    scores = {split: score([e.label for e in getattr(data, split)], [label] * len(getattr(data, split)))
              for split in ("valid", "test")}
    share = sum(e.label == label for e in data.train) / max(1, len(data.train))
    return baseline(scores["test"]["score"], scores["valid"]["score"], f"always {labels[label]!r} ({why})",
                    predicts=labels[label], train_share=share)


def normalized_title(text: str) -> str:
    """NFKC, lower case, word characters only (`corpus.minhash.normalize_words`): what "equal titles" means."""
    return " ".join(normalize_words(text))


def exact_title_predictions(examples) -> list[int]:
    return [int(normalized_title(e.text) == normalized_title(e.pair or "")) for e in examples]


def exact_title(data, score: Callable[[list[int], list[int]], dict[str, float]]) -> dict[str, Any]:
    """Match iff the two offers' normalised titles are equal."""
    scores = {split: score([e.label for e in getattr(data, split)], exact_title_predictions(getattr(data, split)))
              for split in ("valid", "test")}
    return baseline(scores["test"]["score"], scores["valid"]["score"],
                    "match iff the normalised titles are equal (NFKC, lower case, \\w+ words)")


def word_tags(text: str, spans: list[tuple[int, int, str]]) -> list[str]:
    """BIO tags of the page's whitespace tokens from its character spans (tokenizer-free, for the baseline)."""
    tags: list[str] = []
    for match in _TOKEN.finditer(text):
        start, end = match.span()
        tag = "O"
        for s, e, attribute in spans:
            if start < e and end > s:
                tag = ("B-" if start <= s or not tags or not tags[-1].endswith(attribute) else "I-") + attribute
                break
        tags.append(tag)
    return tags


def majority_tag(data) -> dict[str, Any]:
    """Tag every token with the train split's most frequent tag (at word level: "O"); seqeval entity F1."""
    from seqeval.metrics import f1_score

    counts = Counter(t for page in data.train for t in word_tags(page.text, page.spans))
    majority = counts.most_common(1)[0][0] if counts else "O"
    scores = {}
    for split in ("valid", "test"):
        gold = [word_tags(page.text, page.spans) for page in getattr(data, split)]
        gold = [g for g in gold if g]
        scores[split] = float(f1_score(gold, [[majority] * len(g) for g in gold], zero_division=0)) if gold else 0.0
    return baseline(scores["test"], scores["valid"], f"every token tagged {majority!r} (the most frequent tag of "
                    "the train split, whitespace tokens)", predicts=majority)


def spearman_of(gold: list[float], pred: list[float]) -> float:
    from scipy.stats import spearmanr

    if len(set(pred)) < 2 or len(set(gold)) < 2:
        return 0.0  # a constant prediction has no rank correlation (scipy says NaN)
    return float(spearmanr(gold, pred).statistic)


def similarity_baselines(data) -> dict[str, dict[str, Any]]:
    """A constant score (Spearman 0) and the exact-title rule as a 0/1 similarity."""
    out = {"constant": baseline(0.0, 0.0, "the same similarity for every pair (no rank correlation)")}
    scores = {split: spearman_of([p.score for p in getattr(data, split)],
                                 [float(normalized_title(p.a) == normalized_title(p.b)) for p in getattr(data, split)])
              for split in ("valid", "test")}
    out["exact-title"] = baseline(scores["test"], scores["valid"], "1 iff the normalised texts are equal, else 0")
    return out


def token_counts(tokenizer, texts: list[str], max_length: int) -> Counter:
    """Maskable tokens (not special, not padding) of each text's first `max_length` tokens, as fill-mask sees them."""
    counts: Counter = Counter()
    for start in range(0, len(texts), 64):
        enc = tokenizer(texts[start : start + 64], truncation=True, max_length=max_length,
                        return_special_tokens_mask=True)
        for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"], strict=True):
            counts.update(i for i, s in zip(ids, special, strict=True) if not s)
    return counts


def most_frequent_token(tokenizer, data, max_length: int, top_k: tuple[int, ...]) -> dict[str, Any]:
    """Answer the validation half's k most frequent tokens at every mask; expected acc@k on the test half."""
    ranked = [token for token, _ in token_counts(tokenizer, data.valid, max_length).most_common(max(top_k))]
    test = token_counts(tokenizer, data.test, max_length)
    total = sum(test.values()) or 1
    acc = {k: sum(test[t] for t in ranked[:k]) / total for k in top_k}
    valid = token_counts(tokenizer, data.valid, max_length)
    valid_acc1 = valid[ranked[0]] / (sum(valid.values()) or 1) if ranked else 0.0
    return baseline(acc[top_k[0]], valid_acc1,
                    f"always the validation half's most frequent token ({tokenizer.decode([ranked[0]])!r})"
                    if ranked else "no token", test_extras={f"acc_at_{k}": {"mean": v, "std": 0.0}
                                                            for k, v in acc.items()})


def compare(summary: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """How a model's test score stands against the strongest baseline: the margin, and whether it is larger
    than the model's own seed spread (test std), the bar the issue sets ("beats by more than the seed spread")."""
    if "test_mean" not in summary or not baselines:
        return None
    name = max(baselines, key=lambda b: baselines[b]["test_mean"])
    margin = summary["test_mean"] - baselines[name]["test_mean"]
    return {"strongest_baseline": name, "margin": margin, "beats": margin > summary.get("test_std", 0.0)}
