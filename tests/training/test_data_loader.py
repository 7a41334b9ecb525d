"""PackedShardLoader: batch format, determinism, streaming by windows, exact resume, disjoint ranks, re-sharding,
shards on S3."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from infra.core import fs
from ray_jobs.tokenize import write_split
from training.data import PackedShardLoader, pack_documents, shard_files

SEQ_LEN = 32


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """103 packed sequences from random documents, written as the pack job writes them (3 parts of row groups of
    16 rows: 40, 40 and 23 rows, 8 row groups)."""
    out = tmp_path_factory.mktemp("tokens") / "set"
    write_split(out / "train", triples(), SEQ_LEN, rows_per_shard=40, row_group_rows=16)
    return out


def triples() -> list:
    """(source, packed_index, sequence) of 103 packed sequences from random documents."""
    rng = np.random.default_rng(0)
    docs = [(f"d{i}", rng.integers(10, 500, size=rng.integers(3, 80)).tolist()) for i in range(110)]
    sequences, _ = pack_documents(docs, SEQ_LEN, 1, 2, 3)
    return [("src", i, s) for i, s in enumerate(sequences[:103])]


def seen(batches) -> list[int]:
    return [i for b in batches for i in b["seq_index"].tolist()]


def test_batch_dict_has_documented_types_and_consistent_boundaries(shards):
    batch = next(iter(PackedShardLoader(str(shards), batch_size=8)))
    assert batch["input_ids"].dtype == torch.int64 and batch["input_ids"].shape == (8, SEQ_LEN)
    assert batch["seq_lens"].dtype == torch.int32 and batch["seq_lens"].shape[0] == 8
    assert batch["pad_len"].dtype == torch.int32 and batch["pad_len"].shape == (8,)
    assert (batch["seq_lens"].sum(dim=1) == SEQ_LEN).all()
    for ids, lens in zip(batch["input_ids"], batch["seq_lens"], strict=True):
        starts = torch.cumsum(lens[lens > 0], 0) - lens[lens > 0]
        assert (ids[starts] == 1).all()  # every segment opens with [CLS]


def test_one_epoch_visits_every_full_batch_once_and_next_epoch_reshuffles(shards):
    loader = PackedShardLoader(str(shards), batch_size=10, seed=5)
    first, second = seen(loader), seen(loader)
    assert len(first) == 100 and len(set(first)) == 100  # 103 // 10 full batches
    assert first != second and loader.state_dict()["epoch"] == 2
    assert seen(PackedShardLoader(str(shards), batch_size=10, seed=5)) == first
    assert seen(PackedShardLoader(str(shards), batch_size=10, shuffle=False)) == list(range(100))
    assert len(seen(PackedShardLoader(str(shards), batch_size=10, drop_last=False))) == 103


@pytest.mark.parametrize("buffer", [2**17, 16 * SEQ_LEN])  # one window over all row groups; one per row group
@pytest.mark.parametrize("consumed", [0, 3, 9, 14])  # within the first epoch, at its end, in the second
def test_resumed_loader_sees_exactly_the_remaining_sequences(shards, consumed, buffer):
    reference = PackedShardLoader(str(shards), batch_size=10, seed=1, shuffle_tokens=buffer)
    uninterrupted = seen(b for _, b in zip(range(20), reference.forever(), strict=False))
    first = PackedShardLoader(str(shards), batch_size=10, seed=1, shuffle_tokens=buffer)
    before = seen(b for _, b in zip(range(consumed), first.forever(), strict=False))
    state = first.state_dict()
    resumed = PackedShardLoader(str(shards), batch_size=10, seed=1, shuffle_tokens=buffer)
    resumed.load_state_dict(state)
    after = seen(b for _, b in zip(range(20 - consumed), resumed.forever(), strict=False))
    assert before + after == uninterrupted


def test_loader_streams_window_by_window_and_a_resume_reads_from_the_next_batchs_window(shards):
    """Small windows: the loader never holds more than one window of row groups, still visits every sequence once
    per epoch in a seeded order, and a resumed loader reads no row group before the window it resumes in."""
    loader = PackedShardLoader(str(shards), batch_size=5, seed=3, shuffle_tokens=16 * SEQ_LEN)
    units = len(loader.index.unit_rows)
    assert loader.window_units == 1 and units == 8  # row groups of 16, 16, 8 | 16, 16, 8 | 16, 7 rows
    reads: list[int] = []
    read_units = loader.index.read_units
    loader.index.read_units = lambda chosen, *a: reads.append(len(chosen)) or read_units(chosen, *a)
    first = seen(loader)
    assert sorted(first) == sorted(set(first)) and len(first) == 100 and first != sorted(first)
    assert max(reads) == 1 and len(reads) == units
    resumed = PackedShardLoader(str(shards), batch_size=5, seed=3, shuffle_tokens=16 * SEQ_LEN)
    resumed.load_state_dict({**loader.state_dict(), "epoch": 0, "batches_consumed": 12})
    reads.clear()
    resumed.index.read_units = lambda chosen, *a: reads.append(len(chosen)) or read_units(chosen, *a)
    assert seen(resumed) == first[60:]
    assert len(reads) <= units - 60 // 16 and len(reads) >= 3


def test_ranks_are_disjoint_and_cover_the_global_batches(shards):
    per_rank = [seen(PackedShardLoader(str(shards), batch_size=4, rank=r, world_size=3, seed=2)) for r in range(3)]
    assert all(len(s) == 32 for s in per_rank)  # 103 // 12 = 8 global batches of 4 per rank
    everything = [i for s in per_rank for i in s]
    assert len(set(everything)) == len(everything) == 96


def test_state_from_another_world_size_is_resharded_on_a_global_batch_boundary_and_refused_elsewhere(shards):
    """The order does not depend on the world size: 3 global batches of 2 x 4 are 24 sequences, which a single
    rank of 4 (or two ranks of 6) continues from exactly; a single rank of 5 cannot and is refused."""
    two = PackedShardLoader(str(shards), batch_size=4, world_size=2, seed=6)
    stream = iter(two)
    for _ in range(3):
        next(stream)
    state = two.state_dict()
    order = seen(PackedShardLoader(str(shards), batch_size=1, seed=6))
    one = PackedShardLoader(str(shards), batch_size=4, seed=6)
    one.load_state_dict(state)
    assert seen(one) == order[24:100]
    wider = [PackedShardLoader(str(shards), batch_size=6, rank=r, world_size=2, seed=6) for r in range(2)]
    for loader in wider:
        loader.load_state_dict(state)
    assert sorted(seen(wider[0]) + seen(wider[1])) == sorted(order[24:96])
    with pytest.raises(ValueError, match="does not fall on a global batch"):
        PackedShardLoader(str(shards), batch_size=5, seed=6).load_state_dict(state)
    with pytest.raises(ValueError, match="seed=6"):
        PackedShardLoader(str(shards), batch_size=4, seed=7).load_state_dict(state)


def test_shards_written_to_s3_load_the_same_batches_and_resume_there(shards, s3_server):
    token_set = fs.join(s3_server, "loader/set")
    write_split(fs.join(token_set, "train"), triples(), SEQ_LEN, rows_per_shard=40, row_group_rows=16)
    assert [fs.name_of(f) for f in shard_files(token_set)] == [fs.name_of(f) for f in shard_files(shards)]
    remote, local = PackedShardLoader(token_set, batch_size=10, seed=4), PackedShardLoader(str(shards), 10, seed=4)
    assert [b["input_ids"].tolist() for b in remote] == [b["input_ids"].tolist() for b in local]
    next(iter(remote))  # one batch into the second epoch
    resumed = PackedShardLoader(token_set, batch_size=10, seed=4)
    resumed.load_state_dict(remote.state_dict())
    assert seen(resumed) == seen(local)[10:]  # the local loader's second epoch, less its first batch


def test_missing_shards_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"no part-*.parquet shards under {tmp_path}/train")):
        shard_files(tmp_path)


def test_training_data_module_does_not_import_ray():
    code = "import sys, training.data, training.data, training.tokenizer; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_prepared_batches_prefetch_without_consuming_and_resume_where_the_step_stopped(shards):
    """The host thread runs ahead of the step, but the state is that of the last batch handed out; the epochs
    chain, a resumed source continues exactly, and the preparation sees the phase's micro batch number."""
    from training.trainer import PreparedBatches

    def prepare(batch, number):
        return number, batch["seq_index"].tolist()

    def take(source, count):
        return [source.next() for _ in range(count)]

    reference = take(PreparedBatches(PackedShardLoader(str(shards), 10, seed=8), prepare, depth=3), 25)
    assert [n for n, _ in reference] == list(range(25))
    assert sorted(i for _, b in reference[:10] for i in b) == sorted(seen(PackedShardLoader(str(shards), 10, seed=8)))
    first = PreparedBatches(PackedShardLoader(str(shards), 10, seed=8), prepare, depth=3)
    before = take(first, 12)
    state = first.state_dict()
    assert state["batches"] == 12 and state["source"]["epoch"] == 1 and state["source"]["batches_consumed"] == 2
    first.close()
    resumed = PreparedBatches(PackedShardLoader(str(shards), 10, seed=8), prepare, depth=3)
    resumed.load_state_dict(state)
    assert before + take(resumed, 13) == reference
    resumed.close()
    at_epoch_end = PreparedBatches(PackedShardLoader(str(shards), 10, seed=8), prepare)
    take(at_epoch_end, 10)  # the state holds epoch 0 with all 10 batches consumed: it resumes into epoch 1
    again = PreparedBatches(PackedShardLoader(str(shards), 10, seed=8), prepare)
    again.load_state_dict(at_epoch_end.state_dict())
    assert take(again, 15) == reference[10:]
    at_epoch_end.close()
    again.close()

    def broken(batch, number):
        raise ValueError(f"cannot prepare batch {number}")

    with pytest.raises(ValueError, match="cannot prepare batch 0"):
        PreparedBatches(PackedShardLoader(str(shards), 10, seed=8), broken).next()
