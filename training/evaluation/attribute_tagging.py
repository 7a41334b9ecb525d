"""attribute-tagging: tag product attributes (price, SKU, brand, MPN, GTIN) in the extracted page text.

Data: `pages/zyte-products` (`html/*.html.gz` + `ground-truth.json` keyed by file name without
`.html.gz`). Labels are made from the ground truth by a plain span-matching rule: each attribute
value is looked up as an exact, case-sensitive substring of the page text (title, newline, main
text); its FIRST occurrence is the span. A value that is not in the text is counted per attribute
(`not_found`), a value whose first occurrence overlaps an earlier span is counted (`overlapping`);
neither becomes a label. Text comes from `corpus.extract.html.extract_page` without the merged product
markup, so spans are in the page's visible text and the task is not a template lookup.

Per model, the text is tokenized with its tokenizer and cut into windows of `max_seq_length`; every
window holding an entity is kept, plus the first window without one per page (negatives). Tokens get
BIO tags (B on a span's first token). Metric: entity-level F1 with seqeval (CoNLL rules).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

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
from training.evaluation.baselines import majority_tag
from training.evaluation.finetune import load_tokenizer, pick_device, set_seed, train_epochs
from training.evaluation.pages import extract_pages
from training.evaluation.product_matching import take


@dataclass
class TaggedPage:
    """A page's text and its attribute spans (start, end, attribute) in characters."""

    key: str
    text: str
    spans: list[tuple[int, int, str]]


def read_ground_truth(path: Path) -> dict[str, dict[str, Any]]:
    require_file(path, "attribute-tagging")
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TaskDataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(truth, dict) or not all(isinstance(v, dict) for v in truth.values()):
        raise TaskDataError(f"{path}: expected an object of pages, each an object of attributes")
    return truth


def match_spans(
    text: str, record: dict[str, Any], attributes: list[str], counts: Counter
) -> list[tuple[int, int, str]]:
    """The span-matching rule: exact substring, first occurrence, no overlaps."""
    spans: list[tuple[int, int, str]] = []
    for attribute in attributes:
        values = record.get(attribute)
        if values is None:
            continue
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str) or not value.strip():
                counts[f"not_a_string/{attribute}"] += 1
                continue
            value = value.strip()
            start = text.find(value)
            if start < 0:
                counts[f"not_found/{attribute}"] += 1
                continue
            end = start + len(value)
            if any(start < e and end > s for s, e, _ in spans):
                counts[f"overlapping/{attribute}"] += 1
                continue
            spans.append((start, end, attribute))
            counts[f"found/{attribute}"] += 1
    return sorted(spans)


def windows_of(tokenizer, page: TaggedPage, max_length: int) -> list[tuple[list[int], list[str]]]:
    """Token windows of a page with BIO tags; entity windows plus the first window without one."""
    enc = tokenizer(page.text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    tags = []
    for start, end in enc["offset_mapping"]:
        tag = "O"
        for s, e, attribute in page.spans:
            if start < e and end > s:
                begins = not tags or not tags[-1].endswith(attribute) or start <= s
                tag = ("B-" if begins else "I-") + attribute
                break
        tags.append(tag)
    size = max_length - 2  # room for [CLS] and [SEP]
    out, negative_kept = [], False
    for i in range(0, len(tags), size):
        ids, window_tags = enc["input_ids"][i : i + size], tags[i : i + size]
        has_entity = any(t != "O" for t in window_tags)
        if has_entity or not negative_kept:
            negative_kept = negative_kept or not has_entity
            out.append(([tokenizer.cls_token_id, *ids, tokenizer.sep_token_id], window_tags))
    return out


class AttributeTagging(Task):
    name = "attribute-tagging"
    metric = "entity_f1"
    default_data = "pages/zyte-products"

    def load(self, path: str | None, config: EvaluateConfig, cache_dir: Path) -> TaskData:
        folder = self.data_source(path)
        truth = read_ground_truth(folder / "ground-truth.json")
        keys = sorted(truth)[: config.limits.pages] if config.limits.pages else sorted(truth)
        pages = [(k, folder / "html" / f"{k}.html.gz", truth[k].get("url")) for k in keys]
        texts = extract_pages(pages, cache_dir / "attribute-tagging" / "texts.jsonl", include_product=False,
                              desc="attribute-tagging extract")
        counts: Counter[str] = Counter()
        splits: dict[str, list[TaggedPage]] = {"train": [], "valid": [], "test": []}
        for key in keys:
            text = f"{texts[key]['title']}\n{texts[key]['text']}"
            page = TaggedPage(key, text, match_spans(text, truth[key], config.attributes, counts))
            splits[split_of(key)].append(page)
        found = sorted({a.split("/", 1)[1] for a in counts if a.startswith("found/")})
        if not found:
            raise TaskDataError(f"attribute-tagging: none of {config.attributes} occurs in the text of {folder}")
        data = TaskData(**splits)
        data.info = {
            "source": str(folder), "attributes": found, "pages": len(keys), "used": data.sizes(),
            "span_rule": "exact case-sensitive substring, first occurrence, overlaps dropped",
            "matching": dict(sorted(counts.items())),
        }
        return data

    def run(self, model_dir: str, data: TaskData, params: TrialParams, config: EvaluateConfig,
            on_epoch: EpochCallback | None = None) -> dict[str, Any]:
        from seqeval.metrics import f1_score, precision_score, recall_score
        from transformers import AutoModelForTokenClassification

        set_seed(params.seed)
        tags = ["O"] + [f"{p}-{a}" for a in data.info["attributes"] for p in ("B", "I")]
        index = {t: i for i, t in enumerate(tags)}
        tokenizer = load_tokenizer(model_dir)
        if not getattr(tokenizer, "is_fast", False):
            raise TaskDataError(f"attribute-tagging needs a fast tokenizer (character offsets): {model_dir}")
        model = AutoModelForTokenClassification.from_pretrained(
            model_dir, num_labels=len(tags), id2label=dict(enumerate(tags)), label2id=index).to(pick_device())

        def windows(split: str, limit: int | None) -> list[tuple[list[int], list[str]]]:
            every = [w for page in getattr(data, split) for w in windows_of(tokenizer, page, config.max_seq_length)]
            return take(every, limit)

        train = windows("train", config.limits.train)
        evals = {s: windows(s, config.limits.eval) for s in ("valid", "test")}

        def tensors(chunk):
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id)
            labels = torch.full((len(chunk), width), -100)
            for row, (ids, window_tags) in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                labels[row, 1 : 1 + len(window_tags)] = torch.tensor([index[t] for t in window_tags])
            mask = (input_ids != tokenizer.pad_token_id).long()
            return input_ids.to(model.device), mask.to(model.device), labels.to(model.device)

        def loss_of_batch(batch: list[int]) -> torch.Tensor:
            input_ids, mask, labels = tensors([train[i] for i in batch])
            return model(input_ids=input_ids, attention_mask=mask, labels=labels).loss

        def evaluate() -> dict[str, Any]:
            metrics: dict[str, Any] = {}
            for split, examples in evals.items():
                gold, pred = [], []
                for start in range(0, len(examples), 32):
                    chunk = examples[start : start + 32]
                    input_ids, mask, labels = tensors(chunk)
                    best = model(input_ids=input_ids, attention_mask=mask).logits.argmax(-1)
                    for row, (_, window_tags) in enumerate(chunk):
                        gold.append(window_tags)
                        pred.append([tags[int(i)] for i in best[row, 1 : 1 + len(window_tags)]])
                metrics[f"{split}_score"] = float(f1_score(gold, pred, zero_division=0))
                metrics[f"{split}_precision"] = float(precision_score(gold, pred, zero_division=0))
                metrics[f"{split}_recall"] = float(recall_score(gold, pred, zero_division=0))
            return metrics

        return train_epochs(model, len(train), loss_of_batch, evaluate, params, config, on_epoch)

    def baselines(self, data: TaskData, config: EvaluateConfig, model_dirs: dict[str, str]) -> dict[str, dict]:
        return {"majority-tag": majority_tag(data)}
