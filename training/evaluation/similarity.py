"""similarity: cosine similarity of mean-pooled embeddings against graded labels (Spearman).

Scored zero-shot (the checkpoint as is) and after a short contrastive fine-tune with the CoSENT
loss, as the paper's setup on Amazon ESCI. Data: by default the WDC product pairs (labels 0/1);
ESCI-shaped files (columns query, product_title, esci_label with E/S/C/I -> 1.0/0.66/0.33/0.0), as
TSV, CSV or JSONL: either one file (split 70/10/20 by a stable hash of the query) or a folder with
`train.*`, `valid.*`, `test.*`. The primary score is the fine-tuned Spearman (the zero-shot one when
`similarity_finetune` is off); `*_zero_shot` is reported alongside.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from scipy.stats import spearmanr

from infra.core.config import EvaluateConfig
from training.evaluation.base import EpochCallback, Task, TaskData, TaskDataError, TrialParams, local_source, split_of
from training.evaluation.baselines import similarity_baselines
from training.evaluation.finetune import encode_texts, load_tokenizer, mean_pool, pick_device, set_seed, train_epochs
from training.evaluation.product_matching import SPLIT_FILES, read_wdc_folder, take

ESCI_SCORES = {"E": 1.0, "S": 0.66, "C": 0.33, "I": 0.0}
ESCI_COLUMNS = ("query", "product_title", "esci_label")
SUFFIXES = (".tsv", ".csv", ".jsonl")


@dataclass
class ScoredPair:
    a: str
    b: str
    score: float


def scored_pairs(examples: list) -> list[ScoredPair]:
    """WDC offer pairs (`product_matching.LabeledText`) as pairs scored by their 0/1 label."""
    return [ScoredPair(e.text, e.pair or "", float(e.label)) for e in examples]


def read_esci_file(path: Path) -> list[ScoredPair]:
    """One ESCI-shaped file; a missing column, empty text or unknown label names the file and line."""
    if not path.is_file():
        raise TaskDataError(f"similarity: file not found: {path}")
    rows: list[tuple[int, dict[str, Any]]] = []
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix == ".jsonl":
            for lineno, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append((lineno, json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise TaskDataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        else:
            reader = csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ",")
            missing = [c for c in ESCI_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise TaskDataError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
            rows = [(lineno, row) for lineno, row in enumerate(reader, start=2)]
    return esci_pairs(rows, str(path))


def esci_pairs(rows: list[tuple[int, Any]], source: str) -> list[ScoredPair]:
    """Validate ESCI rows (line number, record); errors name the source and line (or row)."""
    pairs = []
    for lineno, row in rows:
        where = f"{source}:{lineno}"
        if not isinstance(row, dict) or any(c not in row for c in ESCI_COLUMNS):
            raise TaskDataError(f"{where}: expected fields {', '.join(ESCI_COLUMNS)}")
        label = str(row["esci_label"]).strip().upper()[:1]
        if label not in ESCI_SCORES:
            raise TaskDataError(f"{where}: esci_label {row['esci_label']!r} does not fit similarity (E, S, C or I)")
        query, title = str(row["query"] or "").strip(), str(row["product_title"] or "").strip()
        if not query or not title:
            raise TaskDataError(f"{where}: empty query or product_title")
        pairs.append(ScoredPair(query, title, ESCI_SCORES[label]))
    if not pairs:
        raise TaskDataError(f"{source}: no pairs")
    return pairs


def split_hub_dataset(name: str) -> dict[str, list[ScoredPair]]:
    """An ESCI-shaped HF dataset (needs `datasets`): its own splits, else split by query hash."""
    import datasets

    loaded = datasets.load_dataset(name)
    if all(s in loaded for s in ("train", "validation", "test")):
        return {ours: esci_pairs(list(enumerate(loaded[theirs], start=1)), f"{name}[{theirs}]")
                for ours, theirs in (("train", "train"), ("valid", "validation"), ("test", "test"))}
    splits: dict[str, list[ScoredPair]] = {"train": [], "valid": [], "test": []}
    for split_name, split in loaded.items():
        for pair in esci_pairs(list(enumerate(split, start=1)), f"{name}[{split_name}]"):
            splits[split_of(pair.a)].append(pair)
    return splits


def split_file(path: Path) -> dict[str, list[ScoredPair]]:
    splits: dict[str, list[ScoredPair]] = {"train": [], "valid": [], "test": []}
    for pair in read_esci_file(path):
        splits[split_of(pair.a)].append(pair)
    return splits


def split_folder(folder: Path) -> dict[str, list[ScoredPair]]:
    splits = {}
    for split in ("train", "valid", "test"):
        found = [folder / f"{split}{s}" for s in SUFFIXES if (folder / f"{split}{s}").is_file()]
        if not found:
            raise TaskDataError(f"similarity: {folder} has no {split}.tsv / {split}.csv / {split}.jsonl")
        splits[split] = read_esci_file(found[0])
    return splits


def embed(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 32) -> torch.Tensor:
    out = []
    for start in range(0, len(texts), batch_size):
        enc = encode_texts(tokenizer, texts[start : start + batch_size], None, max_length, model.device)
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        out.append(mean_pool(hidden, enc["attention_mask"]))
    return torch.cat(out)


def cosine_scores(model, tokenizer, pairs: list[ScoredPair], max_length: int) -> torch.Tensor:
    a = embed(model, tokenizer, [p.a for p in pairs], max_length)
    b = embed(model, tokenizer, [p.b for p in pairs], max_length)
    return torch.nn.functional.cosine_similarity(a, b)


def spearman(pairs: list[ScoredPair], cosines: torch.Tensor) -> float:
    value = spearmanr([p.score for p in pairs], cosines.tolist()).statistic
    return 0.0 if value != value else float(value)  # NaN (constant predictions) counts as no correlation


def cosent_loss(cosines: torch.Tensor, labels: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT: log(1 + sum over pairs (i, j) with label_i > label_j of exp(scale * (cos_j - cos_i)))."""
    diff = scale * (cosines[None, :] - cosines[:, None])  # [i, j] = s * (cos_j - cos_i)
    ranked = labels[:, None] > labels[None, :]
    diff = diff[ranked]
    return torch.logsumexp(torch.cat([torch.zeros(1, device=diff.device), diff]), dim=0)


COSENT_CACHE = "cosent"  # under the task cache folder: the cosines of finished bi-encoder fine-tunes


def cosent_key(model_dir: str, data: TaskData, params: TrialParams, config: EvaluateConfig, finetune: bool) -> str:
    """A digest of everything that decides a bi-encoder trial's cosines: the model folder's files, the pairs of
    every split, the trial's point and seed, the evaluation config, the torch version and the device type."""
    folder = Path(model_dir).resolve()
    files = sorted((p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in folder.rglob("*") if p.is_file())
    payload = {
        "model": [str(folder), files],
        "pairs": {s: [[p.a, p.b, p.score] for p in getattr(data, s)] for s in ("train", "valid", "test")},
        "params": asdict(params), "config": config.model_dump(mode="json"), "finetune": finetune,
        "torch": torch.__version__, "device": pick_device().type,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _as_lists(cosines: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {s: c.tolist() for s, c in cosines.items()}


def _as_tensors(cosines: dict[str, list[float]]) -> dict[str, torch.Tensor]:
    return {s: torch.tensor(c, dtype=torch.float32) for s, c in cosines.items()}


def _zero_shot_fields(zero_shot: dict[str, Any], reused: bool) -> dict[str, Any]:
    """What every report of a bi-encoder trial carries besides its epoch's scores."""
    return {"valid_zero_shot": zero_shot["valid_score"], "test_zero_shot": zero_shot["test_score"],
            "finetune_reused": float(reused)}


def run_cosent(model_dir: str, data: TaskData, params: TrialParams, config: EvaluateConfig,
               score: Callable[[dict[str, torch.Tensor]], dict[str, Any]], finetune: bool = True,
               on_epoch: EpochCallback | None = None) -> dict[str, Any]:
    """A mean-pooled bi-encoder: scored zero-shot, then fine-tuned with CoSENT on `data.train` (ScoredPair) and
    scored after every epoch. `score({"valid": cosines, "test": cosines})` returns the metrics (valid_score,
    test_score, ...); the zero-shot scores ride along as `valid_zero_shot` / `test_zero_shot`.

    With `data.cache_dir` set, a trial that ran every epoch keeps its cosines there (`cosent/<cosent_key>.json`),
    and a later trial with the same key (product matching's bi-encoder and similarity on the same WDC pairs, or
    a rerun) scores those cosines instead of fine-tuning again: the same numbers, `finetune_reused` 1."""
    key = cosent_key(model_dir, data, params, config, finetune) if data.cache_dir is not None else None
    record_file = Path(data.cache_dir) / COSENT_CACHE / f"{key}.json" if key else None
    if record_file is not None and record_file.is_file():
        return _replay_cosent(json.loads(record_file.read_text()), score, on_epoch)

    from transformers import AutoModel

    set_seed(params.seed)
    tokenizer = load_tokenizer(model_dir)
    model = AutoModel.from_pretrained(model_dir).to(pick_device())
    model.eval()
    record: dict[str, Any] = {"zero_shot": None, "epochs": []}
    latest: dict[str, torch.Tensor] = {}

    def evaluate() -> dict[str, Any]:
        latest.clear()
        latest.update({s: cosine_scores(model, tokenizer, getattr(data, s), config.max_seq_length).cpu()
                       for s in ("valid", "test")})
        return score(latest)

    with torch.no_grad():
        zero_shot = evaluate()
    record["zero_shot"] = _as_lists(latest)
    zero = _zero_shot_fields(zero_shot, reused=False)
    if not finetune or not data.train:
        metrics = {**zero_shot, **zero, "epoch": 0}
        if on_epoch is not None:
            on_epoch(metrics)
    else:
        train: list[ScoredPair] = data.train

        def loss_of_batch(batch: list[int]) -> torch.Tensor:
            chunk = [train[i] for i in batch]
            return cosent_loss(cosine_scores(model, tokenizer, chunk, config.max_seq_length),
                               torch.tensor([p.score for p in chunk], device=model.device))

        def report(metrics: dict[str, Any]) -> None:
            record["epochs"].append({"cosines": _as_lists(latest), "train_loss": metrics["train_loss"]})
            metrics.update(zero)
            if on_epoch is not None:
                on_epoch(metrics)

        metrics = train_epochs(model, len(train), loss_of_batch, evaluate, params, config, report)
    if record_file is not None:  # every epoch ran: written whole, then renamed, so a reader never sees half
        record_file.parent.mkdir(parents=True, exist_ok=True)
        partial = record_file.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(record))
        os.replace(partial, record_file)
    return metrics


def _replay_cosent(record: dict[str, Any], score: Callable[[dict[str, torch.Tensor]], dict[str, Any]],
                   on_epoch: EpochCallback | None) -> dict[str, Any]:
    """The metrics (and per-epoch reports) of `run_cosent` from a kept record of its cosines."""
    zero_shot = score(_as_tensors(record["zero_shot"]))
    zero = _zero_shot_fields(zero_shot, reused=True)
    if not record["epochs"]:
        metrics = {**zero_shot, **zero, "epoch": 0}
        if on_epoch is not None:
            on_epoch(metrics)
        return metrics
    for epoch, kept in enumerate(record["epochs"], start=1):
        metrics = dict(score(_as_tensors(kept["cosines"])))
        metrics.update(epoch=epoch, train_loss=kept["train_loss"], **zero)
        if on_epoch is not None:
            on_epoch(metrics)
    return metrics


class Similarity(Task):
    name = "similarity"
    metric = "spearman"
    default_data = "eval/wdc-products/computers"

    def load(self, path: str | None, config: EvaluateConfig, cache_dir: Path) -> TaskData:
        from infra.core.paths import shared_data_dir

        source = local_source(path, self.name, hub_supported=True) if path else shared_data_dir() / self.default_data
        if source is None:
            splits, kind = split_hub_dataset(str(path)), "HF dataset (esci columns)"
        elif source.is_dir() and (source / SPLIT_FILES["train"]).is_file():
            wdc = read_wdc_folder(source, config, self.name)
            splits = {s: scored_pairs(getattr(wdc, s)) for s in ("train", "valid", "test")}
            kind = "wdc pairs (0/1)"
        elif source.is_dir():
            splits, kind = split_folder(source), "esci files"
        else:
            splits, kind = split_file(source), "esci file, split by query hash"
        limits = config.limits
        data = TaskData(train=take(splits["train"], limits.train), valid=take(splits["valid"], limits.eval),
                        test=take(splits["test"], limits.eval))
        for split in ("valid", "test"):
            if len({p.score for p in getattr(data, split)}) < 2:
                raise TaskDataError(f"similarity: the {split} split of {source or path} has one label value; "
                                    "Spearman needs graded or mixed labels")
        data.info = {"source": str(source or path), "kind": kind, "used": data.sizes()}
        return data

    def run(self, model_dir: str, data: TaskData, params: TrialParams, config: EvaluateConfig,
            on_epoch: EpochCallback | None = None) -> dict[str, Any]:
        def score(cosines: dict[str, torch.Tensor]) -> dict[str, Any]:
            return {f"{s}_score": spearman(getattr(data, s), cosines[s]) for s in ("valid", "test")}

        return run_cosent(model_dir, data, params, config, score, config.similarity_finetune, on_epoch)

    def baselines(self, data: TaskData, config: EvaluateConfig, model_dirs: dict[str, str]) -> dict[str, dict]:
        return similarity_baselines(data)
