"""Tokenization throughput: the Ray Data pack job vs a plain loop over HF tokenizers' `encode_batch`.

Same texts, same tokenizer, same run. The texts are the WCXB dev reference texts (`main_content`),
repeated `--repeat` times as distinct documents. Reported in content tokens/s (document tokens, no
[CLS]/[SEP]/[PAD]), wall time:
- `hf_encode_batch`: one process, `Tokenizer.encode_batch` over batches (HF's own Rayon threads);
- `ray_pack_job_cold`: the whole `ray_jobs.tokenize.pack` (one task per fragment reads, encodes and packs
  it; one task per shard gathers, shuffles and writes it), its first run: worker processes starting;
- `ray_pack_job`: the same again, warm workers.
Tokenizing is no separate stage of the job any more, so it is not timed alone. Ray start-up is timed on
its own, outside the ratios. The corpus at scale (10M-100M tokens, memory): `bench.tokenize_scale`.

    python -m bench.tokenize_bench                # 847 pages once, vocab 8192 (a minute or two)
    python -m bench.tokenize_bench --repeat 10 --vocab-size 50368
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from infra.core.paths import PROJECT_ROOT, shared_data_dir
from training.tokenizer import load_tokenizer, train_tokenizer

RESULTS = PROJECT_ROOT / "bench" / "results"


def load_texts(repeat: int) -> list[str]:
    truth = shared_data_dir() / "pages" / "wcxb-dev" / "ground-truth"
    texts = [json.loads(p.read_text())["ground_truth"].get("main_content") or "" for p in sorted(truth.glob("*.json"))]
    if not texts:
        raise SystemExit(f"no WCXB texts under {truth}")
    return [t for t in texts if t.strip()] * repeat


def hf_encode_batch(tokenizer_dir: Path, texts: list[str], batch_size: int) -> tuple[int, float]:
    backend = load_tokenizer(tokenizer_dir).backend_tokenizer
    start, tokens = time.perf_counter(), 0
    for i in range(0, len(texts), batch_size):
        tokens += sum(len(e.ids) for e in backend.encode_batch(texts[i : i + batch_size], add_special_tokens=False))
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="Copies of the 847 WCXB texts.")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count())
    args = parser.parse_args()

    import ray

    from infra.core.config import RayConfig
    from ray_jobs.runtime import init_ray
    from ray_jobs.tokenize import pack

    texts = load_texts(args.repeat)
    work = Path(tempfile.mkdtemp(prefix="tokenize-bench-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for part in range(4):  # four files (four fragments), so the pack job encodes them in parallel
        chunk = texts[part::4]
        rows = {"doc_id": [f"doc-{part}-{i}" for i in range(len(chunk))], "text": chunk}
        pq.write_table(pa.table(rows), corpus / f"part-{part:05d}.parquet")
    tokenizer_dir = train_tokenizer(texts[:2000], work / "tokenizer", vocab_size=args.vocab_size)

    ref_tokens, ref_seconds = hf_encode_batch(tokenizer_dir, texts, args.batch_size)
    started = time.perf_counter()
    init_ray(RayConfig(num_cpus=args.num_cpus, dashboard_port=8299, metrics_export_port=8199))
    ray_start = time.perf_counter() - started

    timings, pack_tokens = [], 0
    for run in range(2):  # the first run also starts Ray's worker processes (cold)
        started = time.perf_counter()
        manifest = pack([("bench", corpus, 1.0)], tokenizer_dir, args.seq_len, work / f"tokens-{run}",
                        validation_fraction=0.0, batch_size=args.batch_size)
        timings.append(time.perf_counter() - started)
        pack_tokens = manifest["sources"]["bench"]["packed"]["train"]["content_tokens"]
        skipped = manifest["sources"]["bench"]["documents_skipped"]
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    # the pack job encodes the same texts; it only leaves out documents under 3 tokens (counted as too_short)
    assert pack_tokens <= ref_tokens and (pack_tokens == ref_tokens or skipped), (ref_tokens, pack_tokens)

    rows = {
        "hf_encode_batch": (ref_tokens, ref_seconds),
        "ray_pack_job_cold": (pack_tokens, timings[0]),
        "ray_pack_job": (pack_tokens, timings[1]),
    }
    reference = ref_tokens / ref_seconds
    result = {
        "documents": len(texts),
        "content_tokens": ref_tokens,
        "vocab_size": args.vocab_size,
        "seq_len": args.seq_len,
        "ray_num_cpus": args.num_cpus,
        "ray_start_seconds": round(ray_start, 2),
        "load_average_1m": os.getloadavg()[0],
        "methods": {
            name: {"seconds": round(s, 3), "tokens_per_s": round(n / s),
                   "vs_hf_encode_batch": round(n / s / reference, 3)}
            for name, (n, s) in rows.items()
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tokenize.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# Tokenization throughput ({len(texts)} WCXB texts, {ref_tokens:,} tokens, vocab {args.vocab_size})",
        "",
        f"Wall time on this machine ({os.cpu_count()} cores, load average {result['load_average_1m']:.1f} "
        f"at the end: shared with other jobs); Ray start-up {ray_start:.1f} s not included.",
        "",
        "| method | seconds | tokens/s | vs hf_encode_batch |",
        "| --- | --- | --- | --- |",
    ]
    for name, m in result["methods"].items():
        lines.append(f"| {name} | {m['seconds']} | {m['tokens_per_s']:,} | {m['vs_hf_encode_batch']:.2f}x |")
    (RESULTS / "tokenize.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
