"""Training throughput: our packed, document-masked ModernBERT against transformers' ModernBertForMaskedLM.

Same size, same documents, same run; each mode does full training steps (forward, backward, AdamW
step) and reports real (non-pad) tokens per second after warm-up steps, plus MFU on a known GPU:

- `hf_padded`        transformers' model, one document per row, padded to the batch's longest row;
- `hf_packed_nomask` transformers' model on the same packed rows with no mask (documents see each other);
- `ours_sdpa`        our model on packed rows with document masks and windows as dense SDPA masks;
- `ours_flex`        (CUDA) FlexAttention block masks, blocks compiled, plain process under autocast;
- `ours_fsdp`        the same through the FSDP2 path: `parallelize_model` with a world-size-1 mesh
                     (NCCL, bf16 parameters, fp32 reduction, no resharding after forward; on the
                     CPU gloo with SDPA masks, a check of the path rather than a speed).

Documents are random token ids with log-normal lengths (median ~250 tokens, like web pages after
extraction), so the runs need no data. Packed rows come from the project's packer (`training.data`,
rows filled exactly, long documents split into segments), as in the real shards. Defaults: tiny size
on the CPU; `--preset base --seq-len 1024 --batch 32` on a GPU.
Writes `bench/results/train_throughput_<cpu|gpu>.json` and `.md`.

    PYTHONPATH=. python bench/train_throughput.py                     # CPU, tiny, a few steps
    PYTHONPATH=. python bench/train_throughput.py --device cuda       # GPU, base, 32 x 1024, bf16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.model import IGNORE_INDEX, ModelArgs, ModernBertMLM, flops_per_token, model_args  # noqa: E402

logger = logging.getLogger("bench.train_throughput")

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}  # dense, no sparsity
MASK_RATE = 0.3


def device_peak_flops(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return platform.processor() or "cpu", None
    name = torch.cuda.get_device_name(device)
    return name, next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def sample_documents(n_tokens: int, seq_len: int, vocab: int, args: ModelArgs, seed: int) -> list[torch.Tensor]:
    """[CLS] body [SEP] documents of log-normal length (median 250), at most seq_len, until n_tokens."""
    g = torch.Generator().manual_seed(seed)
    docs, total = [], 0
    while total < n_tokens:
        length = int(min(seq_len, max(8, math.exp(5.5 + 1.0 * torch.randn(1, generator=g).item()))))
        body = torch.randint(5, vocab, (length - 2,), generator=g)
        docs.append(torch.cat([torch.tensor([args.cls_token_id]), body, torch.tensor([args.sep_token_id])]))
        total += length
    return docs


def mlm_mask(ids: torch.Tensor, real: torch.Tensor, args: ModelArgs, g: torch.Generator):
    """30% of real tokens become targets; of those 80% [MASK], 10% random, 10% kept."""
    pick = (torch.rand(ids.shape, generator=g) < MASK_RATE) & real
    labels = torch.where(pick, ids, IGNORE_INDEX)
    roll = torch.rand(ids.shape, generator=g)
    inputs = torch.where(pick & (roll < 0.8), args.mask_token_id, ids)
    rand_ids = torch.randint(5, args.vocab_size, ids.shape, generator=g)
    inputs = torch.where(pick & (roll >= 0.8) & (roll < 0.9), rand_ids, inputs)
    return inputs, labels


def packed_batches(docs, batch: int, seq_len: int, args: ModelArgs, g) -> list[dict]:
    """Rows from the project's packer (`training.data`): full rows, long documents split into
    [CLS] chunk [SEP] segments, a [PAD] segment only in the stream's last row."""
    from training.data import pack_documents

    sequences, _ = pack_documents(
        [(str(i), d[1:-1].tolist()) for i, d in enumerate(docs)], seq_len,
        args.cls_token_id, args.sep_token_id, args.pad_token_id,
    )
    batches = []
    for i in range(0, len(sequences) - batch + 1, batch):
        rows = sequences[i : i + batch]
        width = max(len(r.seq_lens) for r in rows)
        ids = torch.stack([torch.from_numpy(r.input_ids).long() for r in rows])
        real = torch.stack([torch.arange(seq_len) < seq_len - r.pad_len for r in rows])
        inputs, labels = mlm_mask(ids, real, args, g)
        seq_lens = torch.tensor([r.seq_lens + [0] * (width - len(r.seq_lens)) for r in rows], dtype=torch.int32)
        batches.append({"input_ids": inputs, "seq_lens": seq_lens, "labels": labels, "real": int(real.sum()),
                        "num_masked": int((labels != IGNORE_INDEX).sum())})  # known on the host: no sync
    return batches


def padded_batches(docs, batch: int, args: ModelArgs, g) -> list[dict]:
    """One document per row, padded to the longest row of the batch, with a 2-D attention mask."""
    batches = []
    for i in range(0, len(docs) - batch + 1, batch):
        chunk = docs[i : i + batch]
        width = max(len(d) for d in chunk)
        ids = torch.full((batch, width), args.pad_token_id)
        real = torch.zeros((batch, width), dtype=torch.bool)
        for j, d in enumerate(chunk):
            ids[j, : len(d)], real[j, : len(d)] = d, True
        inputs, labels = mlm_mask(ids, real, args, g)
        batches.append({"input_ids": inputs, "attention_mask": real.long(), "labels": labels, "real": int(real.sum())})
    return batches


def hf_model(args: ModelArgs, device: torch.device):
    from transformers import ModernBertForMaskedLM

    from training.export import hf_config

    config = hf_config(args)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return ModernBertForMaskedLM(config).to(device)


def our_model(args: ModelArgs, device: torch.device, compile: bool, fsdp: bool) -> ModernBertMLM:
    from training.parallelize import parallelize_model

    torch.manual_seed(0)
    if not fsdp:
        model = ModernBertMLM(args).to(device)
        model.init_weights()
        if compile:
            parallelize_model(model, args, device.type, None, compile=True)
        return model
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device.index or 0)
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29561")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    mesh = init_device_mesh(device.type, (1,))
    with torch.device("meta"):
        model = ModernBertMLM(args)
    mp = "bf16" if device.type == "cuda" else "fp32"  # bf16 matmuls on a CPU only slow the check down
    parallelize_model(model, args, device.type, mesh, compile=compile, mp=mp, reshard_after_forward=False)
    model.to_empty(device=device)
    model.init_weights()
    return model


def time_steps(step, batches: list[dict], warmup: int, steps: int, device: torch.device) -> dict:
    """Run warmup + steps training steps over the batches (cycled); time only the last `steps`."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(warmup):
        step(batches[i % len(batches)])
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tokens, losses = 0, []
    start = time.perf_counter()
    for i in range(steps):
        b = batches[(warmup + i) % len(batches)]
        losses.append(step(b))
        tokens += b["real"]
    sync()
    seconds = time.perf_counter() - start
    return {
        "tokens_per_s": tokens / seconds,
        "step_s": seconds / steps,
        "real_tokens_per_step": tokens / steps,
        "final_loss": float(losses[-1]),
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }


def make_step(model, optimizer, kind: str, autocast: bool, device: torch.device):
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if autocast else contextlib.nullcontext

    def step(b: dict) -> torch.Tensor:
        with amp():
            if kind == "hf":
                out = model(input_ids=b["input_ids"], attention_mask=b.get("attention_mask"), labels=b["labels"])
            else:
                out = model(b["input_ids"], b["seq_lens"], b["labels"], num_masked=b["num_masked"])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.loss.detach()

    return step


KERNEL_GROUPS = {  # substring of a kernel name -> where the time goes
    "attention (flex / sdpa)": ("flex", "attention", "fmha", "flash"),
    "matmul (GEMM)": ("gemm", "cutlass", "sm90_xmma", "nvjet", "cublas", "matmul"),
    "optimizer (AdamW)": ("adam", "multi_tensor", "foreach"),
    "communication (NCCL)": ("nccl",),
    "cross-entropy / softmax": ("softmax", "nll", "log_softmax", "cross_entropy"),
}


OTHER = "other (elementwise, norms, copies)"


def profile_steps(step, batches: list[dict], device: torch.device, out: Path, n: int = 3) -> dict:
    """torch.profiler over n more steps: a top-kernel table (file) and device time grouped by kind."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(n):
            step(batches[i % len(batches)])
        if device.type == "cuda":
            torch.cuda.synchronize()
    events = prof.key_averages()
    sort_key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    try:
        table = events.table(sort_by=sort_key, row_limit=30)
    except (AttributeError, KeyError):
        table = events.table(sort_by="self_device_time_total", row_limit=30)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}_profile.txt").write_text(table)
    groups: dict[str, float] = {}
    total = 0.0
    for evt in events:
        us = getattr(evt, "self_device_time_total", None)
        if us is None:
            us = getattr(evt, "self_cuda_time_total", 0.0)
        if not us or evt.device_type.name not in ("CUDA", "PrivateUse1"):
            continue
        name = evt.key.lower()
        group = next((g for g, keys in KERNEL_GROUPS.items() if any(k in name for k in keys)), OTHER)
        groups[group] = groups.get(group, 0.0) + us
        total += us
    return {
        "device_ms_per_step": total / n / 1000,
        "share": {g: round(v / total, 4) for g, v in sorted(groups.items(), key=lambda kv: -kv[1])} if total else {},
    }


def to_device(batches: list[dict], device: torch.device) -> list[dict]:
    return [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]


def run_mode(mode: str, args: ModelArgs, data: dict, opts, device: torch.device) -> dict:
    cuda = device.type == "cuda"
    if mode.startswith("hf"):
        model, kind, autocast = hf_model(args, device), "hf", cuda
        batches = data["padded" if mode == "hf_padded" else "packed_nomask"]
    else:
        backend = "flex" if mode == "ours_flex" or (mode == "ours_fsdp" and cuda) else "sdpa"
        margs = model_args(opts.preset, **{**opts.overrides, "attention_backend": backend})
        fsdp = mode == "ours_fsdp"
        model = our_model(margs, device, compile=cuda and backend == "flex" and not opts.no_compile, fsdp=fsdp)
        kind, autocast = "ours", cuda and not fsdp  # FSDP2's MixedPrecisionPolicy casts instead
        batches = data["packed"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=8e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-5,
                                  fused=cuda)
    start = time.perf_counter()
    step = make_step(model, optimizer, kind, autocast, device)
    result = time_steps(step, batches, opts.warmup, opts.steps, device)
    result["wall_s_incl_warmup"] = time.perf_counter() - start
    if mode == opts.profile:
        result["profile"] = profile_steps(step, batches, device, opts.out)
    del model, optimizer
    if cuda:
        torch.cuda.empty_cache()
    return result


def build_data(args: ModelArgs, opts, device: torch.device) -> dict:
    n_batches = min(opts.warmup + opts.steps, 8)  # cycled; enough variety without huge memory
    g = torch.Generator().manual_seed(1)
    docs = sample_documents(n_batches * opts.batch * opts.seq_len, opts.seq_len, args.vocab_size, args, 0)
    packed = packed_batches(docs, opts.batch, opts.seq_len, args, g)[:n_batches]
    nomask = [{**b, "seq_lens": None} for b in packed]
    for b in nomask:  # HF on packed rows: no mask, positions 0..L-1 across documents
        b.pop("seq_lens")
    padded = padded_batches(docs, opts.batch, args, g)[:n_batches]
    return {
        "packed": to_device(packed, device),
        "packed_nomask": to_device(nomask, device),
        "padded": to_device(padded, device),
        "mean_doc_len": sum(len(d) for d in docs) / len(docs),
    }


def write_results(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# Training throughput ({results['device']}, preset {results['preset']}, "
        f"{results['batch']} x {results['seq_len']}, {results['dtype']})",
        "",
        f"Real (non-pad) tokens/s over {results['steps']} timed steps after {results['warmup']} warm-up steps, "
        f"AdamW step included; mean document length {results['mean_doc_len']:.0f} tokens.",
        "",
        "| mode | real tokens/s | vs hf_padded | step ms | MFU | peak GiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    base = results["modes"].get("hf_padded", {}).get("tokens_per_s")
    for mode, r in results["modes"].items():
        if "error" in r:
            lines.append(f"| {mode} | failed: {r['error'][:80]} | | | | |")
            continue
        ratio = f"{r['tokens_per_s'] / base:.2f}x" if base else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "-"
        mem = f"{r['peak_mem_gib']:.1f}" if r.get("peak_mem_gib") is not None else "-"
        lines.append(f"| {mode} | {r['tokens_per_s']:,.0f} | {ratio} | {1000 * r['step_s']:.0f} | {mfu} | {mem} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--preset", default=None, help="model preset (tiny on CPU, base on CUDA)")
    p.add_argument("--seq-len", type=int, default=None, help="row length (128 on CPU, 1024 on CUDA)")
    p.add_argument("--batch", type=int, default=None, help="rows per step (8 on CPU, 32 on CUDA)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (5 on CPU, 10 on CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (2 on CPU, 4 on CUDA)")
    p.add_argument("--modes", default=None, help="comma-separated modes (default: all for the device)")
    p.add_argument("--no-compile", action="store_true", help="run our CUDA modes eagerly")
    p.add_argument("--profile", default=None, help="mode to profile for 3 more steps (writes <out>_profile.txt)")
    p.add_argument("--out", default=None, help="results path without suffix")
    opts = p.parse_args(argv)
    cuda = opts.device == "cuda"
    opts.preset = opts.preset or ("base" if cuda else "tiny")
    opts.seq_len = opts.seq_len or (1024 if cuda else 128)
    opts.batch = opts.batch or (32 if cuda else 8)
    opts.steps = opts.steps or (10 if cuda else 5)
    opts.warmup = opts.warmup if opts.warmup is not None else (4 if cuda else 2)
    default_modes = "hf_padded,hf_packed_nomask,ours_flex,ours_fsdp,ours_sdpa" if cuda else \
        "hf_padded,hf_packed_nomask,ours_sdpa"
    opts.modes = (opts.modes or default_modes).split(",")
    opts.overrides = {"max_seq_len": max(opts.seq_len, 1024)}
    root = Path(__file__).resolve().parent / "results"
    opts.out = Path(opts.out) if opts.out else root / f"train_throughput_{'gpu' if cuda else 'cpu'}"
    return opts


def main(argv=None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    opts = parse_args(argv)
    device = torch.device(opts.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch._dynamo.config.cache_size_limit = 32  # global/local/first-layer variants in several modes
    args = model_args(opts.preset, **opts.overrides)
    device_name, peak = device_peak_flops(device)
    fpt = flops_per_token(args, opts.seq_len, masked_fraction=MASK_RATE)
    data = build_data(args, opts, device)
    results = {
        "device": device_name, "peak_flops": peak, "preset": opts.preset, "model_args": asdict(args),
        "params": None, "seq_len": opts.seq_len, "batch": opts.batch, "steps": opts.steps,
        "warmup": opts.warmup, "dtype": "bf16" if device.type == "cuda" else "fp32",
        "flops_per_token": fpt, "mask_rate": MASK_RATE, "mean_doc_len": data["mean_doc_len"],
        "torch": torch.__version__, "modes": {},
    }
    with torch.device("meta"):
        results["params"] = ModernBertMLM(args).num_params()
    for mode in opts.modes:
        logger.info("mode %s ...", mode)
        try:
            r = run_mode(mode, args, data, opts, device)
            r["mfu"] = r["tokens_per_s"] * fpt / peak if peak else None
        except Exception as exc:  # a failed mode is reported, the others still run
            logger.exception("mode %s failed", mode)
            r = {"error": f"{type(exc).__name__}: {exc}"}
        results["modes"][mode] = r
        logger.info("mode %s: %s", mode, r)
        write_results(results, opts.out)  # after every mode, so a time-out still leaves numbers
    base = results["modes"].get("hf_padded", {}).get("tokens_per_s")
    for r in results["modes"].values():
        if base and "tokens_per_s" in r:
            r["ratio_vs_hf_padded"] = r["tokens_per_s"] / base
    write_results(results, opts.out)
    print(opts.out.with_suffix(".md").read_text())
    return results


if __name__ == "__main__":
    main()
