"""Shared fine-tuning pieces: model folder checks, seeding, batching, and the epoch loop.

Plain PyTorch and transformers (no Trainer, no Ray): a trial is a few epochs over small data, and the
loop calls back after every epoch so Ray Tune can report (and ASHA can stop) per epoch.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infra.core.config import EvaluateConfig
from training.evaluation.base import EpochCallback, TrialParams


class ModelFolderError(ValueError):
    """A model folder that is not a HF encoder (or lacks what a task needs, e.g. an MLM head)."""


def check_encoder(model_dir: str | Path) -> dict[str, Any]:
    """Fail early, with the folder named, unless `model_dir` holds a HF encoder with its tokenizer."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    folder = Path(model_dir)
    config_file = folder / "config.json"
    if not folder.is_dir():
        raise ModelFolderError(f"model folder not found: {folder}")
    if not config_file.is_file():
        raise ModelFolderError(f"{folder} is not a HF model folder: no config.json")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFolderError(f"{config_file}: not valid JSON ({exc})") from None
    model_type = config.get("model_type")
    if config.get("is_decoder") or config.get("is_encoder_decoder"):
        raise ModelFolderError(f"{folder}: model_type {model_type!r} is a decoder / encoder-decoder, not an encoder")
    if model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ModelFolderError(
            f"{folder}: model_type {model_type!r} is not a bidirectional encoder transformers knows "
            "(expected e.g. modernbert, bert, roberta, deberta-v2)"
        )
    if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        raise ModelFolderError(f"{folder}: no tokenizer files (tokenizer.json / tokenizer_config.json)")
    return config


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        raise ModelFolderError(f"{model_dir}: the tokenizer has no pad token")
    return tokenizer


def load_head_model(auto_class, model_dir: str | Path, **kwargs):
    """Load an encoder with a task head; the head is new (and so trained), the encoder is the checkpoint's."""
    return auto_class.from_pretrained(str(model_dir), **kwargs)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def minibatches(n: int, batch_size: int, rng: random.Random | None = None) -> Iterator[list[int]]:
    """Index batches over n examples; shuffled when an rng is given."""
    order = list(range(n))
    if rng is not None:
        rng.shuffle(order)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def build_optimizer(model: torch.nn.Module, params: TrialParams, config: EvaluateConfig, total_steps: int):
    """AdamW (no decay on biases and norms) with linear warmup and linear decay to zero."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=params.learning_rate,
    )
    warmup = max(1, math.ceil(total_steps * config.warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_epochs(
    model: torch.nn.Module,
    n_train: int,
    loss_of_batch: Callable[[list[int]], torch.Tensor],
    evaluate: Callable[[], dict[str, Any]],
    params: TrialParams,
    config: EvaluateConfig,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Run `params.epochs` epochs; after each, evaluate and call back with the metrics."""
    rng = random.Random(params.seed)
    steps_per_epoch = max(1, math.ceil(n_train / params.batch_size))
    optimizer, schedule = build_optimizer(model, params, config, steps_per_epoch * params.epochs)
    metrics: dict[str, Any] = {}
    for epoch in range(1, params.epochs + 1):
        model.train()
        losses = []
        for batch in minibatches(n_train, params.batch_size, rng):
            loss = loss_of_batch(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            metrics = dict(evaluate())
        metrics.update(epoch=epoch, train_loss=float(np.mean(losses)) if losses else float("nan"))
        if on_epoch is not None:
            on_epoch(metrics)
    return metrics


def pick_device() -> torch.device:
    """The trial's GPU when Tune gave it one (CUDA_VISIBLE_DEVICES is set per trial), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def encode_texts(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int,
                 device: torch.device | None = None) -> dict:
    return tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    ).to(device or "cpu")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors under the attention mask: (B, T, H) -> (B, H)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
