"""Loader throughput vs what a training step consumes, at the tiny and base sizes.

Shards: packed from generated documents (log-normal lengths, mean ~355 tokens like the training
throughput bench) and written exactly as `ray_jobs.tokenize.pack` writes them. Measured here:
`training.data.PackedShardLoader` sequences/s over a full epoch (one process, batch 32), and with
`--ray` the Ray Data path (`ray_jobs.loader`: ordered dataset + `iter_torch_batches`).

Consumption rates:
- tiny (seq 128): measured here, transformers' ModernBertForMaskedLM at the `tiny` shape
  (dim 64, 4 layers, intermediate 96, 4 heads, vocab 512), forward + backward + AdamW on CPU;
- base (seq 1024): what one GPU needs at the 500k tokens/s/GPU target (~488 seq/s), beside the
  rates measured on one H200 (bench/results/train_throughput_gpu.md: 194k tokens/s, ours_fsdp) and
  ModernBERT's published run (~304k tokens/s per H100).
Headroom = loader sequences/s / consumed sequences/s (above 1: the loader keeps up, on one core).

    python -m bench.loader_bench            # 4096 sequences per size (under a minute)
    python -m bench.loader_bench --sequences 20000 --ray
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from infra.core.paths import PROJECT_ROOT
from ray_jobs.tokenize import write_split
from training.data import PackedShardLoader, pack_documents

RESULTS = PROJECT_ROOT / "bench" / "results"
BASE_RATES = {  # tokens/s per GPU at seq 1024
    "target_500k_tokens_per_gpu": 500_000,
    "modernbert_published_h100": 304_000,
    "measured_h200_ours_fsdp": 194_210,
}


def write_shards(folder: Path, seq_len: int, sequences: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    docs, total = [], 0
    while total < sequences * seq_len:
        n = int(np.clip(rng.lognormal(5.5, 0.8), 3, 8 * seq_len))
        docs.append((f"d{len(docs)}", rng.integers(5, 50_000, size=n, dtype=np.int32)))
        total += n + 2
    packed, _ = pack_documents(docs, seq_len, 1, 2, 3)
    write_split(folder / "train", [("gen", i, s) for i, s in enumerate(packed[:sequences])], seq_len, 4096)
    return folder


def plain_loader_rate(folder: Path, batch_size: int) -> dict[str, float]:
    started = time.perf_counter()
    loader = PackedShardLoader(str(folder), batch_size, seed=0)
    opened = time.perf_counter() - started
    started, seen = time.perf_counter(), 0
    for batch in loader:
        seen += len(batch["input_ids"])
    seconds = time.perf_counter() - started
    return {"open_seconds": round(opened, 3), "sequences": seen, "sequences_per_s": round(seen / seconds)}


def ray_loader_rate(folder: Path, batch_size: int) -> dict[str, float]:
    from ray_jobs.loader import iter_rank_batches, ordered_dataset, read_packed

    started = time.perf_counter()
    ds = ordered_dataset(read_packed(folder), seed=0).materialize()
    prepared = time.perf_counter() - started
    started, seen = time.perf_counter(), 0
    for batch in iter_rank_batches(ds, batch_size):
        seen += len(batch["input_ids"])
    seconds = time.perf_counter() - started
    return {"order_seconds": round(prepared, 3), "sequences": seen, "sequences_per_s": round(seen / seconds)}


def tiny_step_rate(seq_len: int = 128, batch_size: int = 8, steps: int = 6) -> float:
    """Sequences/s that a tiny ModernBERT consumes on this CPU (forward + backward + AdamW)."""
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    config = ModernBertConfig(vocab_size=512, hidden_size=64, num_hidden_layers=4, intermediate_size=96,
                              num_attention_heads=4, max_position_embeddings=1024, pad_token_id=3,
                              bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
    model = ModernBertForMaskedLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(5, 512, (batch_size, seq_len))
    labels = torch.where(torch.rand(ids.shape) < 0.3, ids, -100)
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            started = time.perf_counter()
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequences", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ray", action="store_true", help="Also time the Ray Data loader path.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="loader-bench-"))
    tiny_rate = tiny_step_rate()
    sizes = {
        "tiny": {"seq_len": 128, "consumed": {"measured_cpu_tiny_step": tiny_rate}},
        "base": {"seq_len": 1024, "consumed": {k: v / 1024 for k, v in BASE_RATES.items()}},
    }
    if args.ray:
        import ray

        from infra.core.config import RayConfig
        from ray_jobs.runtime import init_ray

        init_ray(RayConfig(num_cpus=2, dashboard_port=8298, metrics_export_port=8198))
    result: dict = {"sequences": args.sequences, "batch_size": args.batch_size, "sizes": {}}
    for name, size in sizes.items():
        folder = write_shards(work / name, size["seq_len"], args.sequences)
        loaders = {"plain": plain_loader_rate(folder, args.batch_size)}
        if args.ray:
            loaders["ray_data"] = ray_loader_rate(folder, args.batch_size)
        headroom = {f"{loader}_vs_{rate}": round(m["sequences_per_s"] / consumed, 1)
                    for loader, m in loaders.items() for rate, consumed in size["consumed"].items()}
        result["sizes"][name] = {
            "seq_len": size["seq_len"],
            "loader": loaders,
            "consumed_sequences_per_s": {k: round(v, 1) for k, v in size["consumed"].items()},
            "headroom": headroom,
        }
    if args.ray:
        ray.shutdown()
    result["load_average_1m"] = os.getloadavg()[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "loader.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# Loader throughput vs training consumption ({args.sequences} sequences, batch {args.batch_size})",
        "",
        f"Wall time, one process, load average {result['load_average_1m']:.1f} (shared machine).",
        "",
        "| size | seq_len | loader | loader seq/s | consumer | consumed seq/s | headroom |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in result["sizes"].items():
        for loader, m in r["loader"].items():
            for rate, consumed in r["consumed_sequences_per_s"].items():
                lines.append(f"| {name} | {r['seq_len']} | {loader} | {m['sequences_per_s']:,} | {rate} | "
                             f"{consumed:,} | {m['sequences_per_s'] / consumed:.1f}x |")
    (RESULTS / "loader.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
