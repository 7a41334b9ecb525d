"""Ray Data jobs: train the tokenizer from corpora, and pack corpora into mixed training shards.

    run_tokenize(config)   # the tokenizer and every `tokenize.sets` token set, under run.output

    pack([("general", "general/corpus", 0.7), ("ecom", "s3://bucket/ecom/corpus", 0.3)], "tokenizer", 256,
         "tokens/ctx")

writes `tokens/ctx/{train,validation}/part-00000.parquet`, `tokens/ctx/tokenizer/`, `manifest.json`
and `config.resolved.yaml`, all into a staged folder (`infra.core.outputs.staged_output`) that replaces
the previous token set whole, or not at all: a failed repack leaves the old set as it was, and a repack
into fewer shards leaves no stale part file. The tokenizer folder is written the same way.

Corpora, tokenizer and outputs are local paths or URIs (`file://`, `s3://`, `gs://`), read and written
through `infra.core.fs`. Reading and batch tokenization run on Ray Data (`read_parquet` / `read_json` +
`map_batches`); packing then streams the tokenized documents in their input order through
`training.data.SequencePacker` on the driver, so the shards do not depend on how Ray happened to split
the work (same input + seed = same shards, on any cluster). Mixing follows `training.data.plan_mixture`.
Shard columns: see `SHARD_SCHEMA`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
import ray
import xxhash
from tokenizers import Tokenizer
from tqdm import tqdm

from infra.core import fs
from infra.core.config import write_resolved_config
from infra.core.manifest import InputError, StageStats, build_manifest, check_upstream, write_manifest
from infra.core.outputs import check_output, staged_output
from ray_jobs.loader import dataset_paths
from training.data import MIN_DOCUMENT_TOKENS, PackedSequence, SequencePacker, plan_mixture
from training.staging import absolute
from training.tokenizer import boundary_token_ids, load_tokenizer, save_tokenizer, train_tokenizer

PACK_STAGE = "pack"  # the manifests' stages and the outputs' owners: a rerun replaces only its own folder
TOKENIZER_STAGE = "train-tokenizer"
SPLITS = ("train", "validation")
SHARD_SCHEMA = pa.schema(
    [
        ("input_ids", pa.list_(pa.int32())),  # exactly seq_len ids
        ("seq_lens", pa.list_(pa.int32())),  # segment lengths, sum == seq_len
        ("pad_len", pa.int32()),  # trailing [PAD] tokens (last segment), 0 almost always
        ("source", pa.string()),  # mixture component name
        ("seq_index", pa.int64()),  # position in the deterministic mixed order of this split
        ("doc_ids", pa.list_(pa.string())),  # doc_id per segment ("" for padding)
        ("packed_index", pa.int64()),  # position in its source's packing order (chunks rejoin by it)
    ]
)
CORPUS_KINDS = ("parquet", "jsonl")  # preferred first: a folder with both is read as Parquet


def corpus_inputs(uri: str | Path) -> tuple[str, list[str]]:
    """('parquet' | 'jsonl', sorted files) of a corpus folder (or a single file), path or URI.

    Files are chosen by `infra.core.fs.list_inputs` (the one suffix list; manifests and `_`/`.` names
    are skipped); a folder with Parquet parts is read from those alone.
    """
    inputs = fs.list_inputs([uri], kinds=CORPUS_KINDS)
    for kind in CORPUS_KINDS:
        files = [file for k, file in inputs if k == kind]
        if files:
            return kind, files
    raise FileNotFoundError(f"no .parquet or .jsonl corpus files under {uri}")


def read_corpus(uri: str | Path) -> ray.data.Dataset:
    """A corpus folder (path or URI) as a Ray dataset with `text` (and `doc_id` when the corpus has it)."""
    kind, files = corpus_inputs(uri)
    filesystem, paths = dataset_paths(files)
    if kind == "jsonl":
        return ray.data.read_json(paths, filesystem=filesystem)
    names = pq.read_schema(paths[0], filesystem=filesystem).names
    if "text" not in names:
        raise ValueError(f"corpus {uri} has no `text` column (columns: {names})")
    return ray.data.read_parquet(paths, columns=[c for c in ("doc_id", "text") if c in names], filesystem=filesystem)


def document_split(doc_id: str, validation_fraction: float) -> str:
    """'validation' for a stable `validation_fraction` of doc_ids (seed-independent, so every token set
    built from the same corpus holds out the same documents), else 'train'."""
    return "validation" if xxhash.xxh64_intdigest(doc_id) < validation_fraction * 2**64 else "train"


@functools.lru_cache(maxsize=2)
def _backend(tokenizer_json: str) -> Tokenizer:
    return Tokenizer.from_str(tokenizer_json)


def tokenize_batch(batch: pa.Table, tokenizer_json: str, validation_fraction: float, source: str) -> pa.Table:
    """Ray Data batch function: encode texts (no specials), assign the split, mark skips with a reason."""
    texts = batch.column("text").to_pylist()
    ids = batch.column("doc_id").to_pylist() if "doc_id" in batch.column_names else [None] * len(texts)
    reasons: list[str | None] = [None if t is not None and t.strip() else "empty_text" for t in texts]
    doc_ids = [
        str(d) if d not in (None, "") else "sha1:" + hashlib.sha1((t or "").encode()).hexdigest()
        for d, t in zip(ids, texts, strict=True)
    ]
    todo = [i for i, r in enumerate(reasons) if r is None]
    encodings = _backend(tokenizer_json).encode_batch([texts[i] for i in todo], add_special_tokens=False)
    token_lists: list[list[int]] = [[] for _ in texts]
    for i, enc in zip(todo, encodings, strict=True):
        token_lists[i] = enc.ids
        if len(enc.ids) < MIN_DOCUMENT_TOKENS:
            reasons[i] = "too_short"
    lengths = np.array([len(t) for t in token_lists], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = np.fromiter((x for t in token_lists for x in t), dtype=np.int32, count=int(offsets[-1]))
    return pa.table(
        {
            "doc_id": pa.array(doc_ids, pa.string()),
            "split": pa.array([document_split(d, validation_fraction) for d in doc_ids], pa.string()),
            "token_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)),
            "skip_reason": pa.array(reasons, pa.string()),
            "source": pa.array([source] * len(texts), pa.string()),
        }
    )


def tokenize_corpora(
    corpora: dict[str, str], tokenizer_json: str, validation_fraction: float, batch_size: int
) -> dict[str, list[pa.Table]]:
    """Tokenized batches of each corpus, in input order, from ONE Ray Data execution over all of them.

    Batches run in parallel; `preserve_order` keeps the output order equal to the input order.
    """
    ctx = ray.data.DataContext.get_current()
    previous, ctx.execution_options.preserve_order = ctx.execution_options.preserve_order, True
    try:
        parts = [
            read_corpus(path).map_batches(
                tokenize_batch,
                batch_format="pyarrow",
                batch_size=batch_size,
                fn_kwargs={"tokenizer_json": tokenizer_json, "validation_fraction": validation_fraction,
                           "source": name},
            )
            for name, path in corpora.items()
        ]
        ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
        tables: dict[str, list[pa.Table]] = {name: [] for name in corpora}
        with tqdm(desc="tokenize", unit="doc") as bar:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for name in set(batch.column("source").to_pylist()):
                    rows = batch.filter(pa.compute.equal(batch.column("source"), name))
                    tables[name].append(rows)
                bar.update(batch.num_rows)
        return tables
    finally:
        ctx.execution_options.preserve_order = previous


def _cache_key(uri: str, tokenizer_json: str, validation_fraction: float) -> tuple:
    # absolute(): one key for a relative path, its absolute form and its file:// URI
    return (absolute(uri), xxhash.xxh64_hexdigest(tokenizer_json), validation_fraction)


def tokenize_cached(
    corpora: dict[str, str], tokenizer_json: str, validation_fraction: float, batch_size: int,
    cache: dict[tuple, list[pa.Table]] | None,
) -> dict[str, list[pa.Table]]:
    """`tokenize_corpora`, reusing corpora already tokenized (same path, tokenizer, split) in `cache`."""
    cache = {} if cache is None else cache
    keys = {name: _cache_key(path, tokenizer_json, validation_fraction) for name, path in corpora.items()}
    todo = {name: path for name, path in corpora.items() if keys[name] not in cache}
    if todo:
        for name, tables in tokenize_corpora(todo, tokenizer_json, validation_fraction, batch_size).items():
            cache[keys[name]] = tables
    return {name: cache[keys[name]] for name in corpora}


def pack_source(
    name: str, tables: Sequence[pa.Table], ids: dict[str, int], seq_len: int
) -> tuple[dict[str, list[PackedSequence]], dict[str, Any]]:
    """Pack one tokenized corpus, each split on its own; returns sequences and the source's counts."""
    packers = {s: SequencePacker(seq_len, ids["cls"], ids["sep"], ids["pad"]) for s in SPLITS}
    sequences: dict[str, list[PackedSequence]] = {s: [] for s in SPLITS}
    skipped: Counter[str] = Counter()
    documents_in = 0
    for batch in tqdm(tables, desc=f"pack {name}", unit="batch"):
        tokens = batch.column("token_ids").combine_chunks()
        offsets, values = tokens.offsets.to_numpy(), tokens.values.to_numpy()
        rows = zip(batch.column("doc_id").to_pylist(), batch.column("split").to_pylist(),
                   batch.column("skip_reason").to_pylist(), strict=True)
        for i, (doc_id, split, reason) in enumerate(rows):
            documents_in += 1
            if reason is not None:
                skipped[reason] += 1
                continue
            sequences[split] += packers[split].add(doc_id, values[offsets[i] : offsets[i + 1]])
    for split in SPLITS:
        sequences[split] += packers[split].finish()
    stats = {s: packers[s].stats for s in SPLITS}
    total = stats["train"] + stats["validation"]
    counts = {
        "documents_in": documents_in,
        "documents_skipped": dict(sorted(skipped.items())),
        "documents_packed": total.documents,
        "split_documents": total.split_documents,
        "chunks_from_split_documents": total.chunks_from_split_documents,
        "packed": {s: stats[s].as_dict() for s in SPLITS},
    }
    if documents_in != total.documents + sum(skipped.values()):
        raise AssertionError(f"{name}: documents in != packed + skipped ({counts})")
    return sequences, counts


def write_split(
    out_dir: str | Path, chosen: Sequence[tuple[str, int, PackedSequence]], seq_len: int, rows_per_shard: int
) -> list[str]:
    """Write (source, packed_index, sequence) triples in order as `part-XXXXX.parquet` under `out_dir`
    (a path or URI); seq_index = position. Returns the files as `<split folder>/<part>`."""
    filesystem, folder = fs.resolve(out_dir)
    filesystem.create_dir(folder, recursive=True)
    files = []
    for part, start in enumerate(range(0, max(len(chosen), 1), rows_per_shard)):
        rows = chosen[start : start + rows_per_shard]
        flat_lens = [n for _, _, s in rows for n in s.seq_lens]
        lens_offsets = np.concatenate([[0], np.cumsum([len(s.seq_lens) for _, _, s in rows])]).astype(np.int32)
        ids = np.concatenate([s.input_ids for _, _, s in rows]) if rows else np.zeros(0, np.int32)
        table = pa.table(
            {
                "input_ids": pa.ListArray.from_arrays(
                    pa.array(np.arange(len(rows) + 1, dtype=np.int32) * seq_len), pa.array(ids)
                ),
                "seq_lens": pa.ListArray.from_arrays(pa.array(lens_offsets), pa.array(flat_lens, pa.int32())),
                "pad_len": pa.array([s.pad_len for _, _, s in rows], pa.int32()),
                "source": pa.array([src for src, _, _ in rows], pa.string()),
                "seq_index": pa.array(np.arange(start, start + len(rows), dtype=np.int64)),
                "doc_ids": pa.array([s.doc_ids for _, _, s in rows], pa.list_(pa.string())),
                "packed_index": pa.array([i for _, i, _ in rows], pa.int64()),
            },
            schema=SHARD_SCHEMA,
        )
        name = f"part-{part:05d}.parquet"
        pq.write_table(table, f"{folder}/{name}", compression="zstd", filesystem=filesystem)
        files.append(f"{fs.name_of(out_dir)}/{name}")
    return files


def _token_counts(chosen: Sequence[tuple[str, int, PackedSequence]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for source, _, seq in chosen:
        c = counts.setdefault(source, {"sequences": 0, "real": 0, "pad": 0})
        c["sequences"] += 1
        c["real"] += len(seq.input_ids) - seq.pad_len
        c["pad"] += seq.pad_len
    return counts


def pack(
    corpora: Sequence[tuple[str, str | Path, float]],
    tokenizer: str | Path,
    seq_len: int,
    output: str | Path,
    seed: int = 0,
    validation_fraction: float = 0.05,
    num_sequences: int | None = None,
    token_budget: int | None = None,
    batch_size: int = 256,
    rows_per_shard: int = 4096,
    config: Any = None,
    cache: dict[tuple, list[pa.Table]] | None = None,
) -> dict[str, Any]:
    """Tokenize, pack and mix weighted corpora into `output/{train,validation}/`; returns the manifest.

    Train: each source's share of sequences follows its weight (see `plan_mixture`); `num_sequences`
    or `token_budget` fix the size (repeating a source when needed), else it is the largest mix with
    no repetition. Validation: every packed validation sequence of every source, interleaved by seed.
    `cache` (any dict, kept by the caller) lets several packs over the same corpora tokenize them once.
    Manifest counts are documents: input = read, kept = packed, filtered = skipped by reason.
    """
    started = time.perf_counter()
    names = [name for name, _, _ in corpora]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    if token_budget is not None and num_sequences is None:
        num_sequences = -(-token_budget // seq_len)
    output = str(output)
    paths = {name: str(path) for name, path, _ in corpora}
    inputs = [*paths.values(), *([str(tokenizer)] if fs.exists(str(tokenizer)) else [])]  # else a hub name
    check_output(output, PACK_STAGE, inputs)  # cheap checks before any tokenizing
    upstream = check_upstream(inputs)
    tok = load_tokenizer(tokenizer)
    ids = boundary_token_ids(tok)
    tokenizer_json = tok.backend_tokenizer.to_str()

    tokenized = tokenize_cached(paths, tokenizer_json, validation_fraction, batch_size, cache)
    packed, sources = {}, {}
    stats = StageStats()
    for name, path, weight in corpora:
        packed[name], counts = pack_source(name, tokenized[name], ids, seq_len)
        sources[name] = {"path": str(path), "weight": weight, **counts}
        stats += StageStats(input=counts["documents_in"], kept=counts["documents_packed"],
                            filtered=Counter(counts["documents_skipped"]))
        if weight > 0 and not packed[name]["train"]:  # checked before anything is written
            raise InputError(f"pack: corpus {name!r} ({path}) gives no train sequence: {counts['documents_in']} "
                             f"documents read, skipped {counts['documents_skipped'] or 'none'}, "
                             f"{len(packed[name]['validation'])} validation sequences")
    with staged_output(output, PACK_STAGE, inputs) as staging:
        save_tokenizer(tok, fs.join(staging, "tokenizer"))
        splits = {}
        for split, plan_seed, size in (("train", seed, num_sequences), ("validation", seed + 1, None)):
            chosen = _mix_split(split, packed, corpora, sources, plan_seed, size)
            files = write_split(fs.join(staging, split), chosen, seq_len, rows_per_shard)
            tokens = _token_counts(chosen)
            splits[split] = {
                "sequences": len(chosen),
                "tokens_real": sum(c["real"] for c in tokens.values()),
                "tokens_pad": sum(c["pad"] for c in tokens.values()),
                "tokens_per_source": tokens,
                "files": files,
            }
        stats.seconds = time.perf_counter() - started
        manifest = build_manifest(
            PACK_STAGE, stats, config=config, inputs=list(paths.values()), upstream=upstream,
            outputs={"path": output, "tokenizer": fs.join(output, "tokenizer"),
                     "sequences": {split: counts["sequences"] for split, counts in splits.items()}},
            extra={
                "seq_len": seq_len,
                "seed": seed,
                "validation_fraction": validation_fraction,
                "num_sequences": num_sequences,
                "token_budget": token_budget,
                "tokenizer": {"source": str(tokenizer), "path": "tokenizer", "vocab_size": len(tok), **ids,
                              "mask": tok.mask_token_id},
                "sources": sources,
                "splits": splits,
                "split_documents": sum(s["split_documents"] for s in sources.values()),
                "chunks_from_split_documents": sum(s["chunks_from_split_documents"] for s in sources.values()),
            },
        )
        if config is not None:
            write_resolved_config(config, staging)
        write_manifest(staging, manifest)  # last: marks the token set complete
    return manifest


def _mix_split(
    split: str, packed: dict[str, dict[str, list[PackedSequence]]], corpora: Sequence[tuple[str, str | Path, float]],
    sources: dict[str, dict[str, Any]], plan_seed: int, size: int | None,
) -> list[tuple[str, int, PackedSequence]]:
    """The (source, packed_index, sequence) order of one split; records each source's share in `sources`.

    Train follows the weights (`plan_mixture`); validation takes every sequence (weight = supply, so nothing
    is repeated or left out).
    """
    names = [name for name, _, _ in corpora]
    available = [len(packed[n][split]) for n in names]
    if split == "train":
        plan = plan_mixture(available, [w for _, _, w in corpora], plan_seed, size)
    else:
        plan = plan_mixture(available, available, plan_seed) if sum(available) else None
    for k, name in enumerate(names):
        sources[name].setdefault("mixture", {})[split] = {
            "available_sequences": available[k],
            "selected_sequences": plan.selected[k] if plan else 0,
            "repeats": round(plan.repeats(k), 4) if plan else 0.0,
            "unused_sequences": plan.unused(k) if plan else 0,
        }
    return [(names[s], i, packed[names[s]][split][i]) for s, i in (plan.order if plan else [])]


def iter_corpus_texts(paths: Sequence[str | Path], stats: StageStats) -> Iterator[str]:
    """Texts of several corpora, read with Ray Data; counts documents read, used, and skipped as empty."""
    parts = [read_corpus(path).select_columns(["text"]) for path in paths]
    ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for text in batch.column("text").to_pylist():
            stats.input += 1
            if text is None or not text.strip():
                stats.drop("empty_text")
                continue
            stats.kept += 1
            yield text


def train_tokenizer_job(
    corpora: Sequence[str | Path], output_dir: str | Path, vocab_size: int = 50368, min_frequency: int = 2,
    config: Any = None,
) -> str:
    """Train the BPE tokenizer on the texts of `corpora` and write it with a manifest (paths or URIs).

    The folder is staged (`staged_output`): a failed or interrupted run leaves the previous tokenizer as it
    was. Corpora without any text are refused (InputError) before anything is written.
    Manifest counts are documents: input = read, kept = used for training, filtered = empty_text.
    """
    started = time.perf_counter()
    inputs = [str(p) for p in corpora]
    check_output(output_dir, TOKENIZER_STAGE, inputs)  # cheap checks before reading the corpora
    upstream = check_upstream(inputs)
    stats = StageStats()
    texts = iter_corpus_texts(corpora, stats)
    first = next(texts, None)
    if first is None:
        raise InputError(f"train-tokenizer: no text in {', '.join(inputs)} ({stats.input} documents read, "
                         f"{stats.filtered['empty_text']} empty): no tokenizer written")
    with staged_output(output_dir, TOKENIZER_STAGE, inputs) as staging:
        train_tokenizer(itertools.chain([first], texts), staging, vocab_size, min_frequency)
        backend = load_tokenizer(staging).backend_tokenizer
        padded = sum(1 for t in backend.get_vocab(with_added_tokens=True) if t.startswith("[unused"))
        stats.seconds = time.perf_counter() - started
        manifest = build_manifest(
            TOKENIZER_STAGE, stats, config=config, inputs=inputs, upstream=upstream,
            outputs={"path": str(output_dir), "vocab_size": vocab_size},
            extra={
                "corpora": inputs,
                "vocab_size": vocab_size,
                "bpe_vocab": vocab_size - padded,
                "padding_tokens": padded,
                "min_frequency": min_frequency,
                "special_tokens": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "[MASK]": 4},
            },
        )
        if config is not None:
            write_resolved_config(config, staging)
        write_manifest(staging, manifest)
    return str(output_dir)


def run_tokenize(config: Any, cache: dict[tuple, list[pa.Table]] | None = None) -> dict[str, Any]:
    """The tokenize stage of a run, all from `config.tokenize` under `config.run.output`.

    Trains the tokenizer (`tokenize.tokenizer`) on every corpus of `tokenize.corpora`, then packs each
    set of `tokenize.sets` into `<run.output>/tokens/<name>` with the set's seq_len and mixture. Every
    corpus is tokenized once, in one Ray Data execution, and reused by all sets (`cache`, optional,
    receives the tokenized corpora for later `pack` calls).

    Returns {"tokenizer": path, "tokens": {name: {path, seq_len, train_sequences, validation_sequences}}}.
    """
    from ray_jobs.runtime import init_ray

    t, root = config.tokenize, config.run.output
    corpora = {name: fs.under(root, path) for name, path in t.corpora.items()}
    for name, token_set in t.sets.items():
        unknown = sorted(set(token_set.mixture) - set(corpora))
        if unknown:
            raise ValueError(f"tokenize.sets.{name}.mixture names {unknown}, not in tokenize.corpora {sorted(corpora)}")
    # Every output and input is checked before the tokenizer is trained: a refused set fails in seconds.
    tokenizer_out = fs.under(root, t.tokenizer)
    check_output(tokenizer_out, TOKENIZER_STAGE, list(corpora.values()))
    for name in t.sets:
        check_output(fs.join(root, "tokens", name), PACK_STAGE, list(corpora.values()))
    check_upstream(list(corpora.values()))
    init_ray(config.ray)  # no-op when Ray is already up; a cluster started here is reused by later stages
    tokenizer_dir = train_tokenizer_job(
        list(corpora.values()), tokenizer_out, t.vocab_size, t.min_frequency, config=config
    )
    cache = {} if cache is None else cache
    used = {name: path for name, path in corpora.items() if any(name in s.mixture for s in t.sets.values())}
    tokenizer_json = load_tokenizer(tokenizer_dir).backend_tokenizer.to_str()
    tokenize_cached(used, tokenizer_json, t.validation_fraction, t.batch_size, cache)  # one execution for all
    result: dict[str, Any] = {"tokenizer": tokenizer_dir, "tokens": {}}
    for name, token_set in t.sets.items():
        output = fs.join(root, "tokens", name)
        manifest = pack(
            [(source, corpora[source], weight) for source, weight in token_set.mixture.items()],
            tokenizer_dir, token_set.seq_len, output, seed=config.run.seed,
            validation_fraction=t.validation_fraction, num_sequences=t.num_sequences,
            token_budget=t.token_budget, batch_size=t.batch_size, rows_per_shard=t.rows_per_shard,
            config=config, cache=cache,
        )
        result["tokens"][name] = {
            "path": output,
            "seq_len": token_set.seq_len,
            "train_sequences": manifest["splits"]["train"]["sequences"],
            "validation_sequences": manifest["splits"]["validation"]["sequences"],
        }
    return result


def run_demo(config: Any, root: str | Path, cache: dict[tuple, list[pa.Table]] | None = None) -> dict[str, Any]:
    """Demo stage: `run_tokenize` with `root` as the run's output root (the demo's `run.output`)."""
    if str(root) != config.run.output:
        config = config.model_copy(update={"run": config.run.model_copy(update={"output": str(root)})})
    return run_tokenize(config, cache=cache)
