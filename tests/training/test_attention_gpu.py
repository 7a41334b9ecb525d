"""CUDA path: compiled FlexAttention block masks agree with SDPA masks and with each document run alone,
forward and backward. Skipped with a reason where there is no CUDA device (never silently passed).

Runs on the GPU machine, where ../shared/data does not travel, so documents are random token ids with
realistic (varied, window-exceeding) lengths; the CPU tests cover real text.
"""

from __future__ import annotations

import pytest
import torch

from training.model import IGNORE_INDEX, ModernBertMLM, model_args

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (FlexAttention fast path)"),
]

SEQ_LEN = 512
WINDOW = 32


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rows, lens = [], []
    for _ in range(3):
        row_lens, total = [], 0
        while total < SEQ_LEN - 40:
            n = int(torch.randint(20, 300, (1,), generator=g))
            n = min(n, SEQ_LEN - total)
            row_lens.append(n)
            total += n
        if total < SEQ_LEN:
            row_lens.append(SEQ_LEN - total)  # the padding segment
        rows.append(torch.randint(5, 1000, (SEQ_LEN,), generator=g))
        lens.append(row_lens)
    width = max(map(len, lens))
    seq_lens = torch.tensor([rl + [0] * (width - len(rl)) for rl in lens], dtype=torch.int32)
    ids = torch.stack(rows)
    labels = torch.where(torch.rand(ids.shape, generator=g) < 0.3, ids, IGNORE_INDEX)
    return ids.cuda(), seq_lens.cuda(), labels.cuda()


def _model(backend: str) -> ModernBertMLM:
    args = model_args(
        "tiny", vocab_size=1024, dim=128, n_heads=4, n_layers=4, intermediate=192,
        local_attention_window=WINDOW, attention_backend=backend,
    )
    torch.manual_seed(0)
    model = ModernBertMLM(args).cuda()
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_flex_equals_sdpa_forward_and_backward():
    ids, seq_lens, labels = _batch()
    results = {}
    for backend in ("sdpa", "flex"):
        model = _model(backend)
        out = model(ids, seq_lens, labels, return_logits=True)
        out.loss.backward()
        grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
        results[backend] = (out.loss.detach(), out.logits.detach(), grads)
    (l_s, z_s, g_s), (l_f, z_f, g_f) = results["sdpa"], results["flex"]
    torch.testing.assert_close(l_f, l_s, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(z_f, z_s, atol=2e-3, rtol=2e-3)
    for k in g_s:
        torch.testing.assert_close(g_f[k], g_s[k], atol=2e-3, rtol=2e-2, msg=k)


def _segments(seq_lens_row: torch.Tensor):
    start = 0
    for length in seq_lens_row[seq_lens_row > 0].tolist():
        yield start, length
        start += length


@pytest.mark.parametrize("backend", ["flex", "sdpa"])
def test_packed_equals_each_document_alone_on_gpu(backend):
    # The reference runs each document as its own unmasked sdpa batch (no packing involved at all);
    # exact lengths would recompile the flex kernel for every document.
    ids, seq_lens, _ = _batch(1)
    model, reference = _model(backend).eval(), _model("sdpa").eval()
    with torch.no_grad():
        packed = model(ids, seq_lens).logits
        for b in range(ids.shape[0]):
            for start, length in list(_segments(seq_lens[b]))[:-1]:  # the last segment is padding
                alone = reference(ids[b : b + 1, start : start + length]).logits[0]
                torch.testing.assert_close(packed[b, start : start + length], alone, atol=2e-3, rtol=2e-3)


def test_per_document_gradients_match_packed_flex():
    ids, seq_lens, labels = _batch(2)
    model, reference = _model("flex"), _model("sdpa")
    out = model(ids, seq_lens, labels)
    (out.loss * out.num_masked).backward()
    for b in range(ids.shape[0]):
        for start, length in _segments(seq_lens[b]):
            seg_labels = labels[b : b + 1, start : start + length]
            if (seg_labels != IGNORE_INDEX).any():
                seg = reference(ids[b : b + 1, start : start + length], labels=seg_labels)
                (seg.loss * seg.num_masked).backward()
    grads = dict(reference.named_parameters())
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[k].grad, atol=5e-3, rtol=2e-2, msg=k)


def test_bf16_compiled_flex_training_step_is_finite():
    from training.parallelize import apply_compile

    ids, seq_lens, labels = _batch(3)
    model = _model("flex")
    apply_compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, seq_lens, labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
