"""The Ray Data loader path: packed shards as a Ray dataset, batched on every Ray Train worker.

Same order and batches as `training.data.PackedShardLoader` (same seed, batch size, world size),
so a run can move between the two paths. The order is fixed on the driver, the ranks slice it:

    ds = ordered_dataset(read_packed("tokens/general-128"), seed=0, epochs=range(0, 3))
    trainer = TorchTrainer(..., datasets={"train": ds}, dataset_config=data_config())
    # on each worker:
    for batch in iter_rank_batches(ray.train.get_dataset_shard("train"), 32, rank, world_size): ...

`ordered_dataset` numbers every row with its `position` in the seeded epoch order (one copy per
epoch) and sorts by it; `data_config()` gives every worker the whole ordered stream (no
`streaming_split`, whose block assignment is not deterministic) with `preserve_order`; each worker's
`iter_torch_batches` reads global batches of `batch_size * world_size` and keeps its own block.

Epochs: each keeps the places of its order that fill whole global batches (`global_batch`), as the plain
loader's `drop_last` does, so both give the same batches in every epoch and a global batch never straddles
two epochs.

Resume by skip count: a run that consumed `k` global batches since the start of epoch `e0` builds
`ordered_dataset(..., epochs=range(e0, ...), skip_sequences=k * batch_size * world_size)`; the
skipped rows are filtered out before batching, and what follows is exactly what was not yet seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import ray
import torch
from ray.data import DataIterator, Dataset, ExecutionOptions
from ray.data.collate_fn import NumpyBatchCollateFn

from infra.core import fs
from training.data import COLUMNS, epoch_order, shard_files


def dataset_paths(files: Sequence[str]) -> tuple[pafs.FileSystem, list[str]]:
    """(pyarrow filesystem, paths inside it) of files on one filesystem, as Ray Data's `read_*` take them.

    The filesystem object travels to the read tasks (an S3 endpoint with it); credentials come from the
    workers' environment (see `ray_jobs.runtime`).
    """
    resolved = [fs.resolve(f) for f in files]
    return resolved[0][0], [path for _, path in resolved]


def read_packed(path: str | Path, split: str = "train") -> Dataset:
    """The packed shards of one split (a token set's path or URI) as a Ray dataset."""
    filesystem, paths = dataset_paths(shard_files(path, split))
    return ray.data.read_parquet(paths, columns=COLUMNS, filesystem=filesystem)


def _add_positions(batch: pa.Table, positions: list[np.ndarray], epochs: list[int],
                   per_epoch: int, skip: int) -> pa.Table:
    # One copy of the batch per epoch; position = k * U + place of seq_index in epoch k's order, for the U
    # places of an epoch that fill whole global batches (the ragged rest of each epoch is dropped, as the
    # plain loader drops it).
    seq_index = batch.column("seq_index").to_numpy()
    copies = []
    for k, epoch in enumerate(epochs):
        place = positions[k][seq_index]
        pos = k * per_epoch + place
        keep = np.nonzero((pos >= skip) & (place < per_epoch))[0]
        copy = batch.take(pa.array(keep)).append_column("position", pa.array(pos[keep]))
        copies.append(copy.append_column("epoch", pa.array(np.full(len(keep), epoch, dtype=np.int64))))
    return pa.concat_tables(copies)


def ordered_dataset(
    ds: Dataset, seed: int = 0, epochs: range | int = 1, shuffle: bool = True, skip_sequences: int = 0,
    global_batch: int = 1,
) -> Dataset:
    """Rows in the deterministic order of `epochs` (an int n means range(n)), minus the first
    `skip_sequences` of that order; adds `position` and `epoch` columns.

    Each epoch keeps the first `usable_per_epoch(N, global_batch)` places of its order: the ragged rest,
    which cannot fill a global batch, is dropped per epoch, exactly as `training.data.PackedShardLoader`
    (drop_last) drops it, so the two loaders give the same batches in every epoch, not only the first.
    `skip_sequences` counts kept rows."""
    epochs = list(range(epochs) if isinstance(epochs, int) else epochs)
    num_sequences = ds.count()
    per_epoch = usable_per_epoch(num_sequences, global_batch)
    positions = []
    for epoch in epochs:  # inverse permutation: seq_index -> place in the epoch's order
        order = epoch_order(num_sequences, seed, epoch, shuffle)
        inverse = np.empty(num_sequences, dtype=np.int64)
        inverse[order] = np.arange(num_sequences)
        positions.append(inverse)
    ordered = ds.map_batches(
        _add_positions,
        batch_format="pyarrow",
        fn_kwargs={"positions": positions, "epochs": epochs, "per_epoch": per_epoch, "skip": skip_sequences},
    ).sort("position")
    ordered.context.execution_options.preserve_order = True  # iterate in sorted order on the driver too
    return ordered


def usable_per_epoch(num_sequences: int, global_batch: int) -> int:
    """Sequences of one epoch that fill whole global batches (`global_batch` = micro batch x world size)."""
    if global_batch < 1:
        raise ValueError(f"global_batch must be at least 1, got {global_batch}")
    return num_sequences - num_sequences % global_batch


def data_config() -> Any:
    """Ray Train DataConfig: each worker gets the whole ordered dataset, in order."""
    from ray.train import DataConfig

    return DataConfig(datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True))


def collate_rank_block(batch: dict[str, np.ndarray], batch_size: int, rank: int) -> dict[str, torch.Tensor]:
    """collate_fn: keep this rank's block of a global batch; same dict as PackedShardLoader."""
    block = slice(rank * batch_size, (rank + 1) * batch_size)
    rows = list(batch["seq_lens"][block])
    seq_lens = np.zeros((len(rows), max((len(r) for r in rows), default=0)), dtype=np.int32)
    for i, r in enumerate(rows):
        seq_lens[i, : len(r)] = r
    return {
        "input_ids": torch.from_numpy(np.stack(list(batch["input_ids"][block])).astype(np.int64)),
        "seq_lens": torch.from_numpy(seq_lens),
        "pad_len": torch.from_numpy(batch["pad_len"][block].astype(np.int32)),
        "seq_index": torch.from_numpy(batch["seq_index"][block].astype(np.int64)),
    }


class RankBlockCollate(NumpyBatchCollateFn):
    """`iter_torch_batches` collate_fn (the callable-class form Ray asks for): `collate_rank_block`."""

    def __init__(self, batch_size: int, rank: int):
        self.batch_size, self.rank = batch_size, rank

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return collate_rank_block(batch, self.batch_size, self.rank)


def iter_rank_batches(
    data: DataIterator | Dataset, batch_size: int, rank: int = 0, world_size: int = 1, drop_last: bool = True,
) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's batches from an ordered dataset (or a Ray Train dataset shard of one)."""
    collate = RankBlockCollate(batch_size, rank)
    for batch in data.iter_torch_batches(
        batch_size=batch_size * world_size, collate_fn=collate, drop_last=drop_last, prefetch_batches=2,
    ):
        if len(batch["input_ids"]):
            yield batch


class RayPackedBatches:
    """This rank's micro batches from the ordered Ray dataset of `ray_jobs.loader` (a Ray Train shard).

    The dataset starts `start_batches` global micro batches into the phase's deterministic order (the
    driver skips what a resumed run already saw). Position = global micro batches consumed since the
    phase began; after Ray Train restarts a worker from a later checkpoint, the batches between the
    dataset's start and that checkpoint are read and dropped (skip count).
    """

    def __init__(self, shard, batch_size: int, rank: int, world_size: int, start_batches: int = 0):
        self.shard, self.batch_size, self.rank, self.world_size = shard, batch_size, rank, world_size
        self.start_batches = self.consumed = start_batches

    def __iter__(self):
        target, position = self.consumed, self.start_batches
        for batch in iter_rank_batches(self.shard, self.batch_size, self.rank, self.world_size):
            position += 1
            if position <= target:
                continue
            self.consumed = position
            yield batch
        raise RuntimeError(f"the ordered dataset ended after {position} micro batches; it was built too short")

    def state_dict(self) -> dict[str, int]:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["consumed"]) < self.start_batches:
            raise ValueError(f"checkpoint at micro batch {state['consumed']} is before this dataset's start "
                             f"({self.start_batches})")
        self.consumed = int(state["consumed"])
