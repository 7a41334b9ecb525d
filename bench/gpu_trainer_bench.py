"""Pretraining throughput through the trainer a user runs, next to transformers' ModernBertForMaskedLM.

Two paths, same documents, same process:

- `trainer`:      `training.trainer.Trainer`, built from a `PretrainConfig` exactly as `rexbert pretrain`
                  builds it (FSDP2 over a world-size-1 NCCL group on CUDA, bf16 policy, compiled blocks,
                  FlexAttention, StableAdamW, clipping, LR schedule, metrics); its own step, timed by its own
                  metrics (checkpoint time is left out there).
- `transformers`: `ModernBertForMaskedLM` of the same shape (`training.export.hf_config`), SDPA, one
                  document per row padded to the batch's longest (its path without flash-attn), bf16
                  autocast, fused AdamW.

Documents are random ids with log-normal lengths (median ~250 tokens); the trainer's rows come from the
project's packer (`training.data`). The tokenizer is a small one trained here (only its special tokens
matter); the model's vocabulary is the preset's. MFU uses the trainer's count for both paths: matmuls per
real token plus attention over the (query, key) pairs each document needs (`training.model.attention_flops`),
in percent of the card's dense bf16 peak.

Writes `<out>.json` (a list of rows: path, preset, seq_len, batch, real_tokens_per_s, mfu, gpu, date, and
step_s, peak_mem_gib, note) and `<out>.md`; default out `bench/results/gpu_trainer`.

    PYTHONPATH=. python bench/gpu_trainer_bench.py --device cuda                 # base at 1024 and 8192
    PYTHONPATH=. python bench/gpu_trainer_bench.py --device cpu --tiny --steps 2 # the CPU smoke run
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.train_throughput import padded_batches, sample_documents  # noqa: E402
from training.metrics import device_peak_flops  # noqa: E402
from training.model import ModelArgs, attention_flops, matmul_flops_per_token, model_args  # noqa: E402

logger = logging.getLogger("bench.gpu_trainer")

MASK_RATE = 0.3
GPU_CASES = "base:1024:32,base:8192:4"  # preset:seq_len:rows per step (the general and long phases' shapes)
TINY_CASES = "tiny:128:4"


class SyntheticBatches:
    """A `BatchSource` over prebuilt packed rows (cycled by the trainer's `EndlessBatches`)."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]):
        self.batches, self.position = batches, 0

    def __iter__(self):
        while self.position < len(self.batches):
            self.position += 1
            yield self.batches[self.position - 1]
        self.position = 0

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])


def packed_rows(docs: list[torch.Tensor], rows: int, seq_len: int, args: ModelArgs, n_batches: int) -> list[dict]:
    """Loader-shaped batches (input_ids, seq_lens, pad_len) from the project's packer."""
    from training.data import pack_documents

    sequences, _ = pack_documents([(str(i), d[1:-1].tolist()) for i, d in enumerate(docs)], seq_len,
                                  args.cls_token_id, args.sep_token_id, args.pad_token_id)
    batches = []
    for i in range(0, min(len(sequences), n_batches * rows) - rows + 1, rows):
        chunk = sequences[i: i + rows]
        width = max(len(r.seq_lens) for r in chunk)
        batches.append({
            "input_ids": torch.stack([torch.from_numpy(r.input_ids).long() for r in chunk]),
            "seq_lens": torch.tensor([r.seq_lens + [0] * (width - len(r.seq_lens)) for r in chunk], dtype=torch.int32),
            "pad_len": torch.tensor([r.pad_len for r in chunk], dtype=torch.int32),
        })
    return batches


def write_shard_folder(folder: Path, seq_len: int) -> Path:
    """What the Trainer reads from a data folder besides batches: a manifest and a tokenizer."""
    from training.tokenizer import train_tokenizer

    texts = [f"product {i} colour {i % 7} size {i % 11} price {i * 3 % 97} in stock" for i in range(200)]
    train_tokenizer(texts, folder / "tokenizer", vocab_size=320)
    (folder / "manifest.json").write_text(json.dumps({"seq_len": seq_len, "tokenizer": {"path": "tokenizer"}}))
    return folder


def ensure_process_group(device: torch.device) -> None:
    """A world-size-1 group, so the trainer takes its FSDP2 path (the one Ray Train workers run)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29563")
    os.environ.setdefault("LOCAL_RANK", "0")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)


def run_trainer(preset: str, seq_len: int, rows: int, docs, opts, device: torch.device, work: Path) -> dict:
    """The trainer path: a PretrainConfig with one inline phase, the Trainer, its own metrics per step."""
    from infra.core.config import PretrainConfig, load_phase
    from training.trainer import Trainer, TrainerHooks

    args = model_args(preset)
    cuda = device.type == "cuda"
    if cuda and opts.fsdp:
        ensure_process_group(device)
    steps = opts.warmup + opts.steps
    data_dir = write_shard_folder(work / f"data-{preset}-{seq_len}", seq_len)
    batches = packed_rows(docs, rows, seq_len, args, n_batches=min(steps, 8))
    overrides = {"vocab_size": args.vocab_size}  # the preset's vocabulary, not the small tokenizer's
    config = PretrainConfig.model_validate({
        "model": {"preset": preset, "attention": "auto", "overrides": overrides},
        "data": {"micro_batch_size": rows},
        "parallelism": {"fsdp": "on" if cuda and opts.fsdp else "off", "compile": cuda and not opts.no_compile,
                        "mixed_precision": "auto"},
        "checkpoint": {"interval": 10**9},
        "metrics": {"log_interval": 1, "tensorboard": False, "progress": False},
        "phases": {"bench": {"name": "bench", "seq_len": seq_len, "data": str(data_dir), "mixture": None,
                             "tokens": 10 * steps * rows * seq_len, "global_batch_size": rows, "mask_rate": MASK_RATE,
                             "lr": 8e-4, "schedule": {"warmup_tokens": 0, "decay_fraction": 0.0}}},
    })
    logged: list[dict] = []
    trainer = Trainer(config, load_phase(config, "bench"), work / f"phase-{preset}-{seq_len}", data_dir,
                      batches=SyntheticBatches(batches),
                      hooks=TrainerHooks(sinks=[lambda step, values: logged.append(values)]))
    trainer.train(until_step=steps)  # the plan is 10x longer, so no final checkpoint is forced
    timed = logged[opts.warmup:]
    seconds = sum(v["step_time_s"] for v in timed)
    mfu = None if timed[0]["mfu"] is None else sum(v["mfu"] * v["step_time_s"] for v in timed) / seconds
    result = {"real_tokens_per_s": sum(v["real_tokens"] for v in timed) / seconds, "mfu": mfu,
              "step_s": seconds / len(timed), "peak_mem_gib": max(v["peak_memory_gib"] for v in timed),
              "note": f"fsdp={config.parallelism.fsdp} compile={config.parallelism.compile} "
                      f"attention={trainer.model_args.attention_backend} precision={trainer.precision.param_dtype}"
                      f"{'+autocast' if trainer.precision.autocast else ''}"}
    trainer.close()
    return result


def run_transformers(preset: str, seq_len: int, rows: int, docs, opts, device: torch.device) -> dict:
    """transformers' ModernBertForMaskedLM on padded rows, timed with device syncs around the steps."""
    from transformers import ModernBertForMaskedLM

    from training.export import hf_config

    args = model_args(preset, max_seq_len=max(seq_len, 1024))
    config = hf_config(args)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = ModernBertForMaskedLM(config).to(device)
    cuda = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=8e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-5,
                                  fused=cuda)
    batches = padded_batches(docs, rows, args, torch.Generator().manual_seed(1))[: min(opts.warmup + opts.steps, 8)]
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]
    fpt = matmul_flops_per_token(args, MASK_RATE)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    def step(b: dict) -> None:
        with amp:
            out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for i in range(opts.warmup):
        step(batches[i % len(batches)])
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tokens, flops = 0, 0.0
    started = time.perf_counter()
    for i in range(opts.steps):
        b = batches[(opts.warmup + i) % len(batches)]
        step(b)
        lengths = b["attention_mask"].sum(-1, keepdim=True).cpu()  # one document per row
        tokens += int(lengths.sum())
        flops += int(lengths.sum()) * fpt + attention_flops(args, lengths)
    sync()
    seconds = time.perf_counter() - started
    peak = device_peak_flops(device)
    result = {"real_tokens_per_s": tokens / seconds, "mfu": None if peak is None else 100 * flops / seconds / peak,
              "step_s": seconds / opts.steps,
              "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
              "note": "sdpa, padded rows, bf16 autocast" if cuda else "sdpa, padded rows, fp32"}
    return result


def write_rows(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["# Pretraining throughput: the trainer's path and transformers' ModernBertForMaskedLM", "",
             "Real (non-pad) tokens/s; MFU in % of the card's dense bf16 peak, counting the FLOPs each document "
             "needs (attention over its own pairs).", "",
             "| path | preset | seq_len | batch | real tokens/s | MFU % | step ms | peak GiB | gpu | date | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['path']} | {r['preset']} | {r['seq_len']} | {r['batch']} | failed: "
                         f"{r['error'][:80]} | | | | {r['gpu']} | {r['date']} | |")
            continue
        mfu = "-" if r["mfu"] is None else f"{r['mfu']:.1f}"
        mem = "-" if r.get("peak_mem_gib") is None else f"{r['peak_mem_gib']:.1f}"
        lines.append(f"| {r['path']} | {r['preset']} | {r['seq_len']} | {r['batch']} | {r['real_tokens_per_s']:,.0f} "
                     f"| {mfu} | {1000 * r['step_s']:.0f} | {mem} | {r['gpu']} | {r['date']} | {r['note']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--tiny", action="store_true", help=f"the smoke cases ({TINY_CASES}) instead of {GPU_CASES}")
    p.add_argument("--cases", default=None, help="comma-separated preset:seq_len:rows")
    p.add_argument("--paths", default="trainer,transformers", help="comma-separated: trainer, transformers")
    p.add_argument("--steps", type=int, default=None, help="timed steps (10; 2 with --tiny)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first, compilation included (4; 1 tiny)")
    p.add_argument("--no-fsdp", dest="fsdp", action="store_false", help="trainer as a plain process (autocast)")
    p.add_argument("--no-compile", action="store_true", help="trainer's blocks eager")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "gpu_trainer"),
                   help="results path without suffix")
    opts = p.parse_args(argv)
    opts.cases = [(c.split(":")[0], int(c.split(":")[1]), int(c.split(":")[2]))
                  for c in (opts.cases or (TINY_CASES if opts.tiny else GPU_CASES)).split(",")]
    opts.paths = opts.paths.split(",")
    unknown = set(opts.paths) - {"trainer", "transformers"}
    if unknown:
        p.error(f"unknown paths {sorted(unknown)}; use trainer, transformers")
    opts.steps = opts.steps or (2 if opts.tiny else 10)
    opts.warmup = opts.warmup if opts.warmup is not None else (1 if opts.tiny else 4)
    opts.out = Path(opts.out)
    return opts


def main(argv=None) -> list[dict]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    opts = parse_args(argv)
    device = torch.device(opts.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
    if device.type == "cpu" and torch.cuda.is_available():
        raise SystemExit("--device cpu on a CUDA machine: the trainer would pick the GPU; hide it "
                         "(CUDA_VISIBLE_DEVICES=) for the CPU smoke run")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch._dynamo.config.cache_size_limit = 32
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gpu-trainer-bench-") as tmp:
        for preset, seq_len, batch in opts.cases:
            args = model_args(preset)
            n_tokens = min(opts.warmup + opts.steps, 8) * batch * seq_len
            docs = sample_documents(n_tokens * 2, seq_len, args.vocab_size, args, seed=0)
            for path in opts.paths:
                row = {"path": path, "preset": preset, "seq_len": seq_len, "batch": batch, "gpu": gpu,
                       "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
                logger.info("%s %s %d x %d ...", path, preset, batch, seq_len)
                try:
                    if path == "trainer":
                        row.update(run_trainer(preset, seq_len, batch, docs, opts, device, Path(tmp)))
                    else:
                        row.update(run_transformers(preset, seq_len, batch, docs, opts, device))
                except Exception as exc:  # a failed case is reported; the others still run
                    logger.exception("%s %s %d x %d failed", path, preset, batch, seq_len)
                    row.update(error=f"{type(exc).__name__}: {exc}", real_tokens_per_s=None, mfu=None)
                rows.append(row)
                logger.info("%s", row)
                gc.collect()  # the case's model and optimizer, before the next one allocates
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                write_rows(rows, opts.out)  # after every case, so a time-out still leaves numbers
    print(opts.out.with_suffix(".md").read_text())
    return rows


if __name__ == "__main__":
    main()
