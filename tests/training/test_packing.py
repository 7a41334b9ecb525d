"""Packing documents into exactly-L sequences with boundaries, and the seeded mixture plan."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from tests.training.test_tokenizer import wcxb_documents
from training.data import (
    MIN_DOCUMENT_TOKENS,
    PackedSequence,
    SequencePacker,
    allocate,
    pack_documents,
    plan_mixture,
    segments,
)
from training.tokenizer import load_tokenizer, train_tokenizer

CLS, SEP, PAD = 1, 2, 3


def check_boundaries(sequences: list[PackedSequence], seq_len: int) -> None:
    """Exactly L ids, segments summing to L framed by CLS/SEP, padding only at the end of the last."""
    for k, seq in enumerate(sequences):
        assert len(seq.input_ids) == seq_len and sum(seq.seq_lens) == seq_len
        assert len(seq.doc_ids) == len(seq.seq_lens)
        for doc_id, seg in segments(seq):
            if doc_id == "":
                assert (seg == PAD).all() and len(seg) == seq.pad_len
            else:
                assert seg[0] == CLS and seg[-1] == SEP and len(seg) >= 3
        if seq.pad_len:
            assert k == len(sequences) - 1 and seq.doc_ids[-1] == ""


def rejoin(sequences: list[PackedSequence]) -> dict[str, list[int]]:
    """Each document's tokens, from its segments in order, without [CLS]/[SEP]."""
    docs: dict[str, list[int]] = defaultdict(list)
    for seq in sequences:
        for doc_id, seg in segments(seq):
            if doc_id:
                docs[doc_id] += seg[1:-1].tolist()
    return docs


def random_documents(rng: np.random.Generator, n: int, max_len: int) -> list[tuple[str, list[int]]]:
    lengths = rng.integers(MIN_DOCUMENT_TOKENS, max_len, size=n)
    return [(f"d{i}", rng.integers(10, 1000, size=length).tolist()) for i, length in enumerate(lengths)]


@pytest.mark.parametrize("seq_len", [8, 9, 16, 64, 128])
def test_random_documents_fill_sequences_exactly_and_rejoin(seq_len):
    rng = np.random.default_rng(seq_len)
    docs = random_documents(rng, 400, 3 * seq_len)
    sequences, stats = pack_documents(docs, seq_len, CLS, SEP, PAD)
    check_boundaries(sequences, seq_len)
    assert rejoin(sequences) == dict(docs)
    assert stats.documents == len(docs) and stats.sequences == len(sequences)
    assert stats.content_tokens == sum(len(ids) for _, ids in docs)
    assert stats.tokens_real + stats.tokens_pad == seq_len * len(sequences)
    assert stats.tokens_real == stats.content_tokens + 2 * stats.segments
    multi = Counter(d for s in sequences for d in s.doc_ids if d)
    assert stats.split_documents == sum(1 for c in multi.values() if c > 1)
    assert stats.chunks_from_split_documents == sum(c for c in multi.values() if c > 1)


@pytest.mark.parametrize("gap", [1, 2])
def test_document_that_would_leave_a_tiny_gap_is_split_to_fill_exactly(gap):
    # first doc leaves R = 16 - 6 = 10; second doc would leave `gap` tokens, too few for a segment
    docs = [("a", [7] * 4), ("b", [8] * (10 - 2 - gap)), ("c", [9] * 5)]
    sequences, stats = pack_documents(docs, 16, CLS, SEP, PAD)
    check_boundaries(sequences, 16)
    # b is cut to leave exactly 3 free (a 5-token chunk), then one more token of b fills them
    assert sequences[0].seq_lens == [6, 7, 3] and sequences[0].doc_ids == ["a", "b", "b"]
    if gap == 1:  # b had one token more: it opens the next sequence
        assert sequences[1].doc_ids[0] == "b" and sequences[1].seq_lens[0] == 3
    assert rejoin(sequences) == dict(docs)
    assert stats.split_documents == 1


def test_long_document_is_split_in_order_and_rejoins():
    long_doc = list(range(100, 400))
    sequences, stats = pack_documents([("long", long_doc)], 32, CLS, SEP, PAD)
    check_boundaries(sequences, 32)
    assert rejoin(sequences)["long"] == long_doc
    assert stats.split_documents == 1 and stats.chunks_from_split_documents == len(sequences)
    assert sequences[-1].pad_len == 32 * len(sequences) - (len(long_doc) + 2 * len(sequences))


def test_document_under_three_tokens_is_refused():
    packer = SequencePacker(16, CLS, SEP, PAD)
    with pytest.raises(ValueError, match="tokens"):
        packer.add("tiny", [5, 6])


def test_packed_real_documents_decode_to_their_normalised_text(shared_data, tmp_path):
    rows = wcxb_documents(shared_data, 60)
    tok = load_tokenizer(train_tokenizer([r["text"] for r in rows], tmp_path / "tok", vocab_size=512))
    encoded = [(r["doc_id"], tok(r["text"], add_special_tokens=False)["input_ids"]) for r in rows]
    sequences, stats = pack_documents(encoded, 128, tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)
    assert stats.split_documents > 0  # real pages are longer than 128 tokens
    joined = rejoin(sequences)
    for (doc_id, ids), row in zip(encoded, rows, strict=True):
        assert joined[doc_id] == list(ids)
        assert tok.decode(joined[doc_id]) == tok.decode(tok(row["text"])["input_ids"], skip_special_tokens=True)


def test_allocate_splits_exactly_by_weight():
    assert allocate(10, [0.7, 0.3]) == [7, 3]
    assert sum(allocate(101, [0.5, 0.25, 0.25])) == 101


def test_mixture_follows_weights_and_is_deterministic_by_seed():
    plan = plan_mixture([500, 400], [0.7, 0.3], seed=3, num_sequences=300)
    assert plan.selected == [210, 90]
    counts = Counter(s for s, _ in plan.order)
    assert counts == {0: 210, 1: 90}
    # interleaved, not blocked: every tenth of the order holds both sources near their weights
    for tenth in np.array_split(np.array([s for s, _ in plan.order]), 10):
        assert 0.4 < (tenth == 0).mean() < 0.95
    assert plan_mixture([500, 400], [0.7, 0.3], seed=3, num_sequences=300).order == plan.order
    assert plan_mixture([500, 400], [0.7, 0.3], seed=4, num_sequences=300).order != plan.order
    assert plan.unused(0) == 500 - 210 and plan.repeats(1) == pytest.approx(90 / 400)


def test_mixture_default_size_uses_scarce_source_once_and_upsamples_on_demand():
    plan = plan_mixture([1000, 60], [0.8, 0.2], seed=0)
    assert plan.selected == [240, 60] and plan.unused(1) == 0
    bigger = plan_mixture([1000, 60], [0.8, 0.2], seed=0, num_sequences=1000)
    assert bigger.selected == [800, 200] and bigger.repeats(1) == pytest.approx(200 / 60)
    picks = Counter(i for s, i in bigger.order if s == 1)
    assert set(picks) == set(range(60)) and set(picks.values()) == {3, 4}  # whole passes first


def test_mixture_refuses_a_weighted_source_with_nothing_packed():
    with pytest.raises(ValueError, match="no packed sequences"):
        plan_mixture([10, 0], [0.5, 0.5], seed=0)
