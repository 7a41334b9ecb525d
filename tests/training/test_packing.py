"""Packing documents into exactly-L sequences with boundaries, and the seeded mixture plan."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from tests.training.test_tokenizer import wcxb_documents
from training.data import (
    MIN_DOCUMENT_TOKENS,
    PackedSequence,
    SequencePacker,
    SourceStream,
    allocate,
    pack_documents,
    plan_shards,
    segments,
    select_sequences,
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


def _rows_of(shards: list[dict], streams: dict[str, SourceStream]) -> dict[str, list[tuple[int, int]]]:
    """(fragment, row) of every output row per source, in shard order, from the plan alone."""
    rows: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for shard in shards:
        for source, pieces in json.loads(shard["pieces"]).items():
            rows[source] += [(f, r) for f, lo, hi in pieces for r in range(lo, hi)]
    return rows


def test_mixture_follows_weights_shard_by_shard_and_is_deterministic_by_seed():
    available = {"a": 500, "b": 400}
    selected = select_sequences(available, {"a": 0.7, "b": 0.3}, size=300)
    assert selected == {"a": 210, "b": 90}
    streams = {n: SourceStream(np.array([c // 4] * 4), seed=k) for k, (n, c) in enumerate(available.items())}
    shards = plan_shards(streams, selected, rows_per_shard=30, seed=3)
    assert [s["first_row"] for s in shards] == [sum(s["rows"] for s in shards[:i]) for i in range(len(shards))]
    assert sum(s["rows"] for s in shards) == 300
    for shard in shards:  # every shard holds both sources near their weights (interleaved, not blocked)
        counts = {src: sum(hi - lo for _, lo, hi in p) for src, p in json.loads(shard["pieces"]).items()}
        assert abs(counts["a"] - 0.7 * shard["rows"]) <= 1 and shard["rows"] in (29, 30, 31)
    again = plan_shards({n: SourceStream(st.counts, st.seed) for n, st in streams.items()}, selected, 30, 3)
    assert again == shards
    other = {n: SourceStream(st.counts, st.seed + 10) for n, st in streams.items()}
    assert plan_shards(other, selected, 30, 3) != shards
    rows = _rows_of(shards, streams)
    assert len(rows["a"]) == len(set(rows["a"])) == 210  # a source in excess: a prefix of one pass, no repeats


def test_mixture_default_size_uses_scarce_source_once_and_upsamples_in_whole_passes():
    assert select_sequences({"a": 1000, "b": 60}, {"a": 0.8, "b": 0.2}) == {"a": 240, "b": 60}
    bigger = select_sequences({"a": 1000, "b": 60}, {"a": 0.8, "b": 0.2}, size=1000)
    assert bigger == {"a": 800, "b": 200}
    streams = {"a": SourceStream(np.array([250] * 4), 0), "b": SourceStream(np.array([20, 0, 25, 15]), 1)}
    rows = _rows_of(plan_shards(streams, bigger, rows_per_shard=64, seed=0), streams)
    picks = Counter(rows["b"])
    assert len(picks) == 60 and set(picks.values()) == {3, 4}  # whole passes first, then part of one
    assert all(f != 1 for f, _ in picks)  # the empty fragment gives nothing


def test_source_stream_pieces_cover_positions_exactly():
    stream = SourceStream(np.array([3, 0, 5, 2]), seed=7)
    pieces = stream.pieces(0, 25)  # two and a half passes
    assert sum(hi - lo for _, lo, hi in pieces) == 25
    first_pass = Counter((f, r) for f, lo, hi in stream.pieces(0, 10) for r in range(lo, hi))
    assert len(first_pass) == 10 and set(first_pass.values()) == {1}
    assert stream.first.tolist() == [0, 3, 3, 8]


def test_mixture_refuses_a_weighted_source_with_nothing_packed():
    with pytest.raises(ValueError, match="no packed sequences"):
        select_sequences({"a": 10, "b": 0}, {"a": 0.5, "b": 0.5})
