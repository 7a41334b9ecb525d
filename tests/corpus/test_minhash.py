"""corpus.minhash: signatures equal datasketch's, banding, and LSH recall on generated duplicates."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from datasketch import MinHash
from warcio.archiveiterator import ArchiveIterator

from corpus.minhash import (
    HASH_FUNCTIONS,
    Permutations,
    band_hashes,
    jaccard,
    lsh_probability,
    make_near_duplicates,
    ngram_hashes,
    shingles,
    signatures,
)
from infra.core.config import DedupConfig

TEXTS = [d["text"] for d in make_near_duplicates(4, 2, words_per_doc=60, seed=5)] + [
    "Café déjà vu — the ﬁrst ﬂoor, ½ price!",  # NFKC folds ligatures and fractions
    "short text",
    "one",
    "Hello, World! hello   world again and again and again, hello world.",
]


@pytest.mark.parametrize(
    ("scheme", "hash_function"),
    [("affine32", "sha1_32"), ("affine32", "xxh32"), ("legacy", "sha1_32"), ("affine64", "xxh64"),
     ("affine32", "words32"), ("affine64", "words64"), ("legacy", "words32"),
     ("affine64", "sha1_64")],
)
@pytest.mark.parametrize("num_perm", [1, 16, 112, 128])
def test_signatures_equal_datasketch_minhash(scheme, hash_function, num_perm):
    perms = Permutations.create(num_perm, seed=42, scheme=scheme)
    sigs, has_shingles = signatures(TEXTS, perms, ngram=5, hash_function=hash_function)
    assert has_shingles.all()
    for text, sig in zip(TEXTS, sigs, strict=True):
        ref = MinHash(num_perm=num_perm, seed=42, hashfunc=HASH_FUNCTIONS[hash_function], scheme=scheme)
        ref.update_batch([s.encode("utf-8") for s in shingles(text, 5)])
        assert sig.dtype == ref.hashvalues.dtype
        np.testing.assert_array_equal(sig, ref.hashvalues)


def test_document_without_words_gets_the_empty_signature_and_no_shingles():
    perms = Permutations.create(8, seed=1)
    sigs, has_shingles = signatures(["", "  ...  ", None, "word"], perms)
    assert has_shingles.tolist() == [False, False, False, True]
    np.testing.assert_array_equal(sigs[0], MinHash(num_perm=8, seed=1).hashvalues)


def test_chunked_segmented_reduce_matches_one_document_at_a_time():
    perms = Permutations.create(112, seed=7)
    from corpus.minhash import hash_shingles, signatures_from_hashes

    hashes = [hash_shingles(shingles(t)) for t in TEXTS] + [np.empty(0, np.uint64)]
    together = signatures_from_hashes(hashes, perms, chunk_values=112 * 50)  # forces many chunks
    alone = np.stack([signatures_from_hashes([h], perms)[0] for h in hashes])
    np.testing.assert_array_equal(together, alone)


def test_normalisation_ignores_case_punctuation_and_spacing():
    assert shingles("The QUICK, brown fox!  Jumps over\nthe lazy dog.") == shingles(
        "the quick brown fox jumps over the lazy dog"
    )
    assert shingles("two words", 5) == ["two words"]
    assert jaccard("a b c d e f", "a b c d e f") == 1.0
    assert jaccard("a b c d e f", "a b c d e g") == pytest.approx(1 / 3)


def test_bands_are_equal_exactly_where_signature_rows_are_equal():
    perms = Permutations.create(112, seed=1)
    sigs, _ = signatures(TEXTS[:3] + TEXTS[:1], perms)
    bands = band_hashes(sigs, bands=14, rows=8)
    assert bands.shape == (4, 14) and bands.dtype == np.int64
    np.testing.assert_array_equal(bands[0], bands[3])
    rows_equal = (sigs[0].reshape(14, 8) == sigs[1].reshape(14, 8)).all(axis=1)
    np.testing.assert_array_equal(bands[0] == bands[1], rows_equal)


def test_fineweb_default_threshold_is_near_0_72():
    cfg = DedupConfig()
    assert cfg.num_perm == 112
    assert cfg.theoretical_threshold == pytest.approx(0.719, abs=1e-3)
    assert lsh_probability(cfg.theoretical_threshold, 14, 8) == pytest.approx(1 - np.exp(-1), abs=0.02)
    assert lsh_probability(cfg.s_curve_midpoint, 14, 8) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="affine64"):
        DedupConfig(hash_function="xxh64")


def _lsh_pairs(texts: list[str], cfg: DedupConfig) -> set[tuple[int, int]]:
    perms = Permutations.create(cfg.num_perm, cfg.seed, cfg.scheme)
    sigs, ok = signatures(texts, perms, cfg.ngram, cfg.hash_function)
    bands = band_hashes(sigs, cfg.bands, cfg.rows)
    buckets: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(ok):
        for b, h in enumerate(bands[i]):
            buckets.setdefault((b, int(h)), []).append(int(i))
    return {(a, c) for m in buckets.values() for k, a in enumerate(m) for c in m[k + 1 :]}


def test_lsh_catches_high_jaccard_pairs_and_rarely_low_ones():
    docs = make_near_duplicates(n_base=40, copies_per_base=4, words_per_doc=100, min_jaccard=0.2, seed=11)
    texts = [d["text"] for d in docs]
    candidates = _lsh_pairs(texts, DedupConfig())
    sets = [set(shingles(t)) for t in texts]
    high = low = high_found = low_found = 0
    for i in range(len(docs)):
        for j in range(i + 1, len(docs)):
            if docs[i]["group"] != docs[j]["group"]:
                assert (i, j) not in candidates
                continue
            sim = jaccard(sets[i], sets[j])
            if sim >= 0.9:
                high, high_found = high + 1, high_found + ((i, j) in candidates)
            elif sim < 0.4:
                low, low_found = low + 1, low_found + ((i, j) in candidates)
    assert high >= 20 and high_found == high
    assert low >= 20 and low_found <= 0.05 * low


def test_lsh_groups_match_sample_crawl_ground_truth(tmp_path):
    from infra.sample_crawl.generate import GROUND_TRUTH_NAME, generate_sample_crawl, main_text

    generate_sample_crawl(tmp_path, docs=300, seed=4, docs_per_file=300, progress=False)
    truth = [json.loads(line) for line in (tmp_path / GROUND_TRUTH_NAME).read_text().splitlines()]
    data = (tmp_path / truth[0]["file"]).read_bytes()
    rows, texts = [], []
    for row in truth:
        if row["defect"] or row["label"] == "junk":
            continue
        record = next(ArchiveIterator(io.BytesIO(data[row["offset"] : row["offset"] + row["length"]])))
        rows.append(row)
        texts.append(main_text(record.content_stream().read()))
    pairs = _lsh_pairs(texts, DedupConfig())
    parent = list(range(len(texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        parent[max(find(a), find(b))] = min(find(a), find(b))
    cluster_of_group: dict[str, set[int]] = {}
    for i, row in enumerate(rows):
        if row["dup_group"] and (row["dup_kind"] is None or row["dup_kind"] == "exact" or row["jaccard"] >= 0.9):
            cluster_of_group.setdefault(row["dup_group"], set()).add(find(i))
    assert sum(1 for r in rows if r["dup_kind"] == "exact") > 0
    assert all(len(c) == 1 for c in cluster_of_group.values()), cluster_of_group
    clusters = [find(i) for i in range(len(rows))]
    for i, row in enumerate(rows):  # no page outside a duplicate group is merged with another page
        if row["dup_group"] is None:
            assert clusters.count(clusters[i]) == 1, row["url"]


def test_ngram_hashes_of_an_empty_batch():
    assert ngram_hashes([], 5, 32) == []
    assert [len(h) for h in ngram_hashes(["a b c d e f g", None, "x y"], 5, 32)] == [3, 0, 1]
