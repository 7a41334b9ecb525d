"""PackedShardLoader: batch format, determinism, exact resume, disjoint ranks, shards on S3."""

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
    """103 packed sequences from random documents, written as the pack job writes them (3 parts)."""
    out = tmp_path_factory.mktemp("tokens") / "set"
    write_split(out / "train", triples(), SEQ_LEN, rows_per_shard=40)
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


@pytest.mark.parametrize("consumed", [0, 3, 9, 14])  # within the first epoch, at its end, in the second
def test_resumed_loader_sees_exactly_the_remaining_sequences(shards, consumed):
    reference = PackedShardLoader(str(shards), batch_size=10, seed=1)
    uninterrupted = seen(b for _, b in zip(range(20), reference.forever(), strict=False))
    first = PackedShardLoader(str(shards), batch_size=10, seed=1)
    before = seen(b for _, b in zip(range(consumed), first.forever(), strict=False))
    state = first.state_dict()
    resumed = PackedShardLoader(str(shards), batch_size=10, seed=1)
    resumed.load_state_dict(state)
    after = seen(b for _, b in zip(range(20 - consumed), resumed.forever(), strict=False))
    assert before + after == uninterrupted


def test_ranks_are_disjoint_and_cover_the_global_batches(shards):
    per_rank = [seen(PackedShardLoader(str(shards), batch_size=4, rank=r, world_size=3, seed=2)) for r in range(3)]
    assert all(len(s) == 32 for s in per_rank)  # 103 // 12 = 8 global batches of 4 per rank
    everything = [i for s in per_rank for i in s]
    assert len(set(everything)) == len(everything) == 96


def test_state_from_another_world_size_is_refused(shards):
    state = PackedShardLoader(str(shards), batch_size=4, world_size=2).state_dict()
    with pytest.raises(ValueError, match="world_size"):
        PackedShardLoader(str(shards), batch_size=4).load_state_dict(state)


def test_shards_written_to_s3_load_the_same_batches_and_resume_there(shards, s3_server):
    token_set = fs.join(s3_server, "loader/set")
    write_split(fs.join(token_set, "train"), triples(), SEQ_LEN, rows_per_shard=40)
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
