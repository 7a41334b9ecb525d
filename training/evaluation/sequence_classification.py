"""Sequence (and pair) classification fine-tuning, shared by product-matching and page-type."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from infra.core.config import EvaluateConfig
from training.evaluation.base import EpochCallback, TaskData, TrialParams
from training.evaluation.finetune import encode_texts, load_tokenizer, pick_device, set_seed, train_epochs


@dataclass
class LabeledText:
    """One example: a text (and its pair for pair tasks) with an integer label."""

    text: str
    label: int
    pair: str | None = None


def probabilities(model, tokenizer, examples: Sequence[LabeledText], max_length: int,
                  batch_size: int = 32) -> torch.Tensor:
    """Softmax class probabilities, (N, labels), on the CPU."""
    out = [torch.zeros(0, model.config.num_labels)]
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        pairs = [e.pair or "" for e in chunk] if chunk and chunk[0].pair is not None else None
        enc = encode_texts(tokenizer, [e.text for e in chunk], pairs, max_length, model.device)
        out.append(model(**enc).logits.float().softmax(-1).cpu())
    return torch.cat(out)


def best_f1_threshold(gold: Sequence[int], positive: Sequence[float]) -> float:
    """The probability cut (predict 1 iff p >= cut) with the highest F1 of class 1 on these examples; ties go to
    the higher cut. Every distinct probability is a candidate, scored at once from cumulative counts."""
    p = np.asarray(positive, dtype=np.float64)
    y = np.asarray(gold, dtype=np.int64)
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    last = np.r_[p[1:] != p[:-1], True]  # the last position of each run of equal probabilities
    tp = np.cumsum(y)[last]
    predicted = (np.arange(len(p)) + 1)[last]
    f1 = 2 * tp / (predicted + y.sum())
    return float(p[last][int(np.argmax(f1))])  # argmax takes the first maximum: the highest cut


def split_metrics(gold: dict[str, list[int]], preds: dict[str, list[int]],
                  score: Callable[[list[int], list[int]], dict[str, float]]) -> dict[str, Any]:
    """`valid_score` / `test_score` (the "score" entry of `score(gold, pred)`) and the other entries, prefixed."""
    metrics: dict[str, Any] = {}
    for split in ("valid", "test"):
        result = score(gold[split], preds[split])
        metrics[f"{split}_score"] = result.pop("score")
        metrics.update({f"{split}_{k}": v for k, v in result.items()})
    return metrics


def cut_metrics(gold: dict[str, list[int]], positive: dict[str, torch.Tensor],
                score: Callable[[list[int], list[int]], dict[str, float]]) -> dict[str, Any]:
    """Predict 1 iff a split's positive score (a probability, a cosine) is >= the cut with the best validation F1
    (`best_f1_threshold`), the same cut on test; `split_metrics` plus that `threshold`."""
    cut = best_f1_threshold(gold["valid"], positive["valid"].tolist())
    preds = {split: (positive[split] >= cut).long().tolist() for split in ("valid", "test")}
    return {"threshold": cut, **split_metrics(gold, preds, score)}


def class_weights(labels: Sequence[int], num_labels: int) -> torch.Tensor:
    """Balanced class weights n / (k * n_c) of a train split (a class absent from it weighs as one example)."""
    counts = torch.bincount(torch.tensor(list(labels), dtype=torch.long), minlength=num_labels).float()
    return counts.sum() / (num_labels * counts.clamp(min=1.0))


def run_sequence_classification(
    model_dir: str,
    data: TaskData,
    params: TrialParams,
    config: EvaluateConfig,
    score: Callable[[list[int], list[int]], dict[str, float]],
    on_epoch: EpochCallback | None = None,
    tune_threshold: bool = False,
) -> dict[str, Any]:
    """Fine-tune `AutoModelForSequenceClassification` on data.train; score valid and test each epoch.

    `score(gold, pred)` returns a dict whose "score" entry is the task's primary metric. Predictions are the
    most probable class; with `tune_threshold` (binary tasks scored by F1 of class 1) they are p(1) >= a cut
    chosen on the validation split after each epoch (`best_f1_threshold`), then applied unchanged to test, and
    the metrics carry that `threshold`.
    """
    from transformers import AutoModelForSequenceClassification

    set_seed(params.seed)
    labels: list[str] = data.info["labels"]
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    ).to(pick_device())
    train: list[LabeledText] = data.train
    is_pair = bool(train) and train[0].pair is not None
    weight = class_weights([e.label for e in train], len(labels)).to(model.device) \
        if config.class_weights == "balanced" else None

    def loss_of_batch(batch: list[int]) -> torch.Tensor:
        chunk = [train[i] for i in batch]
        enc = encode_texts(
            tokenizer, [e.text for e in chunk], [e.pair or "" for e in chunk] if is_pair else None,
            config.max_seq_length, model.device,
        )
        logits = model(**enc).logits
        gold = torch.tensor([e.label for e in chunk], device=model.device)
        return torch.nn.functional.cross_entropy(logits.float(), gold, weight=weight)

    def evaluate() -> dict[str, Any]:
        probs = {split: probabilities(model, tokenizer, getattr(data, split), config.max_seq_length)
                 for split in ("valid", "test")}
        gold = {split: [e.label for e in getattr(data, split)] for split in ("valid", "test")}
        if tune_threshold:
            return cut_metrics(gold, {split: probs[split][:, 1] for split in probs}, score)
        return split_metrics(gold, {split: probs[split].argmax(-1).tolist() for split in probs}, score)

    return train_epochs(model, len(train), loss_of_batch, evaluate, params, config, on_epoch)
