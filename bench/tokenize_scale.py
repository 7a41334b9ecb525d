"""Tokenize + pack at corpus scale: time, driver memory and whole-tree memory at 10M / 30M / 100M tokens.

The corpus is generated from real text (wikitext-2 valid/test lines, WDC offer titles, WCXB main_content
paragraphs): each document samples paragraphs with a seeded RNG until it has 300-800 words, so documents are
distinct. They are written as Parquet files (`--docs-per-file` documents, row groups of `--docs-per-row-group`),
once per size and seed, in `--work-dir` (reused by later runs; generation is never timed). One tokenizer
(vocab 32768) is trained on the paragraph pool once and reused.

At every size, in the same run:
- `plain`: one process (spawned, so the driver stays clean) reads the same Parquet files in batches and calls
  `Tokenizer.encode_batch` (HF's own Rayon threads): the reference tokens/s;
- `pack`: `ray_jobs.tokenize.pack` on the same files into a fresh folder, Ray started once beforehand with
  `init_ray` (a 1 GiB object store); while it runs, the driver's RSS is sampled every 0.2 s and the PSS of the
  driver + every Ray process (the driver's descendants: GCS, raylet, dashboard and its agents, workers; and any
  process whose command line names this Ray session's folder) every 2 s; the peaks are kept. The sampling
  threads' own CPU time is left out of the driver's (reading every process's smaps is not the job's work).
Throughput is content tokens/s (document tokens without [CLS]/[SEP]/[PAD]). Both sides get the same
`RAYON_NUM_THREADS` and `TOKENIZERS_PARALLELISM`. Ray's start-up and a warm-up pack (worker processes
starting) are timed on their own, outside the ratios. A cProfile of `pack_fragment` on one fragment, run in
a spawned process without Ray, says where a task's time goes.

    python -m bench.tokenize_scale --sizes 10M,30M,100M
    python -m bench.tokenize_scale --sizes 30M --append    # keep the rows of other sizes already written
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray  # before psutil: Ray ships psutil in ray/thirdparty_files and puts it on sys.path

# isort: split
import psutil

from infra.core.paths import PROJECT_ROOT, shared_data_dir

RESULTS = PROJECT_ROOT / "bench" / "results"
MIN_WORDS, MAX_WORDS = 300, 800
GiB = 1024**3
RAY_MARKERS = ("ray::", "raylet", "gcs_server", "dashboard", "ray/_private", "ray/dashboard")


def parse_size(text: str) -> int:
    """'10M' -> 10_000_000 (k, M, G suffixes; plain integers too)."""
    text = text.strip()
    scale = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not a token count like 10M") from None
    if value < 10**5:
        raise argparse.ArgumentTypeError(f"size {text!r} is under 100k tokens")
    return int(value)


def size_label(tokens: int) -> str:
    return f"{tokens / 10**6:g}M"


# --- the corpus -----------------------------------------------------------------------------------------------------


def paragraph_pool() -> list[str]:
    """Real paragraphs: wikitext-2 valid/test lines, WDC offers (each offer of a pair), WCXB main_content."""
    data = shared_data_dir()
    pool: list[str] = []
    for name in ("valid.txt", "test.txt"):
        for line in (data / "text" / "wikitext-2" / name).read_text().splitlines():
            line = line.strip()
            if len(line.split()) >= 8 and not line.startswith("="):  # skip headings and blank lines
                pool.append(line)
    for path in sorted((data / "text" / "wdc-offers").glob("*-train.txt*")):
        for line in path.read_text().splitlines():
            for offer in line.split("\t")[:2]:  # two offers, then the match label
                offer = offer.replace("COL title VAL", "").strip()
                if len(offer.split()) >= 4:
                    pool.append(offer)
    truth = data / "pages" / "wcxb-dev" / "ground-truth"
    for path in sorted(truth.glob("*.json")):
        text = json.loads(path.read_text())["ground_truth"].get("main_content") or ""
        pool += [p.strip() for p in text.split("\n") if len(p.split()) >= 4]
    if not pool:
        raise SystemExit(f"no text under {data}")
    return pool


def make_documents(pool: list[str], words: np.ndarray, rng: np.random.Generator, n: int) -> list[str]:
    """n documents, each of random paragraphs until it has 300-800 words (its target drawn uniformly)."""
    docs = []
    for target in rng.integers(MIN_WORDS, MAX_WORDS + 1, n):
        picks, total = [], 0
        while total < target:
            i = int(rng.integers(len(pool)))
            picks.append(pool[i])
            total += int(words[i])
        docs.append("\n\n".join(picks))
    return docs


def generate_corpus(folder: Path, target_tokens: int, tokens_per_word: float, pool: list[str], seed: int,
                    docs_per_file: int, docs_per_row_group: int) -> None:
    """About `target_tokens` tokens of documents as Parquet files (doc_id, text), unless already there.

    Written beside `folder` and renamed at the end, so an interrupted run never leaves a partial corpus.
    """
    if folder.exists():
        return
    words = np.array([len(p.split()) for p in pool])
    rng = np.random.default_rng(seed)
    n_docs = int(target_tokens / (tokens_per_word * (MIN_WORDS + MAX_WORDS) / 2 * 1.06))  # paragraphs overshoot
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.perf_counter()
    for part, start in enumerate(range(0, n_docs, docs_per_file)):
        n = min(docs_per_file, n_docs - start)
        table = pa.table({"doc_id": [f"s{seed}-d{start + i:08d}" for i in range(n)],
                          "text": make_documents(pool, words, rng, n)})
        pq.write_table(table, staging / f"part-{part:05d}.parquet", row_group_size=docs_per_row_group,
                       compression="zstd")
    staging.rename(folder)
    print(f"generated {n_docs:,} documents into {folder} in {time.perf_counter() - started:.0f} s", flush=True)


def corpus_files(folder: Path) -> list[str]:
    return [str(p) for p in sorted(folder.glob("*.parquet"))]


# --- the reference: a plain encode_batch loop -------------------------------------------------------------------


def plain_encode_batch(files: list[str], tokenizer_json: str, batch_size: int) -> tuple[int, int, float, float]:
    """(documents, tokens, seconds, CPU seconds of all its threads) of one process reading the files in batches
    and encoding them."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    started, cpu, docs, tokens = time.perf_counter(), time.process_time(), 0, 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=["text"]):
            texts = batch.column(0).to_pylist()
            docs += len(texts)
            tokens += sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    return docs, tokens, time.perf_counter() - started, time.process_time() - cpu


def in_subprocess(fn, *args):
    """`fn(*args)` in a fresh spawned process: its memory never counts against the driver's."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


# --- memory --------------------------------------------------------------------------------------------------------


class PeakMemory:
    """Peak driver RSS (every 0.2 s) and peak PSS summed over the driver and Ray's processes (every 2 s).

    Ray's processes are this process's descendants (a local cluster's GCS, raylet, dashboard and agents are
    started by the driver, the workers by the raylet) plus any process whose command line names the session
    folder; other Ray clusters on a shared machine are not counted.
    """

    def __init__(self, session_dir: str) -> None:
        self.session_dir = session_dir
        self.me = psutil.Process()
        self.driver_rss = self.tree_pss = self.processes_at_peak = 0
        self.kinds_at_peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(0.2, self._sample_rss), daemon=True),
                         threading.Thread(target=self._loop, args=(2.0, self._sample_pss), daemon=True)]
        self.sampler_cpu = 0.0  # CPU seconds the sampling threads used (left out of the driver's)

    def ray_processes(self) -> list[psutil.Process]:
        found = {self.me.pid: self.me}
        for child in self.me.children(recursive=True):
            found[child.pid] = child
        for proc in psutil.process_iter(["cmdline"]):
            if self.session_dir in " ".join(proc.info["cmdline"] or []):
                found[proc.pid] = proc
        return list(found.values())

    @staticmethod
    def kind(proc: psutil.Process) -> str:
        try:
            line = " ".join(proc.cmdline())
        except psutil.Error:
            return "gone"
        if line.startswith("ray::"):
            return line.split()[0]
        for marker in RAY_MARKERS[1:]:
            if marker in line:
                return marker.rsplit("/", 1)[-1]
        return "other"

    def _sample_rss(self) -> None:
        self.driver_rss = max(self.driver_rss, self.me.memory_info().rss)

    def _sample_pss(self) -> None:
        total, procs = 0, self.ray_processes()
        for proc in procs:
            try:
                total += proc.memory_full_info().pss
            except psutil.Error:  # ended meanwhile
                pass
        if total > self.tree_pss:
            self.tree_pss, self.processes_at_peak = total, len(procs)
            kinds: dict[str, int] = {}
            for proc in procs:
                kinds[self.kind(proc)] = kinds.get(self.kind(proc), 0) + 1
            self.kinds_at_peak = kinds

    def _loop(self, every: float, sample) -> None:
        while not self._stop.wait(every):
            started = time.thread_time()
            sample()
            self.sampler_cpu += time.thread_time() - started

    def cpu_by_kind(self) -> dict[int, tuple[str, float]]:
        """pid -> (kind, user + system CPU seconds so far) of the driver and Ray's processes."""
        out = {}
        for proc in self.ray_processes():
            try:
                times = proc.cpu_times()
                kind = "driver" if proc.pid == self.me.pid else self.kind(proc)
                out[proc.pid] = (kind, times.user + times.system)
            except psutil.Error:
                pass
        return out

    def cpu_used(self) -> dict[str, float]:
        """CPU seconds each kind of process used since `__enter__` (a process started meanwhile: all of it)."""
        used: dict[str, float] = {}
        for pid, (kind, seconds) in self.cpu_by_kind().items():
            kind = "workers" if kind in ("ray::IDLE", "ray::Map(_in_task)") else kind
            used[kind] = used.get(kind, 0.0) + seconds - self._cpu_start.get(pid, (kind, 0.0))[1]
        used["driver"] = used.get("driver", 0.0) - self.sampler_cpu
        return used

    def __enter__(self) -> PeakMemory:
        self.driver_rss_before = self.me.memory_info().rss
        self._cpu_start = self.cpu_by_kind()
        self._sample_rss()
        self._sample_pss()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._sample_rss()


# --- the pack job --------------------------------------------------------------------------------------------------


def timed_passes(module, phases: dict[str, float]):
    """Wrap the job's `_run_tasks` (its Ray Data passes) so each pass's wall time lands in `phases`.

    Timing only: the job runs its own code; the rest of `pack` (listing fragments, planning, the manifest)
    is what is left of the total."""
    run_tasks = module._run_tasks

    def timed(items, fn, desc, *args, **kwargs):
        started = time.perf_counter()
        try:
            return run_tasks(items, fn, desc, *args, **kwargs)
        finally:
            phases[desc] = phases.get(desc, 0.0) + time.perf_counter() - started

    return timed


def run_pack(corpus: Path, tokenizer_dir: Path, output: Path, args: argparse.Namespace, session_dir: str) -> dict:
    import ray_jobs.tokenize as job

    shutil.rmtree(output, ignore_errors=True)
    phases: dict[str, float] = {}
    original, job._run_tasks = job._run_tasks, timed_passes(job, phases)
    try:
        with PeakMemory(session_dir) as memory:
            started = time.perf_counter()
            manifest = job.pack([("bench", corpus, 1.0)], tokenizer_dir, args.seq_len, output, seed=0,
                                validation_fraction=args.validation_fraction, batch_size=args.batch_size)
            seconds = time.perf_counter() - started
            cpu = memory.cpu_used()
    finally:
        job._run_tasks = original
    phases["driver_rest"] = seconds - sum(phases.values())
    packed = manifest["sources"]["bench"]["packed"]
    shutil.rmtree(output, ignore_errors=True)  # disk: only the numbers are kept
    return {
        "seconds": seconds,
        "phase_seconds": {k: round(v, 2) for k, v in phases.items()},
        "cpu_seconds": round(sum(cpu.values()), 2),
        "cpu_seconds_by_kind": {k: round(v, 2) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.05},
        "documents_in": manifest["sources"]["bench"]["documents_in"],
        "content_tokens": packed["train"]["content_tokens"] + packed["validation"]["content_tokens"],
        "fragments": manifest["fragments"]["bench"],
        "sequences": {split: manifest["splits"][split]["sequences"] for split in ("train", "validation")},
        "shard_files": sum(len(manifest["splits"][s]["files"]) for s in ("train", "validation")),
        "driver_rss_before_mb": round(memory.driver_rss_before / 2**20, 1),
        "driver_peak_rss_mb": round(memory.driver_rss / 2**20, 1),
        "tree_peak_pss_mb": round(memory.tree_pss / 2**20, 1),
        "processes_at_pss_peak": memory.processes_at_peak,
        "process_kinds_at_pss_peak": memory.kinds_at_peak,
    }


def profile_fragment(corpus: Path, tokenizer_dir: Path, args: argparse.Namespace, work: Path) -> dict:
    """cProfile of `pack_fragment` on the corpus's first fragment, without Ray (a task's own time)."""
    from ray_jobs.tokenize import _backend, corpus_fragments, pack_fragment
    from training.tokenizer import boundary_token_ids, load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    tokenizer_json = tok.backend_tokenizer.to_str()
    fragment = corpus_fragments("bench", str(corpus))[0]
    kwargs = {"tokenizer_json": tokenizer_json, "ids": boundary_token_ids(tok), "seq_len": args.seq_len,
              "validation_fraction": args.validation_fraction, "batch_size": args.batch_size,
              "work_dir": str(work / "profile")}
    _backend.cache_clear()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    result = pack_fragment(fragment, **kwargs)
    profiler.disable()
    seconds = time.perf_counter() - started
    shutil.rmtree(work / "profile", ignore_errors=True)
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # tottime of every function
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:14]
    rows = [{"function": f"{Path(file).name}:{line}({name})", "calls": v[1], "tottime_s": round(v[2], 3),
             "cumtime_s": round(v[3], 3), "share": round(v[2] / total, 3)} for (file, line, name), v in top]
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(18)
    tokens = sum(json.loads(result[f"{s}_stats"])["content_tokens"] for s in ("train", "validation"))
    return {"fragment": {"path": Path(fragment["path"]).name, "row_group": fragment["row_group"],
                         "documents": result["documents_in"], "content_tokens": tokens},
            "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds), "by_tottime": rows,
            "stages": stage_times(fragment, kwargs), "cumulative_text": text.getvalue()}


def stage_times(fragment: dict, kwargs: dict) -> dict[str, float]:
    """Wall seconds of each step of `pack_fragment`, redone step by step from the job's own pieces.

    cProfile cannot see into pyarrow's Cython calls (their time lands on the caller), so the steps are
    timed here: read the row group; `encode_batch` alone; the rest of `tokenize_batch` (ids to Arrow, doc
    hashes, split); slicing rows and `SequencePacker.add`; building and writing the fragment's Parquet.
    """
    from ray_jobs.tokenize import _backend, _sequences_table, read_fragment, tokenize_batch
    from training.data import SequencePacker

    batch_size, ids, seq_len = kwargs["batch_size"], kwargs["ids"], kwargs["seq_len"]
    times = dict.fromkeys(["read", "encode_batch", "tokenize_batch_rest", "pack_loop", "write"], 0.0)
    clock = time.perf_counter()
    table = read_fragment(fragment)
    times["read"] = time.perf_counter() - clock
    backend = _backend(kwargs["tokenizer_json"])
    packer = SequencePacker(seq_len, ids["cls"], ids["sep"], ids["pad"])
    sequences = []
    for start in range(0, table.num_rows, batch_size):
        batch = table.slice(start, batch_size)
        clock = time.perf_counter()
        backend.encode_batch(batch.column("text").to_pylist(), add_special_tokens=False)
        encoded = time.perf_counter()
        tokens = tokenize_batch(batch, kwargs["tokenizer_json"], kwargs["validation_fraction"], "bench")
        times["encode_batch"] += encoded - clock
        times["tokenize_batch_rest"] += max(time.perf_counter() - encoded - (encoded - clock), 0.0)
        clock = time.perf_counter()
        token_ids = tokens.column("token_ids").combine_chunks()
        offsets, values = token_ids.offsets.to_numpy(), token_ids.values.to_numpy()
        for i, doc_id in enumerate(tokens.column("doc_id").to_pylist()):
            sequences += packer.add(doc_id, values[offsets[i]:offsets[i + 1]])
        times["pack_loop"] += time.perf_counter() - clock
    sequences += packer.finish()
    clock = time.perf_counter()
    out = Path(kwargs["work_dir"]) / "stage-times.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_sequences_table(sequences, seq_len), out, compression="zstd")
    times["write"] = time.perf_counter() - clock
    shutil.rmtree(out.parent, ignore_errors=True)
    return {k: round(v, 3) for k, v in times.items()}


# --- results -------------------------------------------------------------------------------------------------------


def linear_fit(rows: list[dict]) -> dict | None:
    if len(rows) < 2:
        return None
    x = np.array([r["content_tokens"] for r in rows], dtype=float)
    y = np.array([r["pack_seconds"] for r in rows], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    r2 = 1 - float((residual**2).sum()) / max(float(((y - y.mean()) ** 2).sum()), 1e-12)
    return {"seconds_per_million_tokens": round(slope * 1e6, 3), "intercept_s": round(intercept, 2),
            "r2": round(r2, 4)}


def plot(rows: list[dict], fit: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens = np.array([r["content_tokens"] for r in rows]) / 1e6
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(tokens, [r["pack_seconds"] for r in rows], "o", label="pack (Ray Data)")
    left.plot(tokens, [r["plain_seconds"] for r in rows], "s", label="plain encode_batch loop")
    if fit:
        xs = np.linspace(0, tokens.max() * 1.05, 50)
        left.plot(xs, fit["seconds_per_million_tokens"] * xs + fit["intercept_s"], "--",
                  label=f"pack fit: {fit['seconds_per_million_tokens']:.2f} s/M tokens (R²={fit['r2']:.3f})")
    left.set_xlabel("content tokens (millions)")
    left.set_ylabel("seconds")
    left.set_title("time vs corpus size")
    left.legend(fontsize=8)
    right.plot(tokens, [r["driver_peak_rss_mb"] for r in rows], "o-", label="driver peak RSS")
    right.plot(tokens, [r["tree_peak_pss_mb"] for r in rows], "s-", label="driver + Ray peak PSS")
    right.axhline(4096, ls=":", c="red", label="4 GiB limit")
    right.set_xlabel("content tokens (millions)")
    right.set_ylabel("MiB")
    right.set_ylim(bottom=0)
    right.set_title("memory vs corpus size")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(result: dict, name: str = "tokenize_scale") -> None:
    rows, fit = result["sizes"], result["linear_fit"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    plot(rows, fit, RESULTS / f"{name}.png")
    env = result["environment"]
    lines = [
        "# Tokenize + pack at corpus scale",
        "",
        f"Generated corpus (wikitext-2, WDC offers, WCXB main_content paragraphs; {MIN_WORDS}-{MAX_WORDS} words "
        f"per document, row groups of {result['docs_per_row_group']} documents), vocab {result['vocab_size']}, "
        f"seq_len {result['seq_len']}, batch {result['batch_size']}, validation fraction "
        f"{result['validation_fraction']}. Machine: {env['cpus']} cores shared with other jobs; Ray num_cpus "
        f"{env['ray_num_cpus']}, object store {env['object_store_gib']} GiB; RAYON_NUM_THREADS="
        f"{env['RAYON_NUM_THREADS']} (Ray workers: {env.get('worker_RAYON_NUM_THREADS', env['RAYON_NUM_THREADS'])}), "
        f"TOKENIZERS_PARALLELISM={env['TOKENIZERS_PARALLELISM']}. "
        f"Ray start-up {env['ray_start_s']} s and a warm-up pack {env['warmup_pack_s']} s are not included.",
        "",
        "| size | documents | content tokens | fragments | plain s | plain tokens/s | pack s | pack tokens/s "
        "| ratio vs encode_batch | driver peak RSS MiB (at start) | tree peak PSS MiB | load 1m (before/after) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['documents']:,} | {r['content_tokens']:,} | {r['fragments']} | "
            f"{r['plain_seconds']:.1f} | {r['plain_tokens_per_s']:,} | {r['pack_seconds']:.1f} | "
            f"{r['pack_tokens_per_s']:,} | {r['ratio_vs_encode_batch']:.2f}x | {r['driver_peak_rss_mb']:.0f} "
            f"({r.get('driver_rss_before_mb', float('nan')):.0f}) | "
            f"{r['tree_peak_pss_mb']:.0f} | {r['load_before']:.1f}/{r['load_after']:.1f} |")
    timed = [r for r in rows if r.get("phase_seconds")]
    if timed:
        names = list(timed[0]["phase_seconds"])
        lines += ["", "Pack seconds by pass (the job's Ray Data passes, timed around `_run_tasks`; `driver_rest`: "
                      "listing fragments, planning shards, tokenizer and manifest) and the first pass's own ratio "
                      "vs the plain loop:", "",
                  "| size | " + " | ".join(names) + " | tokenize+pack ratio |",
                  "| --- | " + " | ".join("---" for _ in names) + " | --- |"]
        for r in timed:
            first = r["phase_seconds"].get("tokenize+pack")
            ratio = f"{r['content_tokens'] / first / r['plain_tokens_per_s']:.2f}x" if first else "-"
            lines.append(f"| {r['size']} | " + " | ".join(f"{r['phase_seconds'].get(n, 0):.1f}" for n in names)
                         + f" | {ratio} |")
    cpu_rows = [r for r in rows if r.get("cpu_seconds")]
    if cpu_rows:
        lines += ["", "CPU seconds (user + system, all threads; pack: the driver and every Ray process, by kind; "
                      "`workers` are the task processes) and tokens per CPU second, pack / plain:", "",
                  "| size | plain CPU s | pack CPU s | pack CPU s by process | CPU ratio |",
                  "| --- | --- | --- | --- | --- |"]
        for r in cpu_rows:
            kinds = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_seconds_by_kind"].items())
            lines.append(f"| {r['size']} | {r['plain_cpu_seconds']:.1f} | {r['cpu_seconds']:.1f} | {kinds} | "
                         f"{r['cpu_ratio_vs_encode_batch']:.2f}x |")
    if fit:
        lines += ["", f"Linear fit of pack seconds on tokens: {fit['seconds_per_million_tokens']} s per million "
                      f"tokens + {fit['intercept_s']} s, R² = {fit['r2']}."]
    lines += ["", f"![time and memory vs tokens]({name}.png)"]
    prof = result.get("profile")
    if prof:
        f = prof["fragment"]
        lines += ["", f"## Where a fragment task's time goes (cProfile of `pack_fragment`, no Ray, "
                      f"{f['documents']} documents, {f['content_tokens']:,} tokens: {prof['seconds']} s, "
                      f"{prof['tokens_per_s']:,} tokens/s)", "",
                  "| function | calls | tottime s | share |", "| --- | --- | --- | --- |"]
        lines += [f"| `{r['function']}` | {r['calls']} | {r['tottime_s']} | {r['share']:.1%} |"
                  for r in prof["by_tottime"]]
        stages = prof.get("stages", {})
    if prof and stages:
        lines += ["", "The same fragment step by step (wall seconds; `tokenize_batch_rest` = `tokenize_batch` "
                      "minus its `encode_batch`, measured by encoding each batch twice):", "",
                  "| " + " | ".join(stages) + " |", "| " + " | ".join("---" for _ in stages) + " |",
                  "| " + " | ".join(f"{v:.2f}" for v in stages.values()) + " |"]
    if result.get("notes"):
        lines += ["", "## Notes", "", *[f"- {n}" for n in result["notes"]]]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


# --- main ----------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10M,30M,100M", help="Token counts, comma-separated (run smallest first).")
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=512, help="encode_batch size, both sides.")
    parser.add_argument("--validation-fraction", type=float, default=0.05)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count())
    parser.add_argument("--rayon-threads", type=int, default=os.cpu_count(), help="RAYON_NUM_THREADS, both sides.")
    parser.add_argument("--worker-rayon-threads", type=int, default=None,
                        help="RAYON_NUM_THREADS of Ray's workers only (default: unset, so the job's own: 1 per task).")
    parser.add_argument("--results-name", default="tokenize_scale", help="bench/results/<name>.{json,md,png}.")
    parser.add_argument("--object-store-gib", type=float, default=1.0)
    parser.add_argument("--docs-per-file", type=int, default=32768)
    parser.add_argument("--docs-per-row-group", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rexbert-tokenize-scale"),
                        help="Corpora and tokenizer, reused by later runs.")
    parser.add_argument("--append", action="store_true", help="Keep rows of other sizes from the last results.")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="Redraw the .md and .png from the .json.")
    args = parser.parse_args()
    if args.report_only:
        write_results(json.loads((RESULTS / f"{args.results_name}.json").read_text()), args.results_name)
        return
    try:
        sizes = sorted(parse_size(s) for s in args.sizes.split(",") if s.strip())
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))

    os.environ["RAYON_NUM_THREADS"] = str(args.rayon_threads)  # before any tokenizer is built or Ray started
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    from infra.core.config import RayConfig
    from ray_jobs.runtime import init_ray
    from training.tokenizer import load_tokenizer, train_tokenizer

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    pool = paragraph_pool()
    tokenizer_dir = work / f"tokenizer-{args.vocab_size}"
    if not (tokenizer_dir / "tokenizer.json").exists():
        started = time.perf_counter()
        train_tokenizer(pool, tokenizer_dir, vocab_size=args.vocab_size)
        print(f"trained the tokenizer on {len(pool):,} paragraphs in {time.perf_counter() - started:.0f} s")
    tokenizer_json = load_tokenizer(tokenizer_dir).backend_tokenizer.to_str()
    sample = make_documents(pool, np.array([len(p.split()) for p in pool]), np.random.default_rng(99), 200)
    backend = load_tokenizer(tokenizer_dir).backend_tokenizer
    tokens_per_word = sum(len(e.ids) for e in backend.encode_batch(sample)) / sum(len(d.split()) for d in sample)
    corpora = {n: work / f"corpus-{size_label(n)}-seed{args.seed}" for n in sizes}
    for n, folder in corpora.items():
        in_subprocess(generate_corpus, folder, n, tokens_per_word, pool, args.seed, args.docs_per_file,
                      args.docs_per_row_group)  # the driver's memory is measured: nothing of the corpus stays in it

    # The raylet, and so every worker, inherits the environment: by default the workers keep the job's own
    # setting (`ray_jobs.tokenize._backend`: one Rayon thread per one-CPU task), as `rexbert tokenize run` has it.
    if args.worker_rayon_threads:
        os.environ["RAYON_NUM_THREADS"] = str(args.worker_rayon_threads)
    else:
        os.environ.pop("RAYON_NUM_THREADS", None)
    started = time.perf_counter()
    for attempt in range(3):  # Ray gives its raylet 30 s to register: a loaded machine can miss that
        try:
            init_ray(RayConfig(num_cpus=args.num_cpus, dashboard_port=8297, metrics_export_port=8197),
                     object_store_memory=int(args.object_store_gib * GiB))
            break
        except Exception as err:  # noqa: BLE001  (Ray raises a bare Exception for this)
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(err):
                raise
            print(f"Ray start timed out (load {os.getloadavg()[0]:.0f}); retrying", flush=True)
    ray_start = time.perf_counter() - started
    ray.data.DataContext.get_current().enable_progress_bars = False  # as the CLI runs it (quiet console)
    os.environ["RAYON_NUM_THREADS"] = str(args.rayon_threads)  # the plain loop's (spawned after this)
    session_dir = ray._private.worker._global_node.get_session_dir_path()
    warmup = work / "warmup-corpus"
    generate_corpus(warmup, 200_000, tokens_per_word, pool, args.seed + 1, args.docs_per_file, 64)
    warm = run_pack(warmup, tokenizer_dir, work / "tokens-warmup", args, session_dir)

    previous, last = {}, {}
    if args.append and (RESULTS / f"{args.results_name}.json").exists():
        last = json.loads((RESULTS / f"{args.results_name}.json").read_text())
        previous = {r["size"]: r for r in last["sizes"]}
    result = {
        "vocab_size": args.vocab_size, "seq_len": args.seq_len, "batch_size": args.batch_size,
        "validation_fraction": args.validation_fraction, "docs_per_row_group": args.docs_per_row_group,
        "docs_per_file": args.docs_per_file, "tokens_per_word": round(tokens_per_word, 3),
        "environment": {"cpus": os.cpu_count(), "ray_num_cpus": args.num_cpus,
                        "object_store_gib": args.object_store_gib, "RAYON_NUM_THREADS": args.rayon_threads,
                        "worker_RAYON_NUM_THREADS": args.worker_rayon_threads or "1 (the job's own)",
                        "TOKENIZERS_PARALLELISM": "true", "ray_start_s": round(ray_start, 1),
                        "warmup_pack_s": round(warm["seconds"], 1), "ray_version": ray.__version__},
        "sizes": [], "linear_fit": None,
        "notes": [
            "plain: one spawned process, pq.ParquetFile.iter_batches over the same files + encode_batch; "
            "pack: ray_jobs.tokenize.pack end to end (read, encode, pack, write fragments, plan, shuffle, write "
            "shards), Ray already up and warm.",
            "ratio = pack content tokens/s / plain tokens/s (the pack drops no document here: all have >= 3 tokens).",
        ],
    }
    if not args.no_profile:
        result["profile"] = in_subprocess(profile_fragment, corpora[sizes[0]], tokenizer_dir, args, work)
    elif last.get("profile"):
        result["profile"] = last["profile"]
    for n in sizes:
        files = corpus_files(corpora[n])
        load_before = os.getloadavg()[0]
        docs, plain_tokens, plain_seconds, plain_cpu = in_subprocess(plain_encode_batch, files, tokenizer_json,
                                                                     args.batch_size)
        print(f"{size_label(n)} plain: {plain_tokens:,} tokens in {plain_seconds:.1f} s", flush=True)
        packed = run_pack(corpora[n], tokenizer_dir, work / "tokens", args, session_dir)
        if packed["documents_in"] != docs:
            raise AssertionError(f"pack read {packed['documents_in']} documents, the plain loop {docs}")
        row = {"size": size_label(n), "documents": docs, "plain_tokens": plain_tokens,
               "plain_seconds": round(plain_seconds, 2), "plain_tokens_per_s": round(plain_tokens / plain_seconds),
               "plain_cpu_seconds": round(plain_cpu, 2),
               "pack_seconds": round(packed.pop("seconds"), 2), **packed, "load_before": load_before,
               "load_after": os.getloadavg()[0], "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "ray_start_s": round(ray_start, 1), "warmup_pack_s": round(warm["seconds"], 1)}
        row["pack_tokens_per_s"] = round(row["content_tokens"] / row["pack_seconds"])
        row["ratio_vs_encode_batch"] = round(row["pack_tokens_per_s"] / row["plain_tokens_per_s"], 3)
        # tokens per CPU second, pack / plain: what the job costs in CPU, whatever else the machine was running
        row["cpu_ratio_vs_encode_batch"] = round(row["content_tokens"] / row["cpu_seconds"]
                                                 / (plain_tokens / plain_cpu), 3)
        previous[row["size"]] = row
        result["sizes"] = sorted(previous.values(), key=lambda r: r["content_tokens"])
        result["linear_fit"] = linear_fit(result["sizes"])
        write_results(result, args.results_name)  # after every size: a run stopped later keeps what it measured
    ray.shutdown()


if __name__ == "__main__":
    main()
