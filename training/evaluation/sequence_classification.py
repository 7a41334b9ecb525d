"""Sequence (and pair) classification fine-tuning, shared by product-matching and page-type."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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


def predict(model, tokenizer, examples: Sequence[LabeledText], max_length: int, batch_size: int = 32) -> list[int]:
    preds: list[int] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        pairs = [e.pair or "" for e in chunk] if chunk and chunk[0].pair is not None else None
        enc = encode_texts(tokenizer, [e.text for e in chunk], pairs, max_length, model.device)
        preds.extend(model(**enc).logits.argmax(-1).tolist())
    return preds


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
) -> dict[str, Any]:
    """Fine-tune `AutoModelForSequenceClassification` on data.train; score valid and test each epoch.

    `score(gold, pred)` returns a dict whose "score" entry is the task's primary metric.
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
        metrics: dict[str, Any] = {}
        for split in ("valid", "test"):
            examples: list[LabeledText] = getattr(data, split)
            result = score([e.label for e in examples], predict(model, tokenizer, examples, config.max_seq_length))
            metrics[f"{split}_score"] = result.pop("score")
            metrics.update({f"{split}_{k}": v for k, v in result.items()})
        return metrics

    return train_epochs(model, len(train), loss_of_batch, evaluate, params, config, on_epoch)
