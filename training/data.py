"""Packed sequences: documents packed into rows of exactly L tokens, and the training loader over them. No Ray.

Packing (first in this file: the loader reads what it writes). Greedy packing of tokenized documents into
sequences of exactly `seq_len` tokens. Every sequence is a run of segments; a segment is `[CLS] tokens [SEP]`
for one whole document or one chunk of a document that did not fit (so attention can be kept inside a
segment). `seq_lens` records the segment lengths and always sums to `seq_len`. Only the very last sequence
of a stream may end in one padding segment of `[PAD]` tokens (`pad_len` of them). The packer fills each
sequence exactly:
- a document that fits whole goes in whole;
- a document longer than the space left is split: the chunk that fits closes the sequence and the
  rest continues in the next one (long documents become several chunks, in order);
- a document that fits but would leave a 1- or 2-token gap (where no `[CLS] x [SEP]` fits) is split
  in two chunks inside this sequence, `R-5` and 1 tokens, so exactly 3 or 0 tokens stay free.
Documents under `MIN_DOCUMENT_TOKENS` tokens are refused (counted as `too_short` by the caller): only
such a tiny document could leave a gap no split can close. `select_sequences`, `SourceStream` and
`plan_shards` plan a mixture of packed sequences from weighted sources, shard by shard, from counts alone.

The loader: plain pyarrow, per rank, deterministic, resumable. Shards are what `ray_jobs.tokenize.pack`
writes: `<token set>/<split>/part-XXXXX.parquet` with `input_ids` (exactly L ids), `seq_lens` (segment
lengths, sum L), `pad_len`, `source`, `seq_index`. The token set is a local path or a URI (`s3://`,
`gs://`, ...), read through `infra.core.fs`.

Order: epoch `e` visits the sequences in `permutation(seed + e)` of their `seq_index` (or in
`seq_index` order with `shuffle=False`). A global batch is `batch_size * world_size` consecutive
sequences of that order; rank `r` takes the `r`-th block of `batch_size`, so ranks are disjoint.
Iterating the loader runs ONE epoch from the current position; the next `iter()` starts the next
epoch (`forever()` chains them). `state_dict()` holds (epoch, batches consumed in it); a loader given
that state yields exactly the batches an uninterrupted run would have yielded next.

Batch dict: `input_ids` LongTensor[B, L]; `seq_lens` IntTensor[B, S] (segment lengths, zero-padded
to the batch's most segments S); `pad_len` IntTensor[B]; `seq_index` LongTensor[B].
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from infra.core import fs

# --- packing ----------------------------------------------------------------------------------------------------------

MIN_DOCUMENT_TOKENS = 3
FRAME = 2  # [CLS] and [SEP] around every segment


@dataclass
class PackedSequence:
    """One training sequence: exactly seq_len ids, its segment lengths, and where each came from."""

    input_ids: np.ndarray  # int32 [seq_len]
    seq_lens: list[int]
    pad_len: int
    doc_ids: list[str]  # one per segment; "" for the padding segment


@dataclass
class PackStats:
    """Counters of one packing stream; they merge with `+`."""

    documents: int = 0
    split_documents: int = 0
    chunks_from_split_documents: int = 0
    segments: int = 0
    sequences: int = 0
    tokens_real: int = 0  # every non-pad token, [CLS]/[SEP] included
    tokens_pad: int = 0
    content_tokens: int = 0  # document tokens without the frame

    def __add__(self, other: PackStats) -> PackStats:
        return PackStats(**{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__})

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class SequencePacker:
    """Feed documents with `add`, collect finished sequences; `finish` pads and flushes the last one."""

    seq_len: int
    cls_id: int
    sep_id: int
    pad_id: int
    stats: PackStats = field(default_factory=PackStats)

    def __post_init__(self) -> None:
        if self.seq_len < 8:
            raise ValueError(f"seq_len must be at least 8, got {self.seq_len}")
        self._pieces: list[np.ndarray] = []
        self._lens: list[int] = []
        self._doc_ids: list[str] = []
        self._space = self.seq_len

    def add(self, doc_id: str, token_ids: Sequence[int] | np.ndarray) -> list[PackedSequence]:
        """Place one document (ids without [CLS]/[SEP]); returns the sequences it completed."""
        tokens = np.asarray(token_ids, dtype=np.int32)
        if len(tokens) < MIN_DOCUMENT_TOKENS:
            raise ValueError(f"document {doc_id!r} has {len(tokens)} tokens (< {MIN_DOCUMENT_TOKENS})")
        done: list[PackedSequence] = []
        chunks = 0
        while len(tokens):
            need, space = len(tokens) + FRAME, self._space
            if need == space or need <= space - MIN_DOCUMENT_TOKENS:
                take = len(tokens)
            elif need > space:
                take = space - FRAME
            else:  # a whole placement would leave a 1-2 token gap: leave exactly 3 free instead
                take = space - FRAME - MIN_DOCUMENT_TOKENS
            self._place(doc_id, tokens[:take])
            tokens = tokens[take:]
            chunks += 1
            if self._space == 0:
                done.append(self._close(pad_len=0))
        self.stats.documents += 1
        if chunks > 1:
            self.stats.split_documents += 1
            self.stats.chunks_from_split_documents += chunks
        return done

    def finish(self) -> list[PackedSequence]:
        """Pad the open sequence (if any tokens are in it) and return it."""
        if self._space == self.seq_len:
            return []
        pad_len = self._space
        self._pieces.append(np.full(pad_len, self.pad_id, dtype=np.int32))
        self._lens.append(pad_len)
        self._doc_ids.append("")
        self._space = 0
        return [self._close(pad_len=pad_len)]

    def _place(self, doc_id: str, content: np.ndarray) -> None:
        segment = np.empty(len(content) + FRAME, dtype=np.int32)
        segment[0], segment[1:-1], segment[-1] = self.cls_id, content, self.sep_id
        self._pieces.append(segment)
        self._lens.append(len(segment))
        self._doc_ids.append(doc_id)
        self._space -= len(segment)
        self.stats.segments += 1
        self.stats.content_tokens += len(content)
        self.stats.tokens_real += len(segment)

    def _close(self, pad_len: int) -> PackedSequence:
        sequence = PackedSequence(np.concatenate(self._pieces), self._lens, pad_len, self._doc_ids)
        assert len(sequence.input_ids) == self.seq_len and sum(sequence.seq_lens) == self.seq_len
        self.stats.sequences += 1
        self.stats.tokens_pad += pad_len
        self._pieces, self._lens, self._doc_ids, self._space = [], [], [], self.seq_len
        return sequence


def pack_documents(
    documents: Sequence[tuple[str, Sequence[int]]], seq_len: int, cls_id: int, sep_id: int, pad_id: int
) -> tuple[list[PackedSequence], PackStats]:
    """Pack a whole list of (doc_id, token_ids) in order; convenience for tests and small inputs."""
    packer = SequencePacker(seq_len, cls_id, sep_id, pad_id)
    sequences = [s for doc_id, ids in documents for s in packer.add(doc_id, ids)]
    sequences += packer.finish()
    return sequences, packer.stats


def segments(sequence: PackedSequence) -> Iterator[tuple[str, np.ndarray]]:
    """(doc_id, segment ids) per segment of a packed sequence, the padding segment included."""
    start = 0
    for doc_id, length in zip(sequence.doc_ids, sequence.seq_lens, strict=True):
        yield doc_id, sequence.input_ids[start : start + length]
        start += length


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into integer shares proportional to `weights` (largest remainder, sums exactly)."""
    weights = np.asarray(weights, dtype=np.float64)
    exact = total * weights / weights.sum()
    shares = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - shares), kind="stable")
    shares[order[: total - int(shares.sum())]] += 1
    return [int(s) for s in shares]


def select_sequences(available: dict[str, int], weights: dict[str, float], size: int | None = None) -> dict[str, int]:
    """How many sequences each source gives a split: shares follow the weights (`allocate`). Without `size` the
    split is as large as possible with no repetition (the source in shortest supply for its weight is used
    exactly once); with it, a source in short supply is repeated and one in excess is cut."""
    names = list(available)
    if sorted(weights) != sorted(names) or min(weights.values()) < 0 or sum(weights.values()) <= 0:
        raise ValueError(f"need one non-negative weight per source with a positive sum, got {weights}")
    norm = {n: weights[n] / sum(weights.values()) for n in names}
    for name in names:
        if norm[name] > 0 and available[name] == 0:
            raise ValueError(f"source {name!r} has weight {norm[name]:.3f} but no packed sequences")
    if size is None:
        size = min(math.floor(available[n] / norm[n] + 1e-9) for n in names if norm[n] > 0)
    return dict(zip(names, allocate(size, [norm[n] for n in names]), strict=True))


@dataclass
class SourceStream:
    """One source's packed sequences of one split as an endless stream: pass after pass over its fragments,
    each pass in a seeded order of fragments (sequences keep their order inside a fragment). Position p of
    the stream is pass p // total; a source in excess uses a prefix of the first pass, one in short supply
    several passes. Only the per-fragment counts are held."""

    counts: np.ndarray  # sequences per fragment, in the corpus's fragment order
    seed: int

    def __post_init__(self) -> None:
        self.total = int(self.counts.sum())
        self.first = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)  # canonical start
        self._last_pass: tuple[int, np.ndarray, np.ndarray] | None = None  # shards ask for one pass in a row

    def _pass_order(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        if self._last_pass is None or self._last_pass[0] != number:
            order = np.random.default_rng([self.seed, number]).permutation(len(self.counts))
            self._last_pass = (number, order, np.concatenate([[0], np.cumsum(self.counts[order])]).astype(np.int64))
        return self._last_pass[1], self._last_pass[2]

    def pieces(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(fragment, first row, end row) pieces that make up stream positions [start, stop)."""
        out = []
        position = start
        while position < stop:
            number, offset = divmod(position, self.total)
            order, bounds = self._pass_order(number)
            k = int(np.searchsorted(bounds, offset, side="right")) - 1
            take = min(stop - position, int(bounds[k + 1]) - offset)
            lo = offset - int(bounds[k])
            out.append((int(order[k]), lo, lo + take))
            position += take
        return out


def _taken(end: int, selected: int, size: int) -> int:
    """How many of a source's `selected` rows fall in the first `end` of `size` output rows (monotone in end,
    exact at end = size): the source's rows are spread evenly over the split."""
    return end * selected // size if size else 0


def plan_shards(streams: dict[str, SourceStream], selected: dict[str, int], rows_per_shard: int,
                seed: int) -> list[dict[str, Any]]:
    """The shards of one split: for each, where its rows start and which stream range of each source it holds."""
    size = sum(selected.values())
    shards, first_row = [], 0
    for number, start in enumerate(range(0, max(size, 1), rows_per_shard)):
        end = min(start + rows_per_shard, size)
        ranges = {name: (_taken(start, n, size), _taken(end, n, size)) for name, n in selected.items()}
        pieces = {name: streams[name].pieces(lo, hi) for name, (lo, hi) in ranges.items() if hi > lo}
        rows = sum(hi - lo for lo, hi in ranges.values())
        shards.append({"number": number, "first_row": first_row, "rows": rows, "seed": seed,
                       "pieces": json.dumps(pieces)})
        first_row += rows
    return shards


# --- the loader -----------------------------------------------------------------------------------------------------

COLUMNS = ["input_ids", "seq_lens", "pad_len", "seq_index"]
ROW_GROUP_ROWS = 512  # rows per Parquet row group in the shards the pack job writes: the loader's unit of reading
SHUFFLE_TOKENS = 2**22  # tokens held (and shuffled together) per window, by default: 16 MiB of ids at any L


def _part_files(folder: str) -> list[str]:
    """The `part-*.parquet` files directly in `folder` (none when it is not a folder)."""
    if not fs.is_dir(folder):
        return []
    base = folder.rstrip("/")
    return [f for f in fs.list_files(folder, suffixes=(".parquet",))
            if fs.parent_of(f) == base and fs.name_of(f).startswith("part-")]


def shard_files(path: str | Path, split: str = "train") -> list[str]:
    """Part files (paths or URIs) of a split folder, or of `<token set>/<split>/` when given the token-set folder."""
    path = str(path)
    files = _part_files(path)
    if not files:
        path = fs.join(path, split)
        files = _part_files(path)
    if not files:
        raise FileNotFoundError(f"no part-*.parquet shards under {path}")
    return files


def parquet_file(uri: str) -> pq.ParquetFile:
    """An open Parquet file (footer read, nothing else), local or through its filesystem. Not memory-mapped: a row
    group is read into its own buffers, so a long epoch does not map (and count in RSS) every shard it passed."""
    if not fs.is_remote(uri):
        return pq.ParquetFile(fs.local_path(uri))
    filesystem, path = fs.resolve(uri)
    return pq.ParquetFile(filesystem.open_input_file(path))


def read_shard(uri: str, columns: list[str] | None = None) -> pa.Table:
    """One whole part file."""
    return parquet_file(uri).read(columns=columns)


@dataclass
class ShardIndex:
    """Where the sequences of a split are, from the Parquet footers alone: one unit per non-empty row group, in
    file order. A few integers per row group, so it fits any corpus (2B sequences are ~4M units)."""

    files: list[str]
    unit_file: np.ndarray  # int64 [U]: index into files
    unit_group: np.ndarray  # int64 [U]: row group inside that file
    unit_rows: np.ndarray  # int64 [U]
    seq_len: int

    @classmethod
    def read(cls, path: str | Path, split: str = "train") -> ShardIndex:
        files = shard_files(path, split)
        unit_file, unit_group, unit_rows, seq_len = [], [], [], 0
        for number, uri in enumerate(files):
            handle = parquet_file(uri)
            for group in range(handle.metadata.num_row_groups):
                rows = handle.metadata.row_group(group).num_rows
                if rows:
                    unit_file.append(number)
                    unit_group.append(group)
                    unit_rows.append(rows)
                    if not seq_len:
                        first = handle.read_row_group(group, columns=["input_ids"]).column(0).chunk(0)
                        seq_len = int(first.value_lengths()[0].as_py())
        as_array = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
        return cls(files, as_array(unit_file), as_array(unit_group), as_array(unit_rows), seq_len)

    def __len__(self) -> int:
        return int(self.unit_rows.sum())

    def window_units(self, shuffle_tokens: int) -> int:
        """Units per window so that a window holds about `shuffle_tokens` tokens (at least one unit)."""
        mean_tokens = float(self.unit_rows.mean()) * self.seq_len if len(self.unit_rows) else 1.0
        return max(1, round(shuffle_tokens / mean_tokens))

    def read_units(self, units: Sequence[int], columns: list[str] = COLUMNS) -> pa.Table:
        """The rows of `units`, in that order (a file's footer is read once per call)."""
        handles: dict[int, pq.ParquetFile] = {}
        parts = []
        for unit in units:
            number = int(self.unit_file[unit])
            if number not in handles:
                handles[number] = parquet_file(self.files[number])
            parts.append(handles[number].read_row_group(int(self.unit_group[unit]), columns=columns))
        return pa.concat_tables(parts).combine_chunks()


@dataclass
class EpochPlan:
    """One epoch's order: the units in a seeded order (identity without shuffle), cut into windows of `window_units`
    consecutive units; a window's rows are then permuted together (`window_order`). `starts[w]` is the epoch
    position of window w's first row (`starts[-1]` the epoch's size)."""

    epoch: int
    windows: list[np.ndarray]
    starts: np.ndarray

    def pieces(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(window, lo, hi): the windows and the rows [lo, hi) of each that make up epoch positions [start, stop)."""
        out = []
        window = int(np.searchsorted(self.starts, start, side="right")) - 1 if start < stop else len(self.windows)
        while window < len(self.windows) and self.starts[window] < stop:
            first = int(self.starts[window])
            out.append((window, max(start - first, 0), min(stop, int(self.starts[window + 1])) - first))
            window += 1
        return out


def epoch_plan(index: ShardIndex, seed: int, epoch: int, shuffle: bool, window_units: int) -> EpochPlan:
    count = len(index.unit_rows)
    units = np.random.default_rng([seed, epoch]).permutation(count) if shuffle else np.arange(count)
    windows = [units[i : i + window_units] for i in range(0, count, window_units)]
    sizes = [int(index.unit_rows[w].sum()) for w in windows]
    return EpochPlan(epoch, windows, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))


def window_order(rows: int, seed: int, epoch: int, window: int, shuffle: bool) -> np.ndarray:
    """The order of a window's rows (as read, unit after unit) in the epoch."""
    return np.random.default_rng([seed, epoch, window]).permutation(rows) if shuffle else np.arange(rows)


def read_window(index: ShardIndex, units: Sequence[int], seed: int, epoch: int, window: int, shuffle: bool,
                lo: int = 0, hi: int | None = None) -> pa.Table:
    """Rows [lo, hi) of one window in its epoch order (both loaders read through this)."""
    table = index.read_units(units)
    return take_rows(table, window_order(table.num_rows, seed, epoch, window, shuffle)[lo:hi])


def take_rows(table: pa.Table, order: np.ndarray) -> pa.Table:
    """`table.take(order)` done in numpy on the loader's columns (Arrow's take on list columns is several times
    slower: it was half of the plain loader's time)."""
    columns = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if not pa.types.is_list(column.type):
            columns[name] = pa.array(column.to_numpy()[order])  # ints without nulls: zero-copy, no pandas
            continue
        offsets, values = column.offsets.to_numpy(), column.values.to_numpy()
        counts = np.diff(offsets)
        if len(counts) and (counts == counts[0]).all():  # input_ids: every row has L ids
            width = int(counts[0])
            rows = values[offsets[0]:offsets[-1]].reshape(-1, width)[order].ravel()
            new_offsets = np.arange(len(order) + 1, dtype=np.int64) * width
        else:
            picked = counts[order]
            new_offsets = np.concatenate([[0], np.cumsum(picked)]).astype(np.int64)
            rows = values[np.repeat(offsets[:-1][order] - new_offsets[:-1], picked) + np.arange(new_offsets[-1])]
        columns[name] = pa.ListArray.from_arrays(pa.array(new_offsets.astype(np.int32)), pa.array(rows))
    return pa.table(columns)


def usable_per_epoch(num_sequences: int, global_batch: int) -> int:
    """Sequences of one epoch that fill whole global batches (`global_batch` = micro batch x world size)."""
    if global_batch < 1:
        raise ValueError(f"global_batch must be at least 1, got {global_batch}")
    return num_sequences - num_sequences % global_batch


def batch_from_table(table: pa.Table) -> dict[str, torch.Tensor]:
    """The batch dict (module docstring) of the rows of an Arrow table with `COLUMNS`."""
    table = table.combine_chunks()
    rows = table.num_rows
    if not rows:
        raise ValueError("an empty batch")
    ids, lens = table.column("input_ids").chunk(0), table.column("seq_lens").chunk(0)
    input_ids = ids.flatten().to_numpy().reshape(rows, -1)
    offsets = lens.offsets.to_numpy()
    counts = np.diff(offsets)
    seq_lens = np.zeros((rows, int(counts.max())), dtype=np.int32)
    column = np.arange(offsets[-1] - offsets[0]) - np.repeat(offsets[:-1] - offsets[0], counts)
    seq_lens[np.repeat(np.arange(rows), counts), column] = lens.flatten().to_numpy()
    return {
        "input_ids": torch.from_numpy(input_ids.astype(np.int64)),
        "seq_lens": torch.from_numpy(seq_lens),
        "pad_len": torch.from_numpy(table.column("pad_len").to_numpy().astype(np.int32)),
        "seq_index": torch.from_numpy(table.column("seq_index").to_numpy().astype(np.int64)),
    }


def rank_block(global_batch: pa.Table, batch_size: int, rank: int) -> pa.Table:
    """Rank r's rows of a global batch: block r of `batch_size` (short or empty in a final, partial batch)."""
    return global_batch.slice(rank * batch_size, batch_size)


class PackedShardLoader:
    """Deterministic, resumable, rank-disjoint batches streamed from packed shards.

    Order: epoch e visits the units (row groups) in a seeded order, a window of about `shuffle_tokens` tokens
    at a time, each window's rows permuted together (`epoch_plan`, `window_order`; identity with shuffle=False).
    A global batch is `batch_size * world_size` consecutive rows of that order and rank r takes block r, so ranks
    are disjoint; every rank reads the whole stream and keeps its blocks (reads scale with ranks, memory does
    not). With `drop_last` each epoch ends at the last whole global batch. Memory: the footer index plus one window.

    Iterating runs ONE epoch from the current position; the next `iter()` starts the next epoch (`forever()`
    chains them). `state_dict()` holds (epoch, batches consumed in it); a loader given that state reads only from
    the window holding the next batch on and yields exactly what an uninterrupted run would have yielded. A state
    saved at another world size or batch size is re-sharded when the sequences it consumed fill whole global
    batches of this loader (the order does not depend on either), and refused otherwise.
    """

    def __init__(self, path: str, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = True, split: str = "train",
                 shuffle_tokens: int = SHUFFLE_TOKENS):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.index = ShardIndex.read(path, split)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.window_units = self.index.window_units(shuffle_tokens)
        self.epoch = 0
        self.batches_consumed = 0  # within `epoch`

    @property
    def seq_len(self) -> int:
        return self.index.seq_len

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def _epoch_size(self) -> int:
        total = len(self.index)
        return usable_per_epoch(total, self.global_batch) if self.drop_last else total

    def __len__(self) -> int:
        """Batches per epoch on this rank (with drop_last=False the last, partial one only where its block has rows)."""
        full, rest = divmod(self._epoch_size(), self.global_batch)
        return full + int(rest > self.rank * self.batch_size)

    def _rows(self, epoch: int, start: int, stop: int) -> Iterator[pa.Table]:
        """Epoch positions [start, stop) as Arrow tables, one window at a time."""
        plan = epoch_plan(self.index, self.seed, epoch, self.shuffle, self.window_units)
        for window, lo, hi in plan.pieces(start, stop):
            yield read_window(self.index, plan.windows[window], self.seed, epoch, window, self.shuffle, lo, hi)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        step, size = self.global_batch, self._epoch_size()
        pending: list[pa.Table] = []
        held = 0
        for table in self._rows(self.epoch, self.batches_consumed * step, size):
            pending.append(table)
            held += table.num_rows
            while held >= step or (held and self.batches_consumed * step + held >= size):
                rows = pa.concat_tables(pending)
                batch, rest = rows.slice(0, step), rows.slice(step)
                pending, held = [rest], rest.num_rows
                block = rank_block(batch, self.batch_size, self.rank)
                self.batches_consumed += 1  # counted when handed out: a saved state never repeats it
                if block.num_rows:
                    yield batch_from_table(block)
        self.epoch += 1
        self.batches_consumed = 0

    def forever(self) -> Iterator[dict[str, torch.Tensor]]:
        """Epoch after epoch, each reshuffled with its own seed."""
        if len(self) == 0:
            raise ValueError("no full batch in the data (lower batch_size or set drop_last=False)")
        while True:
            yield from self

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches_consumed": self.batches_consumed, "seed": self.seed,
                "batch_size": self.batch_size, "world_size": self.world_size, "num_sequences": len(self.index),
                "window_units": self.window_units, "shuffle": self.shuffle}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        for key in ("seed", "num_sequences", "window_units", "shuffle"):
            if state.get(key, mine[key]) != mine[key]:
                raise ValueError(f"loader state has {key}={state[key]}, this loader has {mine[key]}: "
                                 f"it belongs to another order of the data")
        consumed = int(state["batches_consumed"]) * int(state.get("batch_size", self.batch_size)) * int(
            state.get("world_size", self.world_size))
        if consumed % self.global_batch:
            raise ValueError(
                f"loader state at {consumed} sequences into epoch {state['epoch']} (world_size="
                f"{state.get('world_size')}, batch_size={state.get('batch_size')}) does not fall on a global batch "
                f"of this loader (world_size={self.world_size}, batch_size={self.batch_size}): resume at a step "
                f"where it does, or with the same world size")
        self.epoch, self.batches_consumed = int(state["epoch"]), consumed // self.global_batch
