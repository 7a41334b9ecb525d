"""The ModernBERT encoder: preset sizes, transformers' names, sparse MLM loss, meta-device init, FLOPs,
learning on real text, and FSDP2 over gloo matching a single process."""

from __future__ import annotations

import math
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.training.test_attention import pack_rows, real_documents, tiny_model
from training.attention import GLOBAL, LOCAL
from training.model import (
    IGNORE_INDEX,
    PRESETS,
    ModernBertMLM,
    count_params,
    flops_per_token,
    model_args,
)


@pytest.mark.parametrize(
    "preset, millions, tolerance",
    [("micro", 16.9, 0.02), ("mini", 68.5, 0.02), ("base", 150.0, 0.02), ("large", 400.0, 0.02)],
)
def test_preset_parameter_counts_match_the_paper(preset, millions, tolerance):
    assert PRESETS[preset].vocab_size == 50368
    assert count_params(PRESETS[preset]) / 1e6 == pytest.approx(millions, rel=tolerance)


def test_every_third_layer_is_global_starting_with_the_first():
    args = PRESETS["base"]
    assert [args.layer_type(i) for i in range(7)] == [GLOBAL, LOCAL, LOCAL, GLOBAL, LOCAL, LOCAL, GLOBAL]


def test_parameter_names_and_shapes_are_those_of_transformers_modernbert():
    from transformers import ModernBertForMaskedLM

    from training.export import hf_config

    args = model_args("tiny")
    ours = ModernBertMLM(args).state_dict()
    theirs = ModernBertForMaskedLM(hf_config(args)).state_dict()
    theirs.pop("decoder.weight")  # tied to model.embeddings.tok_embeddings.weight
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert not any(k.endswith(".bias") for k in ours)


def test_sparse_loss_equals_dense_cross_entropy_on_masked_positions():
    model = tiny_model()
    torch.manual_seed(1)
    ids = torch.randint(5, 512, (2, 48))
    seq_lens = torch.tensor([[20, 28], [48, 0]])
    labels = torch.where(torch.rand(ids.shape) < 0.3, ids, IGNORE_INDEX)
    out = model(ids, seq_lens, labels, return_logits=True)
    dense = model(ids, seq_lens).logits
    expected = torch.nn.functional.cross_entropy(dense.reshape(-1, 512), labels.reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    assert out.logits.shape == (int((labels != IGNORE_INDEX).sum()), 512)
    assert int(out.num_masked) == int((labels != IGNORE_INDEX).sum())


def test_meta_build_then_to_empty_and_init_weights_gives_a_sane_model():
    args = model_args("tiny")
    with torch.device("meta"):
        model = ModernBertMLM(args)
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    model.init_weights()
    assert not list(model.buffers())  # nothing that to_empty could leave uninitialised
    assert torch.equal(model.head.norm.weight, torch.ones(args.dim))
    std = model.model.layers["0"].attn.Wqkv.weight.std().item()
    assert 0.01 < std < 0.02  # truncated normal, std 0.02 cut at 2 sigma
    ids = torch.randint(5, 512, (2, 32))
    loss = model(ids, labels=ids).loss.item()
    assert abs(loss - math.log(args.vocab_size)) < 0.5  # near uniform at init


def test_flops_per_token_counts_the_window_on_local_layers():
    args = PRESETS["base"]
    n_global = sum(args.layer_type(i) == GLOBAL for i in range(args.n_layers))
    # Doubling the length adds attention work on global layers only: local layers see 129 keys.
    delta = flops_per_token(args, 2048) - flops_per_token(args, 1024)
    assert delta == pytest.approx(12 * args.dim * 1024 * n_global)
    # The sparse head scales only the head and decoder matmuls.
    head = args.dim * args.dim + args.vocab_size * args.dim
    assert flops_per_token(args, 1024) - flops_per_token(args, 1024, 0.3) == pytest.approx(6 * head * 0.7)
    assert 6 * count_params(args) < flops_per_token(args, 1024) < 8 * count_params(args)


@pytest.mark.shared_data
def test_a_few_adamw_steps_on_real_packed_text_lower_the_loss(shared_data):
    batch = pack_rows(real_documents(shared_data, 10, seed=3), 128, pad_id=3)
    ids = batch["input_ids"]
    g = torch.Generator().manual_seed(0)
    labels = torch.where((torch.rand(ids.shape, generator=g) < 0.3) & (ids != 3), ids, IGNORE_INDEX)
    model = tiny_model().train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = model(ids, batch["seq_lens"], labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses


def _fsdp_worker(rank: int, world: int, port: int, batches: dict, result_path: str) -> None:
    import os

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from training.parallelize import load_full_state_dict, parallelize_model, unwrap_state_dict_keys

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    args = model_args("tiny", local_attention_window=8)
    with torch.device("meta"):
        model = ModernBertMLM(args)
    parallelize_model(model, args, "cpu", init_device_mesh("cpu", (world,)), ac="full")
    model.to_empty(device="cpu")
    load_full_state_dict(model, batches["init"])  # the same starting weights as the single-process run
    opt = torch.optim.SGD(model.parameters(), lr=0.5)  # linear in the gradients: a fair equality check
    for step in batches["steps"]:
        ids, seq_lens, labels = step[rank]
        model(ids, seq_lens, labels).loss.backward()  # FSDP averages gradients over the ranks
        opt.step()
        opt.zero_grad()
    state = unwrap_state_dict_keys(model)
    if rank == 0:
        torch.save(state, result_path)
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fsdp2_over_gloo_on_two_ranks_matches_one_process(tmp_path):
    args = model_args("tiny", local_attention_window=8)
    torch.manual_seed(0)
    reference = ModernBertMLM(args)
    reference.init_weights()
    init = {k: v.clone() for k, v in reference.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    steps = []
    for _ in range(2):
        per_rank = []
        for _ in range(2):
            ids = torch.randint(5, 512, (2, 64), generator=g)
            seq_lens = torch.tensor([[30, 34], [64, 0]])
            labels = torch.where(torch.rand(ids.shape, generator=g) < 0.3, ids, IGNORE_INDEX)
            per_rank.append((ids, seq_lens, labels))
        steps.append(per_rank)

    opt = torch.optim.SGD(reference.parameters(), lr=0.5)
    for per_rank in steps:
        loss = sum(reference(*batch).loss for batch in per_rank) / len(per_rank)
        loss.backward()
        opt.step()
        opt.zero_grad()

    result = tmp_path / "rank0_state.pt"
    mp.start_processes(_fsdp_worker, args=(2, _free_port(), {"init": init, "steps": steps}, str(result)),
                       nprocs=2, start_method="spawn")
    sharded = torch.load(result)
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(sharded[k], v, atol=1e-5, rtol=1e-4)
    assert not torch.equal(sharded["head.dense.weight"], init["head.dense.weight"])  # it did train
