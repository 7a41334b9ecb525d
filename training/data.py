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


def read_shard(uri: str, columns: list[str] | None = None) -> pa.Table:
    """One part file: memory-mapped when local, through its pyarrow filesystem otherwise."""
    if not fs.is_remote(uri):
        return pq.read_table(fs.local_path(uri), columns=columns, memory_map=True)
    filesystem, path = fs.resolve(uri)
    return pq.read_table(path, columns=columns, filesystem=filesystem)


class PackedSequences:
    """All sequences of a split in memory-mapped numpy form, indexed by `seq_index`."""

    def __init__(self, path: str | Path, split: str = "train"):
        tables = [read_shard(f, COLUMNS) for f in shard_files(path, split)]
        table = pa.concat_tables(tables).combine_chunks()
        order = np.argsort(table.column("seq_index").to_numpy(), kind="stable")
        ids = table.column("input_ids").chunk(0) if table.num_rows else None
        self.seq_len = int(ids.value_lengths()[0].as_py()) if table.num_rows else 0
        self.input_ids = (ids.values.to_numpy().reshape(-1, self.seq_len) if ids is not None
                          else np.zeros((0, 0), np.int32))[order]
        lens = table.column("seq_lens").chunk(0) if table.num_rows else None
        self._lens_offsets = lens.offsets.to_numpy() if lens is not None else np.zeros(1, np.int32)
        self._lens_values = lens.values.to_numpy() if lens is not None else np.zeros(0, np.int32)
        self._lens_row = order  # row of seq_lens for each position
        self.pad_len = table.column("pad_len").to_numpy()[order]
        self.seq_index = table.column("seq_index").to_numpy()[order]
        if not np.array_equal(self.seq_index, np.arange(len(self.seq_index))):
            raise ValueError(f"{path}: seq_index is not 0..N-1")

    def __len__(self) -> int:
        return len(self.seq_index)

    def batch(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch dict for sequences at `positions` (= seq_index values)."""
        rows = self._lens_row[positions]
        starts, ends = self._lens_offsets[rows], self._lens_offsets[rows + 1]
        seq_lens = np.zeros((len(positions), int((ends - starts).max(initial=0))), dtype=np.int32)
        for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
            seq_lens[i, : e - s] = self._lens_values[s:e]
        return {
            "input_ids": torch.from_numpy(self.input_ids[positions].astype(np.int64)),
            "seq_lens": torch.from_numpy(seq_lens),
            "pad_len": torch.from_numpy(self.pad_len[positions].astype(np.int32)),
            "seq_index": torch.from_numpy(self.seq_index[positions].astype(np.int64)),
        }


def epoch_order(num_sequences: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The global visiting order of one epoch (shared with the Ray Data loader path)."""
    if not shuffle:
        return np.arange(num_sequences)
    return np.random.default_rng(seed + epoch).permutation(num_sequences)


def rank_positions(
    order: np.ndarray, batch_size: int, rank: int, world_size: int, drop_last: bool
) -> list[np.ndarray]:
    """This rank's batches of one epoch: rank r takes block r of every global batch.

    With `drop_last=False` the final, short global batch is split the same way, so some ranks may get
    a smaller (or no) last batch; distributed training wants `drop_last=True`.
    """
    step = batch_size * world_size
    stop = len(order) - len(order) % step if drop_last else len(order)
    batches = []
    for start in range(0, stop, step):
        block = order[start + rank * batch_size : start + (rank + 1) * batch_size]
        if len(block):
            batches.append(block)
    return batches


class PackedShardLoader:
    """Deterministic, resumable, rank-disjoint batches over packed shards (see module docstring)."""

    def __init__(
        self,
        path: str,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        split: str = "train",
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.data = PackedSequences(path, split)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.epoch = 0
        self.batches_consumed = 0  # within `epoch`

    @property
    def seq_len(self) -> int:
        return self.data.seq_len

    def _batches(self, epoch: int) -> list[np.ndarray]:
        order = epoch_order(len(self.data), self.seed, epoch, self.shuffle)
        return rank_positions(order, self.batch_size, self.rank, self.world_size, self.drop_last)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return len(self._batches(0))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        batches = self._batches(self.epoch)
        while self.batches_consumed < len(batches):
            positions = batches[self.batches_consumed]
            self.batches_consumed += 1  # counted when handed out: a saved state never repeats it
            yield self.data.batch(positions)
        self.epoch += 1
        self.batches_consumed = 0

    def forever(self) -> Iterator[dict[str, torch.Tensor]]:
        """Epoch after epoch, each reshuffled with seed + epoch."""
        if len(self) == 0:
            raise ValueError("no full batch in the data (lower batch_size or set drop_last=False)")
        while True:
            yield from self

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batches_consumed": self.batches_consumed,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "num_sequences": len(self.data),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "batch_size", "world_size", "num_sequences"):
            mine = self.state_dict()[key]
            if state.get(key, mine) != mine:
                raise ValueError(f"loader state has {key}={state[key]}, this loader has {mine}")
        self.epoch, self.batches_consumed = int(state["epoch"]), int(state["batches_consumed"])
