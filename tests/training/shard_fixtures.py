"""Packed token shards for the pretraining tests, made from real pages of ../shared/data.

The main content of WCXB pages (e-commerce: product and collection pages; general: articles,
documentation, forums, services) is tokenized with a small BPE tokenizer trained here, packed with
`training.data.SequencePacker`, mixed by weight, and written in the tokenize stage's layout:
`DIR/{train,validation}/part-00000.parquet`, `DIR/tokenizer/`, `DIR/manifest.json` (the one manifest
schema, stage `pack`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.core.config import _deep_merge, load_config
from infra.core.manifest import StageStats, build_manifest, write_manifest
from training.data import MIN_DOCUMENT_TOKENS, SequencePacker
from training.tokenizer import load_tokenizer, train_tokenizer

ECOM_TYPES = {"product", "collection"}
GENERAL_TYPES = {"article", "documentation", "forum", "service"}
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "infra" / "configs" / "demo.yaml"
# The demo's token sets (demo.yaml's tokenize.sets): folder -> (seq_len, mixture). A source named like
# `shared-ecom` takes the e-commerce pages, any other the general ones.
TOKEN_SETS = {name: (s.seq_len, dict(s.mixture)) for name, s in load_config(DEMO_CONFIG).tokenize.sets.items()}
# The demo's pretraining at test size: the smoke phases (a few steps each), micro batches of 2, on the two-worker
# path (FSDP2 over gloo, each worker streaming its batches from Ray Data; the demo itself runs one worker). Merge
# it into the overrides of a test that runs demo.yaml's phases (`smoke_overrides`).
SMOKE = {"pretrain": {"phases": {name: f"smoke-{name}.yaml" for name in ("general", "context", "decay")},
                      "workers": 2, "cpus_per_worker": 0.5, "parallelism": {"fsdp": "auto"},
                      "data": {"micro_batch_size": 2, "loader": "ray-data"}, "checkpoint": {"interval": 2},
                      "metrics": {"log_interval": 1}}}


def smoke_overrides(overrides: dict | None = None) -> dict:
    """`overrides` on top of SMOKE (nested dictionaries merged)."""
    return _deep_merge(SMOKE, overrides or {})


def _kind(source: str) -> str:
    return "ecom" if "ecom" in source else "general"


def read_texts(shared_data: Path, per_kind: int = 60) -> dict[str, list[str]]:
    pages = shared_data / "pages" / "wcxb-dev"
    texts: dict[str, list[str]] = {"ecom": [], "general": []}
    with (pages / "labels.csv").open() as f:
        for row in csv.DictReader(f):
            page_type = row["page_type"]
            kind = "ecom" if page_type in ECOM_TYPES else "general" if page_type in GENERAL_TYPES else None
            if kind is None or len(texts[kind]) >= per_kind:
                continue
            truth = json.loads((pages / "ground-truth" / f"{row['file_id']}.json").read_text())
            text = (truth["ground_truth"].get("main_content") or "").strip()
            if len(text) > 200:
                texts[kind].append(text[:4000])
    return texts


def _pack(tokenizer, texts: list[str], seq_len: int, stats: StageStats) -> list:
    packer = SequencePacker(seq_len, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
    sequences = []
    for i, text in enumerate(texts):
        stats.input += 1
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) < MIN_DOCUMENT_TOKENS:
            stats.drop("too_short")
            continue
        sequences += packer.add(str(i), ids)
        stats.kept += 1
    return sequences + packer.finish()


def _write(rows: list[tuple[str, object]], path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "input_ids": pa.array([s.input_ids.tolist() for _, s in rows], pa.list_(pa.int32())),
        "seq_lens": pa.array([list(s.seq_lens) for _, s in rows], pa.list_(pa.int32())),
        "pad_len": pa.array([s.pad_len for _, s in rows], pa.int32()),
        "source": pa.array([name for name, _ in rows], pa.string()),
        "seq_index": pa.array(range(len(rows)), pa.int64()),
    })
    pq.write_table(table, path / "part-00000.parquet", compression="zstd")


def write_token_set(out: Path, tokenizer_dir: Path, texts: dict[str, list[str]], seq_len: int,
                    mixture: dict[str, float], seed: int = 0) -> Path:
    tokenizer = load_tokenizer(tokenizer_dir)
    tokenizer.save_pretrained(str(out / "tokenizer"))
    rng = np.random.default_rng(seed)
    splits = {}
    stats = StageStats()  # documents: input = packed + too_short
    for split in ("train", "validation"):
        rows = []
        for name in mixture:
            source_texts = texts[_kind(name)]
            pool = source_texts[:-5] if split == "train" else source_texts[-5:]
            rows += [(name, s) for s in _pack(tokenizer, pool, seq_len, stats)][: None if split == "validation" else
                                                                               max(4, int(400 * mixture[name]))]
        rows = [rows[i] for i in rng.permutation(len(rows))]
        _write(rows, out / split)
        splits[split] = {"sequences": len(rows)}
    manifest = build_manifest(
        "pack", stats, outputs={"path": str(out)},
        extra={"seq_len": seq_len, "seed": seed, "tokenizer": {"path": "tokenizer", "vocab_size": len(tokenizer)},
               "sources": {name: {"weight": w} for name, w in mixture.items()}, "splits": splits},
    )
    write_manifest(out, manifest)
    return out


def make_demo_tokens(root: Path, shared_data: Path) -> Path:
    """`root/tokenizer/` and `root/tokens/{general-128,context-256,decay-256}/`, as the demo's tokenize stage."""
    texts = read_texts(shared_data)
    tokenizer_dir = train_tokenizer(texts["general"] + texts["ecom"], root / "tokenizer", vocab_size=512)
    for name, (seq_len, mixture) in TOKEN_SETS.items():
        write_token_set(root / "tokens" / name, tokenizer_dir, texts, seq_len, mixture)
    return root


@pytest.fixture(scope="session")
def demo_tokens(shared_data, tmp_path_factory) -> Path:
    return make_demo_tokens(tmp_path_factory.mktemp("pretrain-demo"), shared_data)
