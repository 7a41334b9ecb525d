"""Train the tokenizer from corpora (streamed into this process, where the BPE trainer runs), and pack corpora
into mixed training shards with Ray Data tasks.

    run_tokenize(config)   # the tokenizer and every `tokenize.sets` token set, under run.output

    pack([("general", "general/corpus", 0.7), ("ecom", "s3://bucket/ecom/corpus", 0.3)], "tokenizer", 256,
         "tokens/ctx")

writes `tokens/ctx/{train,validation}/part-00000.parquet`, `tokens/ctx/tokenizer/`, `manifest.json`
and `config.resolved.yaml`, all into a staged folder (`infra.core.outputs.staged_output`) that replaces
the previous token set whole, or not at all: a failed repack leaves the old set as it was, and a repack
into fewer shards leaves no stale part file. The tokenizer folder is written the same way.

Corpora, tokenizer and outputs are local paths or URIs (`file://`, `s3://`, `gs://`), read and written
through `infra.core.fs`, by the Ray Data tasks themselves. Packing streams: the driver lists the corpora's
fragments (Parquet row groups, JSONL files) from file metadata, one Ray Data task per fragment reads,
tokenizes and packs it and writes its sequences; a second pass plans each output shard from the fragments'
counts alone and one task per shard gathers, shuffles and writes it. The driver holds counts, never
documents or sequences, so its memory does not grow with the corpus; and since the work units are the
corpus's own fragments, the shards do not depend on how Ray split or scheduled the work (same input + seed
= same shards, on any cluster). Mixing follows the weights (`training.data.select_sequences`), spread evenly
over the split; the validation split is by document hash (`document_split`) and holds every validation sequence.
Shard columns: see `SHARD_SCHEMA`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import time
import zlib
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
from training.data import (
    MIN_DOCUMENT_TOKENS,
    ROW_GROUP_ROWS,
    PackedSequence,
    PackStats,
    SequencePacker,
    SourceStream,
    plan_shards,
    read_shard,
    select_sequences,
)
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


def document_split(doc_id: str, validation_fraction: float) -> str:
    """'validation' for a stable `validation_fraction` of doc_ids (seed-independent, so every token set
    built from the same corpus holds out the same documents), else 'train'."""
    return "validation" if xxhash.xxh64_intdigest(doc_id) < validation_fraction * 2**64 else "train"


@functools.lru_cache(maxsize=2)
def _backend(tokenizer_json: str) -> Tokenizer:
    """The tokenizer of a Ray Data task, built once per worker process. Each task holds one CPU, so the
    tokenizer's own thread pool gets one thread (set before its first use): two workers with one pool each
    sized to the machine would oversubscribe the cores (measured: 0.66x -> 0.80x a plain loop at 30M tokens)."""
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
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
    # encode_batch_fast: the same ids without character offsets, which nothing here reads (3% less CPU)
    encodings = _backend(tokenizer_json).encode_batch_fast([texts[i] for i in todo], add_special_tokens=False)
    token_arrays = [np.zeros(0, np.int32)] * len(texts)
    for i, enc in zip(todo, encodings, strict=True):
        token_arrays[i] = np.array(enc.ids, dtype=np.int32)
        if len(token_arrays[i]) < MIN_DOCUMENT_TOKENS:
            reasons[i] = "too_short"
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in token_arrays])]).astype(np.int32)
    flat = np.concatenate(token_arrays) if token_arrays else np.zeros(0, np.int32)
    return pa.table(
        {
            "doc_id": pa.array(doc_ids, pa.string()),
            "split": pa.array([document_split(d, validation_fraction) for d in doc_ids], pa.string()),
            "token_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)),
            "skip_reason": pa.array(reasons, pa.string()),
            "source": pa.array([source] * len(texts), pa.string()),
        }
    )


# --- stage 1: tokenize and pack every fragment where it is read -------------------------------------------------------


def corpus_fragments(source: str, uri: str | Path) -> list[dict[str, Any]]:
    """The units of work of one corpus, in a fixed order: one per Parquet row group, one per JSONL file.

    Only file metadata is read here (on the driver); each fragment is then read, tokenized and packed by one
    Ray Data task, so the shards depend on the corpus alone, never on how Ray split or scheduled the work.
    """
    kind, files = corpus_inputs(uri)
    fragments = []
    for path in files:
        if kind == "jsonl":
            fragments.append({"source": source, "path": path, "kind": kind, "row_group": -1})
            continue
        filesystem, inner = fs.resolve(path)
        metadata = pq.read_metadata(inner, filesystem=filesystem)
        if "text" not in metadata.schema.names:
            raise InputError(f"corpus {uri} has no `text` column (columns: {metadata.schema.names})")
        fragments += [{"source": source, "path": path, "kind": kind, "row_group": g}
                      for g in range(metadata.num_row_groups) if metadata.row_group(g).num_rows]
    return [{**f, "index": i} for i, f in enumerate(fragments)]


def read_fragment(fragment: dict[str, Any]) -> pa.Table:
    """`doc_id` (when the corpus has it) and `text` of one fragment."""
    filesystem, inner = fs.resolve(fragment["path"])
    if fragment["kind"] == "jsonl":  # plain or gzipped (`.jsonl.gz`), as `corpus_inputs` lists them
        from corpus.extract.readers import jsonl_raw_lines

        path, rows = fragment["path"], []
        try:
            for index, raw in jsonl_raw_lines(path):
                try:
                    row = json.loads(raw.decode("utf-8"))
                except ValueError as err:  # UnicodeDecodeError included
                    raise InputError(f"{path}:{index + 1}: not a UTF-8 JSON line ({err})") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path}:{index + 1}: not a JSON object")
                rows.append(row)
        except (OSError, EOFError, zlib.error) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise InputError(f"{path}: unreadable after {len(rows)} rows ({type(err).__name__}: {err})") from None
        return pa.table({"doc_id": pa.array([r.get("doc_id") for r in rows], pa.string()),
                         "text": pa.array([r.get("text") for r in rows], pa.string())})
    reader = pq.ParquetFile(inner, filesystem=filesystem)
    columns = [c for c in ("doc_id", "text") if c in reader.schema_arrow.names]
    return reader.read_row_group(fragment["row_group"], columns=columns)


def fragment_file(work_dir: str, source: str, split: str, index: int) -> str:
    return fs.join(work_dir, source, split, f"fragment-{index:07d}.parquet")


def _sequences_table(sequences: list[PackedSequence], seq_len: int) -> pa.Table:
    lens_offsets = np.concatenate([[0], np.cumsum([len(s.seq_lens) for s in sequences])]).astype(np.int32)
    ids = np.concatenate([s.input_ids for s in sequences]) if sequences else np.zeros(0, np.int32)
    return pa.table({
        "input_ids": pa.ListArray.from_arrays(pa.array(np.arange(len(sequences) + 1, dtype=np.int32) * seq_len),
                                              pa.array(ids)),
        "seq_lens": pa.ListArray.from_arrays(pa.array(lens_offsets),
                                             pa.array([n for s in sequences for n in s.seq_lens], pa.int32())),
        "pad_len": pa.array([s.pad_len for s in sequences], pa.int32()),
        "doc_ids": pa.array([s.doc_ids for s in sequences], pa.list_(pa.string())),
    })


def pack_fragment(fragment: dict[str, Any], tokenizer_json: str, ids: dict[str, int], seq_len: int,
                  validation_fraction: float, batch_size: int, work_dir: str) -> dict[str, Any]:
    """Ray Data task: read one fragment, tokenize it, pack each split, write the sequences beside the output.

    Returns the fragment's counts (documents read, skipped by reason, sequences and packing stats per split);
    nothing bigger travels back to the driver.
    """
    table = read_fragment(fragment)
    packers = {s: SequencePacker(seq_len, ids["cls"], ids["sep"], ids["pad"]) for s in SPLITS}
    sequences: dict[str, list[PackedSequence]] = {s: [] for s in SPLITS}
    skipped: Counter[str] = Counter()
    for start in range(0, table.num_rows, batch_size):
        tokens = tokenize_batch(table.slice(start, batch_size), tokenizer_json, validation_fraction,
                                fragment["source"])
        token_ids = tokens.column("token_ids").combine_chunks()
        offsets, values = token_ids.offsets.to_numpy(), token_ids.values.to_numpy()
        rows = zip(tokens.column("doc_id").to_pylist(), tokens.column("split").to_pylist(),
                   tokens.column("skip_reason").to_pylist(), strict=True)
        for i, (doc_id, split, reason) in enumerate(rows):
            if reason is not None:
                skipped[reason] += 1
                continue
            sequences[split] += packers[split].add(doc_id, values[offsets[i]:offsets[i + 1]])
    result: dict[str, Any] = {"source": fragment["source"], "index": fragment["index"],
                              "documents_in": table.num_rows, "skipped": json.dumps(dict(skipped))}
    for split in SPLITS:
        sequences[split] += packers[split].finish()
        if sequences[split]:
            target = fragment_file(work_dir, fragment["source"], split, fragment["index"])
            filesystem, inner = fs.resolve(target)
            filesystem.create_dir(fs.parent_of(inner), recursive=True)
            pq.write_table(_sequences_table(sequences[split], seq_len), inner, filesystem=filesystem,
                           compression="zstd")
        result[split] = len(sequences[split])
        result[f"{split}_stats"] = json.dumps(packers[split].stats.as_dict())
    return result


# --- stage 2: the mixture, planned in training.data, written shard by shard by Ray Data tasks -----------------


def write_shard(shard: dict[str, Any], work_dir: str, split_dir: str, split: str, seq_len: int,
                first_index: dict[str, list[int]]) -> dict[str, Any]:
    """Ray Data task: gather one shard's rows from the fragments, shuffle them (seeded by shard), number them
    (`seq_index`), write `part-XXXXX.parquet`, and count what was written."""
    parts = []
    for source, pieces in json.loads(shard["pieces"]).items():
        for fragment, lo, hi in pieces:
            table = read_shard(fragment_file(work_dir, source, split, fragment))
            rows = table.slice(lo, hi - lo)
            canonical = first_index[source][fragment] + np.arange(lo, hi, dtype=np.int64)
            parts.append(rows.append_column("source", pa.array([source] * rows.num_rows, pa.string()))
                         .append_column("packed_index", pa.array(canonical)))
    table = pa.concat_tables(parts) if parts else SHARD_SCHEMA.empty_table().drop_columns(["seq_index"])
    order = np.random.default_rng([shard["seed"], shard["number"]]).permutation(table.num_rows)
    table = table.take(pa.array(order))
    table = table.append_column("seq_index", pa.array(shard["first_row"] + np.arange(table.num_rows, dtype=np.int64)))
    table = table.select(SHARD_SCHEMA.names).cast(SHARD_SCHEMA)
    name = f"part-{shard['number']:05d}.parquet"
    filesystem, folder = fs.resolve(split_dir)
    filesystem.create_dir(folder, recursive=True)
    pq.write_table(table, f"{folder}/{name}", filesystem=filesystem, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    pad = table.column("pad_len").to_numpy()
    sources = np.asarray(table.column("source").to_pylist(), dtype=object)
    counts = {src: {"sequences": int((sources == src).sum()), "pad": int(pad[sources == src].sum())}
              for src in sorted(set(sources.tolist()))}
    for c in counts.values():
        c["real"] = c["sequences"] * seq_len - c["pad"]
    return {"number": shard["number"], "file": name, "rows": table.num_rows, "counts": json.dumps(counts)}


def _run_tasks(items: list[dict[str, Any]], fn, desc: str, filesystems: dict[str, Any],
               **kwargs: Any) -> list[dict[str, Any]]:
    """`fn(item, **kwargs)` for every item, as Ray Data tasks (one item per block, so they spread over the
    cluster); results stream back, each small, and are returned in item order. The tasks resolve URIs with the
    driver's filesystem objects (`filesystems`, see `infra.core.fs.pinned_filesystems`)."""
    if not items:
        return []
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map(
        _in_task, fn_kwargs={"fn": fn, "filesystems": filesystems, **kwargs})
    out = []
    with tqdm(total=len(items), desc=desc, unit="task") as bar:
        for row in ds.iter_rows():
            out.append(dict(row))
            bar.update()
    return sorted(out, key=lambda r: (r.get("source", ""), r.get("index", r.get("number"))))


def _in_task(item: dict[str, Any], fn, filesystems: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    with fs.pinned_filesystems(filesystems):
        return fn(item, **kwargs)


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
) -> dict[str, Any]:
    """Tokenize, pack and mix weighted corpora into `output/{train,validation}/`; returns the manifest.

    Streaming, in two Ray Data passes, so the driver holds counts only, never documents or sequences:
    1. every fragment of every corpus (a Parquet row group, a JSONL file) is read, tokenized and packed by one
       task, which writes its sequences into the staged output (`_fragments/`) and returns its counts;
    2. each output shard is planned from those counts (`training.data.plan_shards`) and written by one task,
       which gathers its rows from the fragments, shuffles them by seed and counts what it wrote.
    Train: each source's share of sequences follows its weight (`allocate`); `num_sequences` or `token_budget`
    fix the size (a source in short supply is repeated in seeded passes, one in excess is cut), else it is the
    largest mix with no repetition. Validation: every packed validation sequence of every source, once.
    Manifest counts are documents: input = read, kept = packed, filtered = skipped by reason; the per-split
    sequence and token counts are those the shard tasks wrote, checked against each file's row count.
    """
    started = time.perf_counter()
    names = [name for name, _, _ in corpora]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    if token_budget is not None and num_sequences is None:
        num_sequences = -(-token_budget // seq_len)
    output = str(output)
    paths = {name: str(path) for name, path, _ in corpora}
    weights = {name: weight for name, _, weight in corpora}
    inputs = [*paths.values(), *([str(tokenizer)] if fs.exists(str(tokenizer)) else [])]  # else a hub name
    check_output(output, PACK_STAGE, inputs)  # cheap checks before any tokenizing
    upstream = check_upstream(inputs)
    tok = load_tokenizer(tokenizer)
    ids = boundary_token_ids(tok)
    fragments = {name: corpus_fragments(name, path) for name, path in paths.items()}

    with staged_output(output, PACK_STAGE, inputs) as staging:
        work_dir = fs.join(staging, "_fragments")
        filesystems = fs.remote_filesystems([*paths.values(), staging])
        results = _run_tasks([f for name in names for f in fragments[name]], pack_fragment, "tokenize+pack",
                             filesystems, tokenizer_json=tok.backend_tokenizer.to_str(), ids=ids, seq_len=seq_len,
                             validation_fraction=validation_fraction, batch_size=batch_size, work_dir=work_dir)
        sources, stats = _source_counts(names, paths, weights, fragments, results)
        counts = {split: {name: np.zeros(len(fragments[name]), np.int64) for name in names} for split in SPLITS}
        for r in results:
            for split in SPLITS:
                counts[split][r["source"]][r["index"]] = r[split]
        for name in names:
            if weights[name] > 0 and not counts["train"][name].sum():  # before any shard is written
                raise InputError(f"pack: corpus {name!r} ({paths[name]}) gives no train sequence: "
                                 f"{sources[name]['documents_in']} documents read, skipped "
                                 f"{sources[name]['documents_skipped'] or 'none'}, "
                                 f"{int(counts['validation'][name].sum())} validation sequences")
        save_tokenizer(tok, fs.join(staging, "tokenizer"))
        splits = {}
        for split, plan_seed, size in (("train", seed, num_sequences), ("validation", seed + 1, None)):
            splits[split] = _write_split(split, counts[split], weights, sources, plan_seed, size, seq_len,
                                         rows_per_shard, work_dir, fs.join(staging, split), filesystems)
        fs.delete_dir(work_dir)
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
                "fragments": {name: len(fragments[name]) for name in names},
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


def _source_counts(names: list[str], paths: dict[str, str], weights: dict[str, float],
                   fragments: dict[str, list], results: list[dict[str, Any]]) -> tuple[dict[str, Any], StageStats]:
    """Per-source document and packing counts from the fragment tasks' results, and the stage's StageStats."""
    sources, stats = {}, StageStats()
    for name in names:
        mine = [r for r in results if r["source"] == name]
        if len(mine) != len(fragments[name]):
            raise AssertionError(f"{name}: {len(mine)} fragment results for {len(fragments[name])} fragments")
        skipped = sum((Counter(json.loads(r["skipped"])) for r in mine), Counter())
        packed = {split: sum((PackStats(**json.loads(r[f"{split}_stats"])) for r in mine), PackStats())
                  for split in SPLITS}
        total = packed["train"] + packed["validation"]
        documents_in = sum(r["documents_in"] for r in mine)
        if documents_in != total.documents + sum(skipped.values()):
            raise AssertionError(f"{name}: documents in != packed + skipped")
        sources[name] = {
            "path": paths[name], "weight": weights[name], "documents_in": documents_in,
            "documents_skipped": dict(sorted(skipped.items())), "documents_packed": total.documents,
            "split_documents": total.split_documents,
            "chunks_from_split_documents": total.chunks_from_split_documents,
            "packed": {split: packed[split].as_dict() for split in SPLITS},
        }
        stats += StageStats(input=documents_in, kept=total.documents, filtered=skipped)
    return sources, stats


def _write_split(split: str, counts: dict[str, np.ndarray], weights: dict[str, float], sources: dict[str, Any],
                 plan_seed: int, size: int | None, seq_len: int, rows_per_shard: int, work_dir: str,
                 split_dir: str, filesystems: dict[str, Any]) -> dict[str, Any]:
    """Plan and write one split; records each source's share in `sources` and returns the split's counts."""
    names = list(counts)
    available = {name: int(counts[name].sum()) for name in names}
    # train: shares by weight; validation: every sequence once
    selected = select_sequences(available, weights, size) if split == "train" else dict(available)
    streams = {name: SourceStream(counts[name], seed=plan_seed * 1000 + k) for k, name in enumerate(names)
               if selected[name]}
    for name in names:
        want, have = selected[name], available[name]
        sources[name].setdefault("mixture", {})[split] = {
            "available_sequences": have, "selected_sequences": want,
            "repeats": round(want / have, 4) if have else 0.0, "unused_sequences": max(have - want, 0),
        }
    shards = plan_shards(streams, {n: selected[n] for n in streams}, rows_per_shard, plan_seed)
    first_index = {name: stream.first.tolist() for name, stream in streams.items()}
    written = _run_tasks(shards, write_shard, f"write {split}", filesystems, work_dir=work_dir, split_dir=split_dir,
                         split=split, seq_len=seq_len, first_index=first_index)
    tokens: dict[str, dict[str, int]] = {}
    for shard, result in zip(shards, written, strict=True):
        if result["rows"] != shard["rows"]:
            raise AssertionError(f"shard {shard['number']}: wrote {result['rows']} rows, planned {shard['rows']}")
        for src, c in json.loads(result["counts"]).items():
            mine = tokens.setdefault(src, {"sequences": 0, "real": 0, "pad": 0})
            for key in mine:
                mine[key] += c[key]
    files = [fs.join(split_dir, r["file"]) for r in written]
    on_disk = sum(_num_rows(f) for f in files)  # read back from the files written
    if on_disk != sum(selected.values()):
        raise AssertionError(f"{split}: {on_disk} rows on disk, {sum(selected.values())} planned")
    return {
        "sequences": on_disk,
        "tokens_real": sum(c["real"] for c in tokens.values()),
        "tokens_pad": sum(c["pad"] for c in tokens.values()),
        "tokens_per_source": tokens,
        "files": [f"{split}/{r['file']}" for r in written],
    }


def _num_rows(uri: str) -> int:
    filesystem, inner = fs.resolve(uri)
    return pq.read_metadata(inner, filesystem=filesystem).num_rows



def write_split(
    out_dir: str | Path, chosen: Sequence[tuple[str, int, PackedSequence]], seq_len: int, rows_per_shard: int,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> list[str]:
    """Write (source, packed_index, sequence) triples in order as `part-XXXXX.parquet` under `out_dir`
    (a path or URI); seq_index = position. Returns the files as `<split folder>/<part>`. For tools and tests that
    build a split from sequences in memory (`pack` streams instead)."""
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
        pq.write_table(table, f"{folder}/{name}", compression="zstd", filesystem=filesystem,
                       row_group_size=row_group_rows)
        files.append(f"{fs.name_of(out_dir)}/{name}")
    return files


def iter_corpus_texts(paths: Sequence[str | Path], stats: StageStats) -> Iterator[str]:
    """Texts of several corpora (paths or URIs), read fragment by fragment as packing reads them
    (`corpus_fragments`, `read_fragment`) but in this process, where the tokenizer trainer runs: Ray Data's read
    tasks would only ship every text back to it (16 of the demo's 60 s went to that). Counts documents read,
    used, and skipped as empty (no text, or only white space)."""
    for path in paths:
        for fragment in corpus_fragments("tokenizer", path):
            for text in read_fragment(fragment).column("text").to_pylist():
                stats.input += 1
                if not isinstance(text, str) or not text.strip():
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


def run_tokenize(config: Any) -> dict[str, Any]:
    """The tokenize stage of a run, all from `config.tokenize` under `config.run.output`.

    Trains the tokenizer (`tokenize.tokenizer`) on every corpus of `tokenize.corpora`, then packs each
    set of `tokenize.sets` into `<run.output>/tokens/<name>` with the set's seq_len and mixture.

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
    result: dict[str, Any] = {"tokenizer": tokenizer_dir, "tokens": {}}
    for name, token_set in t.sets.items():
        output = fs.join(root, "tokens", name)
        manifest = pack(
            [(source, corpora[source], weight) for source, weight in token_set.mixture.items()],
            tokenizer_dir, token_set.seq_len, output, seed=config.run.seed,
            validation_fraction=t.validation_fraction, num_sequences=t.num_sequences,
            token_budget=token_set.token_budget or t.token_budget, batch_size=t.batch_size,
            rows_per_shard=t.rows_per_shard, config=config,
        )
        result["tokens"][name] = {
            "path": output,
            "seq_len": token_set.seq_len,
            "train_sequences": manifest["splits"]["train"]["sequences"],
            "validation_sequences": manifest["splits"]["validation"]["sequences"],
        }
    return result


def run_demo(config: Any, root: str | Path) -> dict[str, Any]:
    """Demo stage: `run_tokenize` with `root` as the run's output root (the demo's `run.output`)."""
    if str(root) != config.run.output:
        config = config.model_copy(update={"run": config.run.model_copy(update={"output": str(root)})})
    return run_tokenize(config)
