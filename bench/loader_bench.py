"""The loaders at base shape: sequences/s and memory at 1M, 10M and 100M tokens of shards, L=1024 and L=8192.

Shards are generated straight in the pack job's format (`ray_jobs.tokenize.write_split`, row groups of
`training.data.ROW_GROUP_ROWS`): random ids in a 50k vocabulary, documents of log-normal length (mean ~400
tokens, like the training throughput bench) packed into rows, `seq_lens` summing to L. Generated once per shape
and size in `--work-dir` and reused; generation is never timed.

Every measurement runs one whole epoch (shuffled, seed 0, micro batch of 32k tokens: 32 x 1024 or 4 x 8192) in a
fresh spawned process, so memory is the loader's alone:
- `plain`: `training.data.PackedShardLoader` (footer index + one window of row groups), after one warm-up batch
  (pyarrow imports pandas lazily on first use, ~0.8 s once per process); peak RSS of the process;
- `ray_data`: `ray_jobs.loader.stream_dataset` + `iter_rank_batches` on a local Ray cluster started in that process
  (2 CPUs, 1 GiB object store, warmed up by one batch first); peak RSS of the consuming process and peak PSS of
  it plus every Ray process.
Sequences/s are set beside what one GPU consumes at the project's target (500k tokens/s), at ModernBERT's
published rate per H100, and at the rate measured here on one H200 (`train_throughput_gpu.md`): headroom above 1
means the loader keeps up, on one core.

    python -m bench.loader_bench                          # 1M, 10M, 100M tokens at L=1024 and 8192
    python -m bench.loader_bench --sizes 1M,10M --seq-lens 1024 --no-ray
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import ray  # before psutil: Ray ships psutil in ray/thirdparty_files and puts it on sys.path

# isort: split
import psutil

from bench.tokenize_scale import PeakMemory, in_subprocess, parse_size, size_label
from infra.core.paths import PROJECT_ROOT
from training.data import PackedSequence

RESULTS = PROJECT_ROOT / "bench" / "results"
MiB = 2**20
BATCH_TOKENS = 32_768
BASE_RATES = {  # tokens/s per GPU
    "target_500k_tokens_per_gpu": 500_000,
    "modernbert_published_h100": 304_000,
    "measured_h200_ours_fsdp": 194_210,
}


def write_shards(folder: Path, seq_len: int, tokens: int, seed: int = 0) -> Path:
    """`tokens` worth of packed rows (rounded up to whole rows) in `folder/train/`, once."""
    from ray_jobs.tokenize import write_split

    done = folder / "complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(seed)
    rows = -(-tokens // seq_len)
    triples = []
    for index in range(rows):
        lens, left = [], seq_len
        while left:
            n = min(left, int(np.clip(rng.lognormal(5.7, 0.8), 5, 8 * seq_len)))
            if 0 < left - n < 5:  # no segment shorter than [CLS] x x x [SEP]
                n = left
            lens.append(n)
            left -= n
        ids = rng.integers(5, 50_000, size=seq_len, dtype=np.int32)
        triples.append(("gen", index, PackedSequence(ids, lens, 0, [f"d{index}-{k}" for k in range(len(lens))])))
        if len(triples) == 4096 or index == rows - 1:  # one shard at a time: generation memory stays small
            write_split_part(write_split, folder / "train", triples, seq_len, first=index + 1 - len(triples))
            triples = []
    done.write_text("ok")
    return folder


def write_split_part(write_split, split_dir: Path, triples: list, seq_len: int, first: int) -> None:
    """Write one shard of `write_split`'s format as part number first // 4096, numbered from `first`."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tmp = split_dir / f".tmp-{first}"
    write_split(tmp, triples, seq_len, rows_per_shard=len(triples))
    table = pq.read_table(tmp / "part-00000.parquet")
    table = table.set_column(table.schema.get_field_index("seq_index"), "seq_index",
                             pc.add(table.column("seq_index"), first))
    from training.data import ROW_GROUP_ROWS

    split_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, split_dir / f"part-{first // 4096:05d}.parquet", compression="zstd",
                   row_group_size=ROW_GROUP_ROWS)
    (tmp / "part-00000.parquet").unlink()
    tmp.rmdir()


def plain_epoch(folder: str, batch_size: int) -> dict:
    """Spawned process: one shuffled epoch of the plain loader; sequences/s and peak RSS."""
    import resource

    from training.data import PackedShardLoader

    next(iter(PackedShardLoader(folder, batch_size, seed=1)))  # warm-up: pyarrow's lazy imports (pandas), ~0.8 s
    started = time.perf_counter()
    loader = PackedShardLoader(folder, batch_size, seed=0)
    opened = time.perf_counter() - started
    started, seen, rss = time.perf_counter(), 0, []
    for number, batch in enumerate(loader):
        seen += len(batch["input_ids"])
        if number % 50 == 0:
            rss.append(psutil.Process().memory_info().rss)
    seconds = time.perf_counter() - started
    return {"open_seconds": round(opened, 3), "sequences": seen, "seconds": round(seconds, 2),
            "sequences_per_s": round(seen / seconds), "window_units": loader.window_units,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rss_first_last_mib": [round(rss[0] / MiB), round(rss[-1] / MiB)]}


def ray_epoch(folder: str, batch_size: int) -> dict:
    """Spawned process: one shuffled epoch streamed by Ray Data; sequences/s, consumer RSS and tree PSS peaks."""
    import logging

    from infra.core.config import RayConfig
    from ray_jobs.loader import iter_rank_batches, stream_dataset
    from ray_jobs.runtime import init_ray
    from training.data import ShardIndex, usable_per_epoch

    logging.disable(logging.INFO)
    init_ray(RayConfig(num_cpus=2, dashboard_port=8299, metrics_export_port=8199), object_store_memory=2**30)
    session = ray._private.worker._global_node.get_session_dir_path()
    batches = usable_per_epoch(len(ShardIndex.read(folder)), batch_size) // batch_size
    for _ in iter_rank_batches(stream_dataset(folder, seed=1, global_batch=batch_size, start_batch=0, batches=1),
                               batch_size):
        pass  # warm-up: the cluster's worker processes start here, not in the timed epoch
    ds = stream_dataset(folder, seed=0, global_batch=batch_size, start_batch=0, batches=batches)
    with PeakMemory(session) as memory:
        started, seen = time.perf_counter(), 0
        for batch in iter_rank_batches(ds, batch_size):
            seen += len(batch["input_ids"])
        seconds = time.perf_counter() - started
    ray.shutdown()
    return {"sequences": seen, "seconds": round(seconds, 2), "sequences_per_s": round(seen / seconds),
            "driver_peak_rss_mib": round(memory.driver_rss / MiB), "tree_peak_pss_mib": round(memory.tree_pss / MiB)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1M,10M,100M")
    parser.add_argument("--seq-lens", default="1024,8192")
    parser.add_argument("--no-ray", action="store_true", help="Only the plain loader.")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rexbert-loader-bench"))
    parser.add_argument("--name", default="loader")
    args = parser.parse_args()

    rows = []
    for seq_len in (int(x) for x in args.seq_lens.split(",")):
        batch_size = BATCH_TOKENS // seq_len
        for tokens in (parse_size(x) for x in args.sizes.split(",")):
            folder = write_shards(args.work_dir / f"L{seq_len}-{size_label(tokens)}", seq_len, tokens)
            row = {"seq_len": seq_len, "tokens": tokens, "label": size_label(tokens), "batch_size": batch_size,
                   "shard_mib": round(sum(f.stat().st_size for f in (folder / "train").glob("*.parquet")) / MiB),
                   "plain": in_subprocess(plain_epoch, str(folder), batch_size)}
            if not args.no_ray:
                row["ray_data"] = in_subprocess(ray_epoch, str(folder), batch_size)
            rows.append(row)
            print(json.dumps(row))
    write_results({"rows": rows, "batch_tokens": BATCH_TOKENS, "load_average_1m": os.getloadavg()[0],
                   "base_rates_tokens_per_s": BASE_RATES}, args.name)


def write_results(result: dict, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    loaders = [k for k in ("plain", "ray_data") if any(k in r for r in result["rows"])]
    lines = [
        "# Loaders at base shape: sequences/s and memory from 1M to 100M tokens of shards",
        "",
        f"One shuffled epoch per cell, micro batches of {result['batch_tokens']:,} tokens, each loader in a fresh "
        f"process; load average {result['load_average_1m']:.1f} at the end (2 shared cores). `plain`: peak RSS "
        "of the process; `ray_data`: peak RSS of the consuming process / peak PSS of it and every Ray process.",
        "",
        "| L | tokens | shards MiB | " + " | ".join(f"{k} seq/s | {k} memory MiB" for k in loaders) + " |",
        "| --- | --- | --- | " + " | ".join("--- | ---" for _ in loaders) + " |",
    ]
    for r in result["rows"]:
        cells = []
        for k in loaders:
            m = r.get(k)
            if m is None:
                cells += ["", ""]
            elif k == "plain":
                cells += [f"{m['sequences_per_s']:,}", f"{m['peak_rss_mib']}"]
            else:
                cells += [f"{m['sequences_per_s']:,}", f"{m['driver_peak_rss_mib']} / {m['tree_peak_pss_mib']}"]
        lines.append(f"| {r['seq_len']} | {r['label']} | {r['shard_mib']} | " + " | ".join(cells) + " |")
    lines += ["", "Headroom at the largest size (loader sequences/s over what one GPU consumes):", "",
              "| L | loader | " + " | ".join(result["base_rates_tokens_per_s"]) + " |",
              "| --- | --- | " + " | ".join("---" for _ in result["base_rates_tokens_per_s"]) + " |"]
    for seq_len in sorted({r["seq_len"] for r in result["rows"]}):
        largest = max((r for r in result["rows"] if r["seq_len"] == seq_len), key=lambda r: r["tokens"])
        for k in loaders:
            if k in largest:
                rate = largest[k]["sequences_per_s"]
                lines.append(f"| {seq_len} | {k} | " + " | ".join(
                    f"{rate / (tps / seq_len):.1f}x" for tps in result["base_rates_tokens_per_s"].values()) + " |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
