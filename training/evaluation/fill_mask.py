"""fill-mask: masked-token recovery on held-out e-commerce text, acc@1/3/5, no fine-tuning.

Default text: the reference main content of the wcxb-dev product and collection pages
(`ground-truth/ID.json`, field `ground_truth.main_content`). A PATH may be a corpus Parquet folder
(or file) with a `text` column, or a JSONL file with a `text` field. Each text contributes its first
`max_seq_length` tokens; `mask_probability` of the non-special tokens are replaced by the mask token
(positions drawn from the trial's seed) and the model must rank the original token in its top k.
Texts are split by a stable hash into a validation and a test half; nothing is tuned on either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from infra.core.config import EvaluateConfig
from training.evaluation.base import EpochCallback, Task, TaskData, TaskDataError, TrialParams, stable_bucket
from training.evaluation.baselines import most_frequent_token
from training.evaluation.finetune import ModelFolderError, load_tokenizer, pick_device, set_seed

ECOMMERCE_PAGE_TYPES = ("product", "collection")
TOP_K = (1, 3, 5)


def read_wcxb_texts(folder: Path, page_types: tuple[str, ...] = ECOMMERCE_PAGE_TYPES,
                    skip_missing: bool = False) -> list[str]:
    """The reference main content of the wcxb pages of `page_types`, in labels.csv order; a page whose ground
    truth has no main content is an error, or left out with `skip_missing` (a forum page keeps its posts
    elsewhere)."""
    from training.evaluation.page_type import read_labels

    texts = []
    for row in read_labels(folder / "labels.csv"):
        if row["page_type"] not in page_types:
            continue
        path = folder / "ground-truth" / f"{row['file_id']}.json"
        if not path.is_file():
            raise TaskDataError(f"fill-mask: ground truth file not found: {path}")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            text = record["ground_truth"]["main_content"]
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        except (KeyError, TypeError):
            if skip_missing:
                continue
            raise TaskDataError(f"{path}: no field ground_truth.main_content") from None
        if text and text.strip():
            texts.append(text)
    return texts


def read_user_texts(path: Path) -> list[str]:
    if path.is_dir() or path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=["text"])
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds; the message says which
            raise TaskDataError(f"fill-mask: cannot read a text column from Parquet at {path} ({exc})") from None
        return [t for t in table.column("text").to_pylist() if t and t.strip()]
    if not path.is_file():
        raise TaskDataError(f"fill-mask: file not found: {path}")
    texts = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskDataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise TaskDataError(f"{path}:{lineno}: expected an object with a string field 'text'")
            if row["text"].strip():
                texts.append(row["text"])
    return texts


def load_mlm(model_dir: str) -> tuple[Any, Any]:
    """An exported encoder with its MLM head, in eval mode on the best device, and its tokenizer."""
    from transformers import AutoModelForMaskedLM

    tokenizer = load_tokenizer(model_dir)
    if tokenizer.mask_token_id is None:
        raise ModelFolderError(f"{model_dir}: the tokenizer has no mask token; fill-mask needs one")
    model, info = AutoModelForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])[:3]
        raise ModelFolderError(f"{model_dir}: no MLM head in the checkpoint (missing {missing})")
    return model.to(pick_device()).eval(), tokenizer


def score_texts(model, tokenizer, texts: list[str], max_length: int, mask_probability: float,
                generator: torch.Generator, batch_size: int = 16) -> dict[str, list]:
    """Per text: masked tokens, hits in the top k (k in TOP_K) and the summed cross-entropy of its masked tokens.

    Each text's first `max_length` tokens; `mask_probability` of its non-special tokens are masked, positions
    drawn from `generator` (the same generator state and texts mask the same positions for every model of one
    tokenizer, so two models' per-text scores pair up). A text with no masked token scores 0 of 0.
    """
    out: dict[str, list] = {"masked": [], "loss_sum": [], **{f"hits_at_{k}": [] for k in TOP_K}}
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start : start + batch_size], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt", return_special_tokens_mask=True)
        maskable = (enc["special_tokens_mask"] == 0) & (enc["attention_mask"] == 1)
        chosen = (torch.rand(maskable.shape, generator=generator) < mask_probability) & maskable
        rows = len(chosen)
        sums = {key: torch.zeros(rows) for key in out}
        if chosen.any():  # only the masked positions are scored, on the model's device
            inputs = enc["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
            with torch.no_grad():
                logits = model(input_ids=inputs.to(model.device),
                               attention_mask=enc["attention_mask"].to(model.device)).logits
            where = chosen.to(model.device)
            masked_logits = logits[where].float()  # (masked tokens, vocab), row-major like `owner`
            gold = enc["input_ids"].to(model.device)[where]
            owner = chosen.nonzero()[:, 0]  # the text of each masked token
            top = masked_logits.topk(max(TOP_K), dim=-1).indices
            ones = torch.ones(len(owner))
            sums["masked"].index_add_(0, owner, ones)
            losses = torch.nn.functional.cross_entropy(masked_logits, gold, reduction="none").cpu()
            sums["loss_sum"].index_add_(0, owner, losses)
            for k in TOP_K:
                hit = (top[:, :k] == gold.unsqueeze(-1)).any(-1).float().cpu()
                sums[f"hits_at_{k}"].index_add_(0, owner, hit)
        for key in ("masked", *(f"hits_at_{k}" for k in TOP_K)):
            out[key] += [int(v) for v in sums[key].tolist()]
        out["loss_sum"] += sums["loss_sum"].tolist()
    return out


def summarize_scores(scores: dict[str, list]) -> dict[str, float]:
    """acc@k over every masked token of `score_texts`' texts, their mean loss and the masked-token count."""
    total = sum(scores["masked"])
    summary = {f"acc_at_{k}": sum(scores[f"hits_at_{k}"]) / total if total else 0.0 for k in TOP_K}
    summary["loss"] = sum(scores["loss_sum"]) / total if total else float("nan")
    summary["masked_tokens"] = total
    return summary


class FillMask(Task):
    name = "fill-mask"
    metric = "acc@1"
    finetunes = False
    default_data = "pages/wcxb-dev"

    def load(self, path: str | None, config: EvaluateConfig, cache_dir: Path) -> TaskData:
        source = self.data_source(path)
        if source.is_dir() and (source / "labels.csv").is_file():
            texts = read_wcxb_texts(source)
        else:
            texts = read_user_texts(source)
        if config.limits.texts:
            texts = texts[: config.limits.texts]
        if len(texts) < 2:
            raise TaskDataError(f"fill-mask: need at least 2 texts, found {len(texts)} in {source}")
        valid = [t for t in texts if stable_bucket(t) % 2 == 0]
        test = [t for t in texts if stable_bucket(t) % 2 == 1]
        if not valid or not test:
            valid, test = texts[: len(texts) // 2], texts[len(texts) // 2 :]
        data = TaskData(train=[], valid=valid, test=test)
        data.info = {"source": str(source), "used": data.sizes(), "texts": len(texts)}
        return data

    def run(self, model_dir: str, data: TaskData, params: TrialParams, config: EvaluateConfig,
            on_epoch: EpochCallback | None = None) -> dict[str, Any]:
        set_seed(params.seed)
        model, tokenizer = load_mlm(model_dir)
        generator = torch.Generator().manual_seed(params.seed)
        metrics: dict[str, Any] = {"epoch": 0}
        for split in ("valid", "test"):
            scores = score_texts(model, tokenizer, getattr(data, split), config.max_seq_length,
                                 config.mask_probability, generator)
            metrics.update({f"{split}_{key}": value for key, value in summarize_scores(scores).items()})
            metrics[f"{split}_score"] = metrics[f"{split}_acc_at_1"]
        if on_epoch is not None:
            on_epoch(metrics)
        return metrics

    def baselines(self, data: TaskData, config: EvaluateConfig, model_dirs: dict[str, str]) -> dict[str, dict]:
        """The most frequent token, per distinct tokenizer (one entry when every model shares it)."""
        by_vocab: dict[str, tuple[list[str], Any]] = {}
        for name, folder in model_dirs.items():
            tokenizer = load_tokenizer(folder)
            key = json.dumps(sorted(tokenizer.get_vocab().items()))
            by_vocab.setdefault(key, ([], tokenizer))[0].append(name)
        out = {}
        for names, tokenizer in by_vocab.values():
            label = "most-frequent-token" if len(by_vocab) == 1 else f"most-frequent-token ({', '.join(names)})"
            out[label] = most_frequent_token(tokenizer, data, config.max_seq_length, TOP_K)
        return out
