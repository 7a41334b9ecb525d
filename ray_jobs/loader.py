"""The Ray Data loader path: the stream of `training.data.PackedShardLoader`, read by Ray Data tasks.

    ds = stream_dataset("tokens/general-128", seed=0, global_batch=64, start_batch=0, batches=1000)
    for batch in iter_rank_batches(ds, 32, rank, world_size): ...

Positions: the stream is epoch after epoch of the plain loader's order (`training.data.epoch_plan`), each epoch cut
to the sequences that fill whole global batches (`usable_per_epoch`), so global micro batch k is stream positions
[k * global_batch, (k + 1) * global_batch) and never straddles two epochs. The dataset holds one item per window
(a few consecutive row groups); a Ray Data task reads the window and returns its rows in the epoch's order
(`training.data.read_window`), and with `preserve_order` the windows stream in order. Every rank iterates the whole
stream and keeps its block of each global batch, exactly as the plain loader does, so both give the same batches
in every epoch. There is no global sort and nothing is materialized: a rank holds a few windows at a time (Ray
Data's backpressure), whatever the corpus size.

Resume: a stream that starts at micro batch k begins with the window holding position k * global_batch; only that
window's earlier rows are read again. In Ray Train every worker builds its own stream (`RayPackedBatches`) from
the position its checkpoint holds, so a restart after a failure, or `--resume`, reads nothing it already trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import ray
import torch
from ray.data import DataIterator, Dataset

from infra.core import fs
from training.data import (
    SHUFFLE_TOKENS,
    ShardIndex,
    batch_from_table,
    epoch_plan,
    rank_block,
    read_window,
    usable_per_epoch,
)

READ_CPUS = 0.25  # per window-reading task: it is IO and decoding, and it shares the node with the trainers
READ_CONCURRENCY = 2  # window tasks in flight per stream: enough to stay ahead, and the same warm worker processes
# serve them (unbounded, Ray started a new worker for every 0.25 CPU free and the ordered stream waited ~20 s on
# one that was still importing, at every 8th window)


def dataset_paths(files: Sequence[str]) -> tuple[pafs.FileSystem, list[str]]:
    """(pyarrow filesystem, paths inside it) of files on one filesystem, as Ray Data's `read_*` take them.

    The filesystem object travels to the read tasks (an S3 endpoint with it); credentials come from the
    workers' environment (see `ray_jobs.runtime`).
    """
    resolved = [fs.resolve(f) for f in files]
    return resolved[0][0], [path for _, path in resolved]


def stream_items(index: ShardIndex, seed: int, shuffle: bool, window_units: int, global_batch: int,
                 start: int, count: int) -> list[dict[str, Any]]:
    """The windows (epoch, window, units, rows lo..hi of it) that make up stream positions [start, start + count)."""
    per_epoch = usable_per_epoch(len(index), global_batch)
    if per_epoch == 0:
        raise ValueError(f"{len(index)} sequences fill no global batch of {global_batch}")
    items, position, stop = [], start, start + count
    while position < stop:
        epoch, place = divmod(position, per_epoch)
        plan = epoch_plan(index, seed, epoch, shuffle, window_units)
        epoch_stop = min(per_epoch, place + stop - position)
        items += [{"epoch": epoch, "window": window, "units": json.dumps(plan.windows[window].tolist()), "lo": lo,
                   "hi": hi} for window, lo, hi in plan.pieces(place, epoch_stop)]
        position += epoch_stop - place
    return items


def _read_windows(items: pa.Table, index: ShardIndex, seed: int, shuffle: bool) -> pa.Table:
    """Ray Data task: the rows of the windows in `items` (one, as `stream_dataset` batches them), in order."""
    return pa.concat_tables([
        read_window(index, json.loads(item["units"]), seed, item["epoch"], item["window"], shuffle, item["lo"],
                    item["hi"])
        for item in items.to_pylist()])


def stream_dataset(path: str | Path, seed: int, global_batch: int, start_batch: int, batches: int,
                   shuffle: bool = True, shuffle_tokens: int = SHUFFLE_TOKENS, split: str = "train",
                   read_cpus: float = READ_CPUS) -> Dataset:
    """Global micro batches [start_batch, start_batch + batches) of a token set's split as an ordered Ray dataset."""
    index = ShardIndex.read(path, split)
    items = stream_items(index, seed, shuffle, index.window_units(shuffle_tokens), global_batch,
                         start_batch * global_batch, batches * global_batch)
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
        _read_windows, batch_size=1, batch_format="pyarrow", num_cpus=read_cpus,
        concurrency=max(1, min(READ_CONCURRENCY, len(items))),
        fn_kwargs={"index": index, "seed": seed, "shuffle": shuffle})
    ds.context.execution_options.preserve_order = True
    return ds


def iter_rank_batches(data: DataIterator | Dataset, batch_size: int, rank: int = 0, world_size: int = 1,
                      drop_last: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's batches from a stream dataset: its block of every global batch of `batch_size * world_size`."""
    for table in data.iter_batches(batch_size=batch_size * world_size, batch_format="pyarrow", drop_last=drop_last,
                                   prefetch_batches=2):
        block = rank_block(table, batch_size, rank)
        if block.num_rows:
            yield batch_from_table(block)


class RayPackedBatches:
    """This rank's micro batches of a phase, streamed by Ray Data; a `training.trainer.BatchSource`.

    Position = global micro batches consumed since the phase began (the checkpointed state). Each `iter()` builds
    the stream from that position to the end of the phase's plan (plus a few batches, for the trainer's
    prefetching), so a restored position is resumed without reading what came before it.
    """

    EXTRA_BATCHES = 8

    def __init__(self, path: str, batch_size: int, rank: int, world_size: int, seed: int, shuffle: bool,
                 plan_batches: int, shuffle_tokens: int = SHUFFLE_TOKENS):
        self.path, self.batch_size, self.rank, self.world_size = path, batch_size, rank, world_size
        self.seed, self.shuffle, self.shuffle_tokens = seed, shuffle, shuffle_tokens
        self.plan_batches = plan_batches
        self.consumed = 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        start = self.consumed
        ds = stream_dataset(self.path, self.seed, self.batch_size * self.world_size, start,
                            max(self.plan_batches - start, 0) + self.EXTRA_BATCHES, shuffle=self.shuffle,
                            shuffle_tokens=self.shuffle_tokens)
        for batch in iter_rank_batches(ds, self.batch_size, self.rank, self.world_size):
            self.consumed += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"consumed": self.consumed, "global_batch": self.batch_size * self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sequences = int(state["consumed"]) * int(state.get("global_batch", self.batch_size * self.world_size))
        if sequences % (self.batch_size * self.world_size):
            raise ValueError(f"checkpoint at {sequences} sequences does not fall on a global batch of "
                             f"{self.batch_size} x {self.world_size} ranks: resume with its world size")
        self.consumed = sequences // (self.batch_size * self.world_size)

