"""Packed-sequence attention: document masks, sliding windows and reset positions equal running each
document alone, on real text (WCXB pages) tokenized with the project's tokenizer.

The helpers at the top (`real_documents`, `pack_rows`) are shared with the other model tests.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from training.attention import (
    GLOBAL,
    LOCAL,
    AttentionInputs,
    build_attention_inputs,
    document_ids,
    position_ids,
    sdpa_masks,
    validate_seq_lens,
)
from training.model import IGNORE_INDEX, ModernBertMLM, model_args

WINDOW = 8  # small window so that 20-60 token documents really exercise the local layers


@lru_cache(maxsize=2)
def _tokenizer(data_dir: str, vocab_size: int = 512):
    import tempfile

    from training.tokenizer import load_tokenizer, train_tokenizer

    texts = [doc["text"] for doc in _page_texts(data_dir, 120)]
    out = Path(tempfile.mkdtemp(prefix="rexbert-test-tok-"))
    train_tokenizer(texts, out, vocab_size=vocab_size)
    return out, load_tokenizer(out)


def _page_texts(data_dir: str, limit: int) -> list[dict]:
    files = sorted((Path(data_dir) / "pages" / "wcxb-dev" / "ground-truth").glob("*.json"))[:limit]
    docs = []
    for f in files:
        text = json.loads(f.read_text())["ground_truth"]["main_content"] or ""
        if text.strip():
            docs.append({"file": f.name, "text": text})
    return docs


def tokenizer_dir(shared_data: Path) -> Path:
    """A 512-entry BPE tokenizer trained on real WCXB page text (cached for the test run)."""
    return _tokenizer(str(shared_data))[0]


def real_documents(shared_data: Path, n: int, min_len: int = 12, max_len: int = 60, seed: int = 0):
    """`n` tokenized real documents, each [CLS] ... [SEP], cut to a random length in [min_len, max_len]."""
    _, tok = _tokenizer(str(shared_data))
    rng = random.Random(seed)
    docs = []
    for page in _page_texts(str(shared_data), 120)[:n]:
        ids = tok(page["text"])["input_ids"]  # [CLS] ... [SEP] from the post-processor
        keep = rng.randint(min_len, max_len) - 2
        docs.append(ids[: keep + 1] + [tok.sep_token_id])
    return docs


def pack_rows(docs: list[list[int]], seq_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Greedy packing in the shard format: input_ids [B, L], seq_lens [B, S] zero-padded, pad_len [B]."""
    rows, lens, row, row_lens = [], [], [], []
    for doc in docs:
        if len(row) + len(doc) > seq_len:
            rows.append(row)
            lens.append(row_lens)
            row, row_lens = [], []
        row, row_lens = row + doc, row_lens + [len(doc)]
    rows.append(row)
    lens.append(row_lens)
    pad_lens = [seq_len - len(r) for r in rows]
    for r, rl, p in zip(rows, lens, pad_lens, strict=True):
        r.extend([pad_id] * p)
        if p:
            rl.append(p)  # the padding segment
    width = max(len(rl) for rl in lens)
    return {
        "input_ids": torch.tensor(rows),
        "seq_lens": torch.tensor([rl + [0] * (width - len(rl)) for rl in lens], dtype=torch.int32),
        "pad_len": torch.tensor(pad_lens, dtype=torch.int32),
    }


def tiny_model(backend: str = "sdpa", seed: int = 0, **overrides) -> ModernBertMLM:
    args = model_args("tiny", **{"local_attention_window": WINDOW, "attention_backend": backend, **overrides})
    torch.manual_seed(seed)
    model = ModernBertMLM(args)
    model.init_weights()
    with torch.no_grad():  # move off the init so that every weight matters in comparisons
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def per_document_logits(model: ModernBertMLM, batch: dict) -> list[list[torch.Tensor]]:
    """Each real (non-pad) segment run alone, as its own batch of one."""
    out = []
    for row, lens, pad in zip(batch["input_ids"], batch["seq_lens"], batch["pad_len"], strict=True):
        segs, start = [], 0
        n_real = int((lens > 0).sum()) - (1 if pad > 0 else 0)
        for length in lens[:n_real].tolist():
            ids = row[start : start + length][None]
            segs.append(model(ids, torch.tensor([[length]])).logits[0])
            start += length
        out.append(segs)
    return out


def assert_matches_documents(logits: torch.Tensor, alone: list[list[torch.Tensor]], batch: dict, atol=1e-5):
    for b, segs in enumerate(alone):
        start = 0
        for seg in segs:
            torch.testing.assert_close(logits[b, start : start + len(seg)], seg, atol=atol, rtol=1e-4)
            start += len(seg)


@pytest.fixture(scope="module")
def batch(shared_data):
    docs = real_documents(shared_data, 12)
    assert any(len(d) > 3 * WINDOW for d in docs)
    return pack_rows(docs, 128, pad_id=3)


def test_document_ids_and_positions_restart_in_every_segment():
    seq_lens = torch.tensor([[3, 2, 3], [8, 0, 0]])
    doc = document_ids(seq_lens, 8)
    assert doc.tolist() == [[0, 0, 0, 1, 1, 2, 2, 2], [0] * 8]
    assert position_ids(seq_lens, doc).tolist() == [[0, 1, 2, 0, 1, 0, 1, 2], list(range(8))]


def test_masks_block_documents_and_limit_local_layers_to_the_window():
    masks = sdpa_masks(document_ids(torch.tensor([[6, 4]]), 10), window=4)
    glob, loc = masks[GLOBAL][0, 0], masks[LOCAL][0, 0]
    assert glob[0, 5] and not glob[0, 6] and not glob[9, 5] and glob[9, 6]
    assert loc[0, 2] and not loc[0, 3]  # |i - j| <= window / 2
    assert not loc[5, 6]  # neighbours across a document boundary stay masked
    assert torch.equal(loc, glob & loc)


def test_bad_seq_lens_fail_clearly():
    with pytest.raises(ValueError, match="sum to the row length"):
        validate_seq_lens(torch.tensor([[3, 4]]), 8)
    with pytest.raises(ValueError, match="sum to the row length"):
        build_attention_inputs(torch.tensor([[9]]), 8, window=4)


@pytest.mark.shared_data
def test_packed_sdpa_equals_each_document_alone(batch):
    model = tiny_model()
    assert batch["pad_len"].sum() > 0  # the padding segment is exercised too
    with torch.no_grad():
        packed = model(batch["input_ids"], batch["seq_lens"]).logits
        assert_matches_documents(packed, per_document_logits(model, batch), batch)


@pytest.mark.shared_data
def test_packed_gradients_equal_per_document_gradients(batch):
    model = tiny_model()
    batch = {k: v[:2] for k, v in batch.items()}  # two rows are enough, and backward per document is slow
    labels = batch["input_ids"].clone()
    labels[batch["input_ids"] == 3] = IGNORE_INDEX  # pad tokens are never labelled
    labels[:, 1::2] = IGNORE_INDEX
    n = (labels != IGNORE_INDEX).sum()
    (model(batch["input_ids"], batch["seq_lens"], labels).loss * n).backward()
    packed = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    for b, (row, lens) in enumerate(zip(batch["input_ids"], batch["seq_lens"], strict=True)):
        start = 0
        for length in lens[lens > 0].tolist():
            seg_labels = labels[b, start : start + length][None]
            if (seg_labels != IGNORE_INDEX).any():
                out = model(row[start : start + length][None], torch.tensor([[length]]), seg_labels)
                (out.loss * out.num_masked).backward()
            start += length
    for k, p in model.named_parameters():
        torch.testing.assert_close(packed[k], p.grad, atol=1e-4, rtol=1e-3, msg=k)


@pytest.mark.shared_data
@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_forward_on_cpu_agrees_with_sdpa(batch):
    # FlexAttention has no backward on CPU; its forward (unfused reference) runs and must agree.
    sdpa, flex = tiny_model("sdpa"), tiny_model("flex")
    with torch.no_grad():
        expected = sdpa(batch["input_ids"], batch["seq_lens"]).logits
        got = flex(batch["input_ids"], batch["seq_lens"]).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.shared_data
def test_reset_positions_without_document_masks_leak_across_documents(batch):
    model = tiny_model()
    ids, seq_lens = batch["input_ids"], batch["seq_lens"]
    masked = build_attention_inputs(seq_lens, ids.shape[1], WINDOW)
    unmasked_doc = document_ids(torch.full((ids.shape[0], 1), ids.shape[1]), ids.shape[1])
    leaky = AttentionInputs(masked.position_ids, sdpa_masks(unmasked_doc, WINDOW))
    with torch.no_grad():
        alone = per_document_logits(model, batch)
        leaked = model(ids, attn=leaky).logits
        assert_matches_documents(model(ids, attn=masked).logits, alone, batch)
    first_doc = alone[0][1]  # a document with neighbours on both sides
    start = int(seq_lens[0, 0])
    assert (leaked[0, start : start + len(first_doc)] - first_doc).abs().max() > 1e-2


@pytest.mark.shared_data
def test_local_window_changes_the_output(batch):
    narrow, wide = tiny_model(), tiny_model(local_attention_window=1024)
    wide.load_state_dict(narrow.state_dict())
    with torch.no_grad():
        a = narrow(batch["input_ids"], batch["seq_lens"]).logits
        b = wide(batch["input_ids"], batch["seq_lens"]).logits
    assert (a - b).abs().max() > 1e-2
