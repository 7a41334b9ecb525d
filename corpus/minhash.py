"""MinHash signatures for whole batches of documents, in numpy, bit-equal to datasketch.

Normalisation (documented because it decides what "the same text" means): the text is NFKC-normalised
and lower-cased, words are the maximal runs of Unicode word characters (`\\w+`), so punctuation and
whitespace differences vanish. Shingles are word n-grams joined by one space, encoded as UTF-8; a
document with fewer than n words (but at least one) is one shingle of all its words; a document with
no word has no shingle and no signature (it cannot be compared).

Shingle hashes: `words32` / `words64` (the default) hash every word once with xxh3_64 and fold the n
word hashes of a shingle, vectorised over a whole batch without building shingle strings; `xxh32`,
`xxh64`, `sha1_32`, `sha1_64` hash the shingle's UTF-8 bytes (`sha1_32` is datasketch's default).

Signatures: the shingle hashes of a batch are concatenated, permuted with one (shingles x num_perm)
broadcast per chunk and min-reduced per document with `np.minimum.reduceat` (a segmented reduce),
no Python loop over permutations. Permutation parameters come from `np.random.RandomState(seed)`
exactly as `datasketch.MinHash._init_permutations` draws them, for its three schemes, so
`signatures(...)[i]` equals `datasketch.MinHash(num_perm, seed, hashfunc=..., scheme=...).hashvalues`.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

_WORD = re.compile(r"\w+")
_MERSENNE = np.uint64((1 << 61) - 1)
_MAX32 = np.uint64((1 << 32) - 1)
_FMIX = {
    32: (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16)),
    64: (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(33), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(33)),
}
_WIDTH = {"affine32": 32, "affine64": 64, "legacy": 32}
_DTYPE = {"affine32": np.uint32, "affine64": np.uint64, "legacy": np.uint64}


# --- shingles -----------------------------------------------------------------------------------------


def normalize_words(text: str) -> list[str]:
    """NFKC, lower-case, word-character runs: the token stream shingles are made of."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def shingles(text: str, ngram: int = 5) -> list[str]:
    """Word n-grams of the normalised text, in order (repeats kept; MinHash treats them as a set)."""
    words = normalize_words(text)
    if not words:
        return []
    if len(words) <= ngram:
        return [" ".join(words)]
    return [" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]


def jaccard(a: str | set[str], b: str | set[str], ngram: int = 5) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (or of two sets given directly)."""
    sa = a if isinstance(a, set) else set(shingles(a, ngram))
    sb = b if isinstance(b, set) else set(shingles(b, ngram))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


# --- shingle hashes -----------------------------------------------------------------------------------


def sha1_32(data: bytes) -> int:
    """datasketch.hashfunc.sha1_hash32: the first 4 bytes of SHA1, little-endian."""
    return struct.unpack("<I", hashlib.sha1(data).digest()[:4])[0]


def sha1_64(data: bytes) -> int:
    """datasketch.hashfunc.sha1_hash64."""
    return struct.unpack("<Q", hashlib.sha1(data).digest()[:8])[0]


_FOLD_SEED, _FOLD_PRIME = np.uint64(0x9E3779B97F4A7C15), np.uint64(0x100000001B3)


def _fold(h: np.ndarray, word: np.ndarray) -> np.ndarray:
    """One step of the word fold: multiply, xor the next word's hash, MurmurHash3-finalise (uint64)."""
    return _fmix((h * _FOLD_PRIME) ^ word, 64)


def _fold_words(shingle: bytes, bits: int) -> int:
    """The word-fold hash of one shingle, for datasketch (`words32` / `words64`): the reference definition.

    Each space-separated word is hashed with xxh3_64, the word hashes are folded left to right;
    32-bit output takes the high half. `ngram_hashes` computes the same values vectorised.
    """
    h = np.array([_FOLD_SEED], dtype=np.uint64)
    for word in shingle.split(b" "):
        h = _fold(h, np.array([xxhash.xxh3_64_intdigest(word)], dtype=np.uint64))
    return int(h[0] >> np.uint64(32)) if bits == 32 else int(h[0])


HASH_FUNCTIONS: dict[str, Callable[[bytes], int]] = {
    "words32": lambda b: _fold_words(b, 32),
    "words64": lambda b: _fold_words(b, 64),
    "xxh32": xxhash.xxh32_intdigest,
    "xxh64": xxhash.xxh3_64_intdigest,
    "sha1_32": sha1_32,
    "sha1_64": sha1_64,
}
WORD_FOLD = {"words32": 32, "words64": 64}


def hash_shingles(items: Sequence[str], hash_function: str = "xxh32") -> np.ndarray:
    """Hash each shingle's UTF-8 bytes; uint64 array (32-bit functions leave the high half zero)."""
    fn = HASH_FUNCTIONS[hash_function]
    return np.fromiter((fn(s.encode("utf-8")) for s in items), dtype=np.uint64, count=len(items))


def ngram_hashes(texts: Sequence[str | None], ngram: int, bits: int) -> list[np.ndarray]:
    """Word-fold shingle hashes of a batch without building shingle strings (equal to `_fold_words`).

    Every word of the batch is hashed once (xxh3_64, in C via `map`); the n-gram folds run as n
    vectorised steps over the whole batch's word stream, and only windows inside a document are kept.
    """
    words = [normalize_words(t) if t else [] for t in texts]
    lens = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    flat = [w for ws in words for w in ws]
    wh = np.fromiter(map(xxhash.xxh3_64_intdigest, flat), dtype=np.uint64, count=len(flat))
    m = max(0, len(wh) - ngram + 1)
    h = np.full(m, _FOLD_SEED, dtype=np.uint64)
    for j in range(ngram):
        h = _fold(h, wh[j : j + m])
    if bits == 32:
        h >>= np.uint64(32)
    starts = np.cumsum(lens) - lens  # each document's first word in the batch's stream (empty batch: empty)
    out = []
    for i, (start, n) in enumerate(zip(starts.tolist(), lens.tolist(), strict=True)):
        if n >= ngram:
            out.append(h[start : start + n - ngram + 1])
        elif n:  # shorter than n words: one shingle of all of them
            out.append(np.array([_fold_words(" ".join(words[i]).encode("utf-8"), bits)], dtype=np.uint64))
        else:
            out.append(np.empty(0, np.uint64))
    return out


# --- permutations and signatures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Permutations:
    """The (a, b) parameters of num_perm permutations, drawn as datasketch.MinHash draws them."""

    a: np.ndarray
    b: np.ndarray
    scheme: str

    @classmethod
    def create(cls, num_perm: int, seed: int = 1, scheme: str = "affine32") -> Permutations:
        gen = np.random.RandomState(seed)
        if scheme == "legacy":
            # datasketch draws a then b for each permutation in turn; the draw order decides the values.
            pairs = [
                (gen.randint(1, _MERSENNE, dtype=np.uint64), gen.randint(0, _MERSENNE, dtype=np.uint64))
                for _ in range(num_perm)
            ]
            a, b = np.array(pairs, dtype=np.uint64).T
            return cls(a=a, b=b, scheme=scheme)
        width, dtype = _WIDTH[scheme], _DTYPE[scheme]
        a = gen.randint(0, 1 << (width - 1), num_perm, dtype=dtype) * dtype(2) + dtype(1)
        b = gen.randint(0, 1 << width, num_perm, dtype=dtype)
        return cls(a=a, b=b, scheme=scheme)

    @property
    def num_perm(self) -> int:
        return len(self.a)

    @property
    def dtype(self) -> type:
        return _DTYPE[self.scheme]

    @property
    def empty_value(self) -> int:
        return int(np.iinfo(self.dtype).max) if self.scheme != "legacy" else int(_MAX32)

    def apply(self, hashes: np.ndarray) -> np.ndarray:
        """(n,) shingle hashes -> (n, num_perm) permuted values; uint arithmetic wraps as in datasketch."""
        if self.scheme == "legacy":
            h = hashes.astype(np.uint64)[:, None]
            return ((h * self.a + self.b) % _MERSENNE) & _MAX32
        width = _WIDTH[self.scheme]
        if width == 32 and hashes.size and int(hashes.max()) > int(_MAX32):
            raise ValueError(f"64-bit shingle hashes do not fit scheme {self.scheme!r}: use affine64")
        h = _fmix(hashes.astype(self.dtype), width)[:, None]
        return h * self.a + self.b


def _fmix(h: np.ndarray, width: int) -> np.ndarray:
    """MurmurHash3's finaliser, the pre-mix datasketch applies before its affine permutations."""
    s1, m1, s2, m2, s3 = _FMIX[width]
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


def signatures_from_hashes(
    doc_hashes: Sequence[np.ndarray], perms: Permutations, chunk_values: int = 1 << 16
) -> np.ndarray:
    """(n_docs, num_perm) signatures; a document without shingles gets datasketch's empty value.

    Documents are processed in chunks of about `chunk_values` permuted values (cache-sized: 2x faster
    than 4M-value chunks here); inside a chunk one broadcast permutes every shingle and
    `minimum.reduceat` reduces per document.
    """
    n = len(doc_hashes)
    out = np.full((n, perms.num_perm), perms.empty_value, dtype=perms.dtype)
    sizes = np.fromiter((len(h) for h in doc_hashes), dtype=np.int64, count=n)
    nonempty = np.flatnonzero(sizes)
    ends = np.cumsum(sizes[nonempty])  # shingles up to and including each non-empty document
    max_rows = max(1, chunk_values // perms.num_perm)
    start, done = 0, 0
    while start < len(nonempty):
        # Grow the chunk while it fits (always at least one document, however long).
        stop = max(start + 1, int(np.searchsorted(ends, done + max_rows, side="right")))
        docs = nonempty[start:stop]
        values = perms.apply(np.concatenate([doc_hashes[i] for i in docs]))
        offsets = np.concatenate(([0], np.cumsum(sizes[docs])[:-1]))
        out[docs] = np.minimum.reduceat(values, offsets, axis=0)
        start, done = stop, int(ends[stop - 1])
    return out


def signatures(
    texts: Sequence[str | None], perms: Permutations, ngram: int = 5, hash_function: str = "words32"
) -> tuple[np.ndarray, np.ndarray]:
    """Signatures of a batch of texts and a boolean mask of the documents that have shingles."""
    if hash_function in WORD_FOLD:
        hashes = ngram_hashes(texts, ngram, WORD_FOLD[hash_function])
    else:
        hashes = [hash_shingles(shingles(t, ngram), hash_function) if t else np.empty(0, np.uint64) for t in texts]
    has_shingles = np.fromiter((len(h) > 0 for h in hashes), dtype=bool, count=len(hashes))
    return signatures_from_hashes(hashes, perms), has_shingles


# --- LSH bands ----------------------------------------------------------------------------------------


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs, bands) int64 hashes of each band's `rows` values; equal bands give equal hashes.

    The rows of a band are folded into 64 bits with a multiply-xor chain and MurmurHash3's 64-bit
    finaliser (collisions between different bands are ~2^-64 per pair, negligible at corpus scale).
    """
    if sigs.shape[1] < bands * rows:
        raise ValueError(f"signatures have {sigs.shape[1]} values, {bands} bands x {rows} rows need more")
    values = sigs[:, : bands * rows].astype(np.uint64).reshape(len(sigs), bands, rows)
    h = np.full(values.shape[:2], 0x9E3779B97F4A7C15, dtype=np.uint64)
    for r in range(rows):  # a loop over the 8 rows of a band, vectorised over documents and bands
        h = _fmix((h * np.uint64(0x100000001B3)) ^ values[:, :, r], 64)
    return h.view(np.int64)


def lsh_probability(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """Probability that two documents of Jaccard `similarity` share at least one band: 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(similarity) ** rows) ** bands


# --- generated near-duplicate sets (tests and benchmarks) ---------------------------------------------


def make_vocabulary(size: int, seed: int = 0) -> list[str]:
    """Pronounceable made-up words, distinct, from consonant-vowel syllables."""
    rng = np.random.default_rng(seed)
    consonants, vowels = list("bcdfghjklmnprstvz"), list("aeiou")
    words: set[str] = set()
    while len(words) < size:
        n = int(rng.integers(1, 4))
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(n)) + rng.choice(consonants))
    return sorted(words)


def make_near_duplicates(
    n_base: int, copies_per_base: int, words_per_doc: int = 80, min_jaccard: float = 0.3, seed: int = 0,
    ngram: int = 5,
) -> list[dict]:
    """Base documents plus copies with controlled word substitutions.

    Each copy aims at a Jaccard similarity to its base drawn uniformly from [min_jaccard, 1]: k scattered
    substitutions change about n*k of the S = words - n + 1 shingles, so J ~ (S - nk) / (S + nk) gives
    k = S(1 - J) / (n(1 + J)). The exact similarity of any pair is left to `jaccard` (edits may overlap).
    Records: {"doc_id", "url", "text", "group", "edits"} (group = index of the base document).
    """
    rng = np.random.default_rng(seed)
    vocab = np.array(make_vocabulary(5000, seed))
    n_shingles = max(1, words_per_doc - ngram + 1)
    docs = []
    for g in range(n_base):
        base = rng.integers(0, len(vocab), words_per_doc)
        variants = [(base, 0)]
        for _ in range(copies_per_base):
            target = rng.uniform(min_jaccard, 1.0)
            k = min(words_per_doc, int(round(n_shingles * (1 - target) / (ngram * (1 + target)))))
            copy = base.copy()
            copy[rng.choice(words_per_doc, k, replace=False)] = rng.integers(0, len(vocab), k)
            variants.append((copy, k))
        for c, (ids, k) in enumerate(variants):
            doc_id = f"g{g:06d}-c{c:02d}"
            docs.append({"doc_id": doc_id, "url": f"https://example.test/{doc_id}", "text": " ".join(vocab[ids]),
                         "group": g, "edits": k})
    return docs
