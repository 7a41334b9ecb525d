"""The training loader over packed shards: plain pyarrow, per rank, deterministic, resumable. No Ray.

Shards are what `ray_jobs.tokenize.pack` writes: `<token set>/<split>/part-XXXXX.parquet` with
`input_ids` (exactly L ids), `seq_lens` (segment lengths, sum L), `pad_len`, `source`, `seq_index`.
The token set is a local path or a URI (`s3://`, `gs://`, ...), read through `infra.core.fs`.

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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from infra.core import fs

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
