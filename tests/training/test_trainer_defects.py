"""The trainer's GPU-throughput defects, each checked on the CPU: one mixed-precision mechanism, a sync-free
foreach optimizer, a host-known masked count, one all-reduce for the gradient norm, a non-zero first warmup
LR, a schedule over the steps actually run, job-wide tokens/s, cached attention masks, no resharding under
gradient accumulation, optimizer moments carried into the next phase, and attention FLOPs per layout.

FSDP checks run two gloo ranks in spawned processes (`_two_rank_worker`), once for the module.
"""

from __future__ import annotations

import json
import math
import socket
from collections import Counter
from pathlib import Path

import optimi
import pytest
import torch
import torch.multiprocessing as mp
from torch.utils._python_dispatch import TorchDispatchMode

from infra.core.config import OptimSection, PretrainConfig, load_phase
from tests.training.shard_fixtures import demo_tokens  # noqa: F401  (session fixture)
from training.attention import LOCAL, AttentionCache, build_attention_inputs, sdpa_masks
from training.metrics import MetricsProcessor
from training.mlm import IGNORE_INDEX, count_masked
from training.model import GLOBAL, ModernBertMLM, attention_flops, model_args
from training.optim import StableAdamW, build_optimizer, clip_grad_norm_, param_groups
from training.parallelize import reshard_after_forward_for
from training.schedule import WSD, LRSchedule, lr_at
from training.trainer import Trainer, precision_plan


class OpCounter(TorchDispatchMode):
    """Counts every aten op by name; `_local_scalar_dense` is a read back to the host (`.item()`)."""

    def __init__(self):
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def tiny_model(seed: int = 0, **overrides) -> ModernBertMLM:
    torch.manual_seed(seed)
    model = ModernBertMLM(model_args("tiny", **overrides))
    model.init_weights()
    return model


def random_batch(g: torch.Generator, rows: int = 2, length: int = 64):
    ids = torch.randint(5, 512, (rows, length), generator=g)
    labels = torch.where(torch.rand(ids.shape, generator=g) < 0.3, ids, IGNORE_INDEX)
    seq_lens = torch.tensor([[20, length - 20]] + [[length, 0]] * (rows - 1))
    return ids, seq_lens, labels


def demo_config(tmp_path: Path, demo_root: Path, phase_overrides: dict | None = None, **sections) -> PretrainConfig:
    return PretrainConfig.model_validate({
        "run_dir": str(tmp_path / "run"),
        "phases": {name: f"smoke-{name}.yaml" for name in ("general", "context", "decay")},
        "phase_overrides": phase_overrides or {},
        "data": {"root": str(demo_root / "tokens"), "micro_batch_size": 2},
        "checkpoint": {"interval": 100},
        "metrics": {"log_interval": 1, "tensorboard": False, "progress": False},
        **sections,
    })


# --- 1. mixed precision: FSDP2's policy when sharded, autocast only when not -------------------------------------


def test_precision_plan_picks_one_mechanism():
    assert precision_plan("auto", "cuda", sharded=True) == (sharded := precision_plan("bf16", "cpu", sharded=True))
    assert sharded.param_dtype == "bf16" and not sharded.autocast
    plain = precision_plan("auto", "cuda", sharded=False)
    assert plain.param_dtype == "fp32" and plain.autocast
    for setting, device in (("auto", "cpu"), ("fp32", "cuda")):
        for shard in (True, False):
            off = precision_plan(setting, device, shard)
            assert off.param_dtype == "fp32" and not off.autocast


@pytest.mark.shared_data
def test_plain_bf16_run_autocasts_every_micro_batch(tmp_path, demo_tokens, monkeypatch):  # noqa: F811
    entered = []
    real_enter = torch.autocast.__enter__
    monkeypatch.setattr(torch.autocast, "__enter__", lambda self: entered.append(self.fast_dtype) or real_enter(self))
    config = demo_config(tmp_path, demo_tokens, {"general": {"max_steps": 1}},
                         parallelism={"mixed_precision": "bf16"})
    trainer = Trainer(config, load_phase(config, "general"), tmp_path / "p", demo_tokens / "tokens" / "general-128")
    assert trainer.precision.autocast and trainer.precision.param_dtype == "fp32"
    trainer.train()
    assert entered == [torch.bfloat16] * (trainer.plan[0] // trainer.unit)


# --- 2. optimizer: foreach, no read-back per parameter, the same update as optimi's loop ------------------------


def test_stableadamw_is_foreach_and_matches_optimis_loop():
    ours, reference = tiny_model(), tiny_model()
    config = OptimSection()
    opt = build_optimizer(ours, config, lr=1e-3)
    assert isinstance(opt, StableAdamW) and isinstance(opt, optimi.StableAdamW)
    assert all(group["foreach"] and not group["triton"] for group in opt.param_groups)
    loop = optimi.StableAdamW(param_groups(reference, config.weight_decay), lr=1e-3, betas=config.betas,
                              eps=config.eps, weight_decay=config.weight_decay, decouple_lr=True, max_lr=1e-3,
                              foreach=False)
    g = torch.Generator().manual_seed(0)
    reads = {}
    for _ in range(4):
        ids, seq_lens, labels = random_batch(g)
        for name, model, optimizer in (("ours", ours, opt), ("loop", reference, loop)):
            model(ids, seq_lens, labels).loss.backward()
            with OpCounter() as counter:
                optimizer.step()
            reads[name] = counter.counts["_local_scalar_dense"]
            optimizer.zero_grad(set_to_none=True)
        for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    n_params = len(list(ours.parameters()))
    assert reads["loop"] >= n_params  # optimi's loop reads every tensor's RMS back
    assert reads["ours"] <= len(opt.param_groups)  # ours: only the CPU step counter of each group
    state = opt.state[ours.head.dense.weight]
    assert state["exp_avg"].abs().sum() > 0 and int(opt.param_groups[0]["step"]) == 4


# --- 3. the masked count comes from the host: no nonzero / .item() in the loss path ------------------------------


def test_loss_path_with_num_masked_never_reads_back_and_gives_the_same_loss():
    model = tiny_model()
    ids, seq_lens, labels = random_batch(torch.Generator().manual_seed(3))
    attn = build_attention_inputs(seq_lens, ids.shape[1], model.args.local_attention_window)
    with OpCounter() as without:
        reference = model(ids, labels=labels, attn=attn)
    n = count_masked(labels)
    assert n == int((labels != IGNORE_INDEX).sum()) > 0
    with OpCounter() as counted:
        out = model(ids, labels=labels, attn=attn, num_masked=n)
        out.loss.backward()
    assert without.counts["nonzero"] >= 1  # the counter sees the sync when the count is not given
    assert counted.counts["nonzero"] == 0 and counted.counts["_local_scalar_dense"] == 0
    torch.testing.assert_close(out.loss, reference.loss)
    with pytest.raises(ValueError, match="host"):
        count_masked(labels.to("meta"))


@pytest.mark.shared_data
def test_trainer_batches_carry_the_host_count_and_prebuilt_masks(tmp_path, demo_tokens, monkeypatch):  # noqa: F811
    import training.attention
    import training.model

    def refuse(*args, **kwargs):
        raise AssertionError("the model built its own masks: the trainer should pass them in")

    builds = []
    real_build = training.attention.build_attention_inputs
    monkeypatch.setattr(training.model, "build_attention_inputs", refuse)
    monkeypatch.setattr(training.attention, "build_attention_inputs",
                        lambda seq_lens, *a, **k: builds.append(seq_lens.clone()) or real_build(seq_lens, *a, **k))
    config = demo_config(tmp_path, demo_tokens, {"general": {"max_steps": 2}})
    trainer = Trainer(config, load_phase(config, "general"), tmp_path / "p", demo_tokens / "tokens" / "general-128")
    batch, real, flops = trainer._next_micro_batch()
    assert batch["num_masked"] == int((batch["labels"] != IGNORE_INDEX).sum()) > 0
    assert set(batch["attn"].masks) == {GLOBAL, LOCAL} and trainer.attention.builds == len(builds) == 1
    assert real > 0 and flops > real * trainer.matmul_flops_per_token
    summary = trainer.train()
    assert summary["steps"] == 2 and all(math.isfinite(x) for x in summary["losses"])
    layouts = {(tuple(s.shape), s.numpy().tobytes()) for s in builds}
    assert trainer.attention.builds == len(builds) == len(layouts)  # one build per distinct layout


# --- 4. gradient norm: reduced once, and the same as torch's clipping ---------------------------------------------


def test_clip_grad_norm_matches_torch_and_measures_without_clipping():
    ours, reference = tiny_model(), tiny_model()
    ids, seq_lens, labels = random_batch(torch.Generator().manual_seed(5))
    for model in (ours, reference):
        model(ids, seq_lens, labels).loss.backward()
    norm = clip_grad_norm_(ours.parameters(), 0.1)
    expected = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.1)
    torch.testing.assert_close(norm, expected)
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ours.parameters()]))
    assert clipped == pytest.approx(0.1, rel=1e-4)
    assert float(clip_grad_norm_(ours.parameters(), None)) == pytest.approx(float(clipped), rel=1e-5)


# --- 5 and 6. LR: the first warmup step is not ~0; the schedule spans the steps a phase runs ----------------------


def test_first_warmup_step_runs_at_peak_over_warmup_steps():
    wsd = WSD(peak_lr=8e-4, total_tokens=10**12, warmup_tokens=3 * 10**9)
    step_tokens = 4608 * 1024
    warmup_steps = wsd.warmup_tokens / step_tokens
    assert lr_at(0, wsd, step_tokens) == pytest.approx(8e-4 / warmup_steps)
    assert lr_at(0, wsd) < 1e-12  # what the first step ran at before: peak / 3e9
    schedule = LRSchedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0), wsd, step_tokens)
    assert schedule.optimizer.param_groups[0]["lr"] == pytest.approx(8e-4 / warmup_steps)
    schedule.step(step_tokens, next_step_tokens=step_tokens)
    assert schedule.lr == pytest.approx(2 * 8e-4 / warmup_steps)


@pytest.mark.shared_data
def test_trainer_schedule_spans_max_steps_and_starts_above_zero(tmp_path, demo_tokens):  # noqa: F811
    data = demo_tokens / "tokens"
    config = demo_config(tmp_path, demo_tokens, {"general": {"max_steps": 5}, "decay": {"max_steps": 2}})
    general = Trainer(config, load_phase(config, "general"), tmp_path / "g", data / "general-128")
    phase = general.phase  # warmup 2048 tokens, first step 4 x 128 tokens
    first = general.lr_schedule.lr
    assert general.lr_schedule.wsd.warmup_tokens == phase.schedule.warmup_tokens
    assert first == pytest.approx(phase.lr * general.plan[0] * phase.seq_len / phase.schedule.warmup_tokens)
    assert general.lr_schedule.wsd.total_tokens == sum(general.plan) * phase.seq_len < phase.tokens

    decay = Trainer(config, load_phase(config, "decay"), tmp_path / "d", data / "decay-256")
    assert len(decay.plan) == 2 and decay.lr_schedule.wsd.total_tokens == sum(decay.plan) * 256 < decay.phase.tokens
    lrs = []
    decay.metrics.sinks.append(lambda step, values: lrs.append(values["lr"]))
    decay.train()
    peak = decay.phase.lr
    assert lrs == pytest.approx([peak * (1 - math.sqrt(i / 2)) for i in range(2)])  # 1-sqrt over 2 steps, not 4


# --- 8. attention masks: built once per document layout -----------------------------------------------------------


def test_attention_cache_builds_each_layout_once(monkeypatch):
    import training.attention

    calls = []
    real_build = training.attention.build_attention_inputs
    monkeypatch.setattr(training.attention, "build_attention_inputs",
                        lambda *a, **k: calls.append(1) or real_build(*a, **k))
    cache = AttentionCache(seq_len=64, window=8, backend="sdpa", device="cpu", max_entries=2)
    a, b, c = torch.tensor([[30, 34], [64, 0]]), torch.tensor([[64], [64]]), torch.tensor([[10, 54], [64, 0]])
    first = cache.get(a)
    assert cache.get(a.clone()) is first and len(calls) == 1  # same layout, new tensor: reused
    cache.get(b)
    cache.get(a)
    assert len(calls) == 2 and cache.builds == 2
    cache.get(c)  # a third layout evicts the least recently used (b)
    cache.get(b)
    assert cache.builds == 4
    expected = build_attention_inputs(a, 64, 8)
    assert torch.equal(first.position_ids, expected.position_ids)
    assert all(torch.equal(first.masks[k], expected.masks[k]) for k in expected.masks)


# --- 9. reshard_after_forward: off under gradient accumulation ----------------------------------------------------


def test_reshard_after_forward_only_without_accumulation():
    assert reshard_after_forward_for(1) is True
    assert reshard_after_forward_for(2) is False and reshard_after_forward_for(18) is False
    with pytest.raises(ValueError):
        reshard_after_forward_for(0)


# --- 10. the next phase starts with the previous phase's moments --------------------------------------------------


@pytest.mark.shared_data
def test_decay_phase_carries_the_optimizer_moments(tmp_path, demo_tokens):  # noqa: F811
    from training.checkpoint import latest_checkpoint

    data = demo_tokens / "tokens"
    config = demo_config(tmp_path, demo_tokens, {"context": {"max_steps": 2}, "decay": {"max_steps": 2, "lr": 5e-4}})
    context = Trainer(config, load_phase(config, "context"), tmp_path / "run" / "context", data / "context-256")
    context.train()
    name = "head.dense.weight"
    saved = {k: v.clone() for k, v in context.optimizer.state[context.model.head.dense.weight].items()
             if torch.is_tensor(v)}
    checkpoint = latest_checkpoint(tmp_path / "run" / "context" / "checkpoints")

    decay = Trainer(config, load_phase(config, "decay"), tmp_path / "run" / "decay", data / "decay-256",
                    init_from=checkpoint)
    assert decay.carried_optimizer_state
    state = decay.optimizer.state[dict(decay.model.named_parameters())[name]]
    assert saved["exp_avg"].abs().sum() > 0 and saved["exp_avg_sq"].abs().sum() > 0
    assert torch.equal(state["exp_avg"], saved["exp_avg"]) and torch.equal(state["exp_avg_sq"], saved["exp_avg_sq"])
    groups = decay.optimizer.param_groups
    assert int(groups[0]["step"]) == 2  # bias correction continues from the context phase's steps
    assert groups[0]["max_lr"] == 5e-4 and groups[0]["lr"] == decay.lr_schedule.lr == pytest.approx(5e-4)
    summary = decay.train()
    assert all(math.isfinite(x) for x in summary["losses"]) and int(groups[0]["step"]) == 4


# --- 11. attention FLOPs: the pairs the masks keep, per document ---------------------------------------------------


def test_attention_flops_count_the_pairs_the_masks_keep():
    args = model_args("tiny", local_attention_window=8)  # 4 layers: 0 and 3 global, 1 and 2 local
    seq_lens = torch.tensor([[20, 30, 14], [64, 0, 0], [5, 40, 19]])  # row 2 ends in a 19-token pad segment
    pad_len = torch.tensor([0, 0, 19])
    L = 64
    doc_ids = torch.searchsorted(seq_lens.cumsum(-1), torch.arange(L).expand(3, L).contiguous(), right=True)
    masks = sdpa_masks(doc_ids, args.local_attention_window)
    keep = torch.ones(3, L, dtype=torch.bool)
    keep[2, L - 19:] = False  # padding queries are not useful work
    pairs = {kind: int((mask.squeeze(1) & keep[:, :, None]).sum()) for kind, mask in masks.items()}
    n_global = sum(args.layer_type(i) == GLOBAL for i in range(args.n_layers))
    expected = 12 * args.dim * (n_global * pairs[GLOBAL] + (args.n_layers - n_global) * pairs["local"])
    assert attention_flops(args, seq_lens, pad_len) == expected
    assert pairs[GLOBAL] == 20**2 + 30**2 + 14**2 + 64**2 + 5**2 + 40**2 < 3 * L * L  # not L^2 per row
    dense = 12 * args.dim * (n_global * 3 * L * L)
    assert attention_flops(args, seq_lens, pad_len) < dense


# --- FSDP2 over gloo, two ranks: autocast off under the bf16 policy (1), sharded optimizer (2), one all-reduce
# for the norm (4), job-wide tokens/s (7), fully_shard kwargs (9) -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_rank_worker(rank: int, world: int, port: int, inputs: dict, out_dir: str) -> None:
    import os

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.debug import CommDebugMode

    import training.parallelize
    from training.parallelize import load_full_state_dict, parallelize_model, unwrap_state_dict_keys

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    report: dict = {}

    # (a) the model under FSDP2: the norm reduced once; the sharded optimizer equals the one-process loop
    args = model_args("tiny", local_attention_window=8)
    with torch.device("meta"):
        model = ModernBertMLM(args)
    parallelize_model(model, args, "cpu", init_device_mesh("cpu", (world,)))
    model.to_empty(device="cpu")
    load_full_state_dict(model, inputs["init"])
    optimizer = build_optimizer(model, OptimSection(), lr=1e-3)
    for step in inputs["steps"]:
        ids, seq_lens, labels = step[rank]
        model(ids, seq_lens, labels).loss.backward()
        full = torch.linalg.vector_norm(torch.stack([p.grad.full_tensor().norm() for p in model.parameters()]))
        with CommDebugMode() as comm:
            norm = clip_grad_norm_(model.parameters(), 0.5)
        report.setdefault("norms", []).append([float(norm), float(full)])
        report.setdefault("clip_collectives", []).append(comm.get_total_counts())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model(*inputs["steps"][0][rank]).loss.backward()
    with CommDebugMode() as comm:
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5, foreach=True)
        grad_norm.full_tensor()
    report["torch_clip_collectives"] = comm.get_total_counts()  # the old path, for comparison
    state = unwrap_state_dict_keys(model)
    if rank == 0:
        torch.save(state, Path(out_dir) / "sharded_state.pt")

    # (b) the Trainer on two ranks, bf16 policy, a step of 2 micro batches per rank
    shard_calls = []
    real_fully_shard = training.parallelize.fully_shard
    training.parallelize.fully_shard = lambda module, **kw: shard_calls.append(kw["reshard_after_forward"]) or \
        real_fully_shard(module, **kw)
    entered = []
    real_enter = torch.autocast.__enter__
    torch.autocast.__enter__ = lambda self: entered.append(1) or real_enter(self)
    config = PretrainConfig.model_validate(inputs["config"])
    phase = load_phase(config, "general")
    logged = []
    from training.trainer import TrainerHooks

    trainer = Trainer(config, phase, inputs["phase_dir"], inputs["data_dir"],
                      hooks=TrainerHooks(sinks=[lambda step, values: logged.append(values)]))
    compute_dtypes = []
    block = trainer.model.model.layers["1"]
    block.register_forward_pre_hook(lambda module, a: compute_dtypes.append(str(module.attn.Wqkv.weight.dtype)))
    local_tokens = []
    real_step = trainer.train_step

    def counting_step(batch_size):
        result = real_step(batch_size)
        local_tokens.append(result[2])
        return result

    trainer.train_step = counting_step
    trainer.train()
    report.update(shard_calls=shard_calls, autocast_entered=len(entered), compute_dtypes=sorted(set(compute_dtypes)),
                  local_tokens=local_tokens, logged=logged, accum=trainer.max_accum_steps,
                  master_dtype=str(next(trainer.model.parameters()).dtype))
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(report))
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, demo_tokens):  # noqa: F811
    out = tmp_path_factory.mktemp("two-ranks")
    reference = tiny_model(local_attention_window=8)
    init = {k: v.clone() for k, v in reference.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    steps = [[random_batch(g) for _ in range(2)] for _ in range(3)]
    config = demo_config(out, demo_tokens, {"general": {"max_steps": 2, "global_batch_size": 8,
                                                        "schedule": {"start_batch_size": None}}},
                         parallelism={"fsdp": "on", "mixed_precision": "bf16"}).model_dump(mode="json")
    inputs = {"init": init, "steps": steps, "config": config, "phase_dir": str(out / "phase"),
              "data_dir": str(demo_tokens / "tokens" / "general-128")}
    mp.start_processes(_two_rank_worker, args=(2, _free_port(), inputs, str(out)), nprocs=2, start_method="spawn")

    # the same three steps in one process with optimi's own loop: what the sharded run must reproduce
    loop = optimi.StableAdamW(param_groups(reference, 1e-5), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-5,
                              decouple_lr=True, max_lr=1e-3, foreach=False)
    for per_rank in steps:
        (sum(reference(*batch).loss for batch in per_rank) / 2).backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        loop.step()
        loop.zero_grad()
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    return {"ranks": ranks, "reference": reference.state_dict(), "sharded": torch.load(out / "sharded_state.pt")}


@pytest.mark.shared_data
def test_fsdp_bf16_policy_without_autocast(two_ranks):
    for rank in two_ranks["ranks"]:
        assert rank["autocast_entered"] == 0
        assert rank["compute_dtypes"] == ["torch.bfloat16"] and rank["master_dtype"] == "torch.float32"


@pytest.mark.shared_data
def test_fsdp_grad_norm_is_reduced_once_and_global(two_ranks):
    for rank in two_ranks["ranks"]:
        for ours, full in rank["norms"]:
            assert ours == pytest.approx(full, rel=1e-5)
        assert rank["clip_collectives"] == [1, 1, 1]
        # torch's clipping on DTensors plus `.full_tensor()` (the trainer's old path) never does fewer
        assert rank["torch_clip_collectives"] >= 1


@pytest.mark.shared_data
def test_fsdp_sharded_stableadamw_matches_the_one_process_loop(two_ranks):
    for key, value in two_ranks["reference"].items():
        torch.testing.assert_close(two_ranks["sharded"][key], value, rtol=1e-4, atol=1e-6)


@pytest.mark.shared_data
def test_fsdp_tokens_per_s_is_job_wide(two_ranks):
    ranks = two_ranks["ranks"]
    for step in range(2):
        total = sum(rank["local_tokens"][step] for rank in ranks)
        for rank in ranks:
            values = rank["logged"][step]
            assert values["real_tokens"] == total
            assert values["tokens_per_s"] == pytest.approx(values["real_tokens"] / values["step_time_s"])
            assert values["tokens_per_s_per_device"] == pytest.approx(values["tokens_per_s"] / 2)


@pytest.mark.shared_data
def test_fsdp_no_reshard_after_forward_under_accumulation(two_ranks):
    for rank in two_ranks["ranks"]:
        assert rank["accum"] == 2  # 8 sequences per step = 2 ranks x 2 micro batches of 2
        assert rank["shard_calls"] == [False] * 5  # 4 blocks and the root


def test_metrics_alone_report_the_rank_as_the_job():
    metrics = MetricsProcessor(torch.device("cpu"), flops_per_token=10.0, log_interval=1)
    values = metrics.step(1, 1.0, 1.0, 1e-3, real_tokens=100, batch_size=4, flops=5000.0)
    assert values["real_tokens"] == 100 and values["tokens_per_s"] == values["tokens_per_s_per_device"]
    assert values["tflops"] * 1e12 * values["step_time_s"] == pytest.approx(5000.0)
