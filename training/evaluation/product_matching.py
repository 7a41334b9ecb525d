"""product-matching: do two offers describe the same product? WDC Products pair classification.

Data: a category folder with `train.txt.small`, `valid.txt.small`, `test.txt`; each line is
`COL title VAL <offer 1>\\tCOL title VAL <offer 2>\\t<0|1>`. Metric: F1 of the positive class.

Two models (`evaluate.matching_model`): a cross-encoder (both offers in one sequence, a classification head),
or a bi-encoder (each offer embedded alone, a match when the cosine clears a cut chosen on validation). The
cross-encoder is the usual choice with a full-size encoder; the tiny demo encoder does not learn to compare two
offers inside one 64-token sequence, while its bi-encoder does (measured in docs/training-performance.md).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from sklearn.metrics import f1_score, precision_score, recall_score

from infra.core.config import EvaluateConfig
from training.evaluation.base import (
    EpochCallback,
    Task,
    TaskData,
    TaskDataError,
    TrialParams,
    require_file,
)
from training.evaluation.baselines import always_label, exact_title, majority_class
from training.evaluation.sequence_classification import LabeledText, cut_metrics, run_sequence_classification

SPLIT_FILES = {"train": "train.txt.small", "valid": "valid.txt.small", "test": "test.txt"}
PREFIX = "COL title VAL"


def parse_offer(field: str, where: str) -> str:
    if not field.startswith(PREFIX):
        raise TaskDataError(f"{where}: expected an offer starting with {PREFIX!r}, got {field[:40]!r}")
    return field[len(PREFIX) :].strip()


def read_pairs(path: Path) -> list[LabeledText]:
    """Read one WDC pair file; any malformed line is an error naming the file and line."""
    require_file(path, "product-matching")
    pairs = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            fields = line.split("\t")
            if len(fields) != 3:
                raise TaskDataError(
                    f"{where}: expected 3 tab-separated fields (offer, offer, label), got {len(fields)}")
            label = fields[2].strip()
            if label not in ("0", "1"):
                raise TaskDataError(f"{where}: label {label!r} does not fit product-matching (expected 0 or 1)")
            pairs.append(LabeledText(text=parse_offer(fields[0], where), pair=parse_offer(fields[1], where),
                                     label=int(label)))
    if not pairs:
        raise TaskDataError(f"{path}: no pairs")
    return pairs


def take(examples: list, limit: int | None, seed: int = 0) -> list:
    """A fixed random subset (same for every model and trial) when a limit is set."""
    if limit is None or len(examples) <= limit:
        return examples
    return random.Random(seed).sample(examples, limit)


def read_wdc_folder(folder: Path, config: EvaluateConfig, task: str) -> TaskData:
    if not folder.is_dir():
        raise TaskDataError(f"{task}: data folder not found: {folder}")
    splits = {split: read_pairs(folder / name) for split, name in SPLIT_FILES.items()}
    limits = config.limits
    data = TaskData(
        train=take(splits["train"], limits.train),
        valid=take(splits["valid"], limits.eval),
        test=take(splits["test"], limits.eval),
        info={"source": str(folder), "labels": ["different", "same"],
              "read": {k: len(v) for k, v in splits.items()}},
    )
    for split, examples in (("train", data.train), ("valid", data.valid), ("test", data.test)):
        if len({e.label for e in examples}) < 2:
            raise TaskDataError(f"{task}: the {split} split of {folder} has a single label; both 0 and 1 are needed")
    data.info["used"] = data.sizes()
    data.info["positives"] = {s: sum(e.label for e in getattr(data, s)) for s in ("train", "valid", "test")}
    return data


def positive_f1(gold: list[int], pred: list[int]) -> dict[str, float]:
    return {
        "score": float(f1_score(gold, pred, pos_label=1, zero_division=0)),
        "precision": float(precision_score(gold, pred, pos_label=1, zero_division=0)),
        "recall": float(recall_score(gold, pred, pos_label=1, zero_division=0)),
    }


def run_bi_encoder(model_dir: str, data: TaskData, params: TrialParams, config: EvaluateConfig,
                   on_epoch: EpochCallback | None = None) -> dict[str, Any]:
    """Matching by cosine: the similarity task's bi-encoder (mean-pooled, CoSENT-fine-tuned on the train pairs'
    0/1 labels), a pair a match when its cosine is at least the cut with the best validation F1 (chosen after
    each epoch, applied unchanged to test; `threshold` in the metrics). `*_zero_shot` is the same rule on the
    checkpoint before fine-tuning."""
    from training.evaluation.similarity import run_cosent, scored_pairs

    scored = TaskData(**{s: scored_pairs(getattr(data, s)) for s in ("train", "valid", "test")}, info=data.info,
                      cache_dir=data.cache_dir)
    gold = {s: [e.label for e in getattr(data, s)] for s in ("valid", "test")}

    def score(cosines: dict[str, torch.Tensor]) -> dict[str, Any]:
        return cut_metrics(gold, cosines, positive_f1)

    return run_cosent(model_dir, scored, params, config, score, True, on_epoch)


class ProductMatching(Task):
    name = "product-matching"
    metric = "f1"
    default_data = "eval/wdc-products/computers"

    def load(self, path: str | None, config: EvaluateConfig, cache_dir: Path) -> TaskData:
        folder = self.data_source(path)
        return read_wdc_folder(folder, config, self.name)

    def run(self, model_dir: str, data: TaskData, params: TrialParams, config: EvaluateConfig,
            on_epoch: EpochCallback | None = None) -> dict[str, Any]:
        if config.matching_model == "bi-encoder":
            return run_bi_encoder(model_dir, data, params, config, on_epoch)
        return run_sequence_classification(model_dir, data, params, config, positive_f1, on_epoch,
                                           tune_threshold=config.matching_threshold == "valid-f1")

    def baselines(self, data: TaskData, config: EvaluateConfig, model_dirs: dict[str, str]) -> dict[str, dict]:
        return {"majority-class": majority_class(data, positive_f1, data.info["labels"]),
                "always-same": always_label(data, positive_f1, data.info["labels"], 1, "every pair a match"),
                "exact-title": exact_title(data, positive_f1)}
