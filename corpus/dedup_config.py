"""The `corpus.dedup:` config section: MinHash LSH near-duplicate removal (FineWeb's defaults)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

HashFunction = Literal["words32", "words64", "xxh32", "sha1_32", "xxh64", "sha1_64"]
Scheme = Literal["affine32", "affine64", "legacy"]


class DedupConfig(BaseModel):
    """Settings of the dedup stage. Defaults follow FineWeb: word 5-grams, 14 bands x 8 rows (112 hashes)."""

    model_config = ConfigDict(extra="forbid")

    ngram: int = Field(5, ge=1, description="Words per shingle (word n-grams over the normalised text).")
    bands: int = Field(14, ge=1, description="LSH bands; two documents are candidates when one band matches.")
    rows: int = Field(8, ge=1, description="MinHash values per band; num_perm = bands * rows.")
    seed: int = Field(1, description="Seed of the permutations, generated exactly as datasketch.MinHash(seed=...).")
    hash_function: HashFunction = Field(
        "words32",
        description="Shingle hash: words32/words64 (xxh3 per word, folded per n-gram, vectorised: fastest), "
        "xxh32/xxh64 (xxhash of the shingle bytes), sha1_32/sha1_64 (datasketch's sha1_hash32/sha1_hash64).",
    )
    scheme: Scheme = Field(
        "affine32", description="datasketch permutation scheme: affine32 (its default), affine64 or legacy."
    )
    threshold: float = Field(
        0.75, gt=0.0, le=1.0, description="Jaccard at which duplicate pairs are scored (precision/recall reports)."
    )
    quality_columns: list[str] = Field(
        default_factory=lambda: ["quality_score", "ecom_score"],
        description="Numeric columns ranking a component's documents (first present wins; higher is better).",
    )
    text_column: str = Field("text", description="Column holding the document text.")
    max_iterations: int = Field(50, ge=1, description="Cap on large-star/small-star rounds (error if not converged).")
    partitions: int | None = Field(
        None, ge=1, description="Repartition the input to this many partitions before signatures (None: keep)."
    )

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    @property
    def theoretical_threshold(self) -> float:
        """The usual LSH threshold (1/b)^(1/r) (0.719 for 14x8), where the S-curve 1 - (1 - s^r)^b is steepest
        (it catches a pair there with probability ~1 - 1/e = 0.65)."""
        return (1.0 / self.bands) ** (1.0 / self.rows)

    @property
    def s_curve_midpoint(self) -> float:
        """Jaccard caught with probability exactly 1/2: (1 - 2^(-1/b))^(1/r) (0.685 for 14x8)."""
        return (1.0 - 0.5 ** (1.0 / self.bands)) ** (1.0 / self.rows)

    @model_validator(mode="after")
    def _hash_fits_scheme(self) -> DedupConfig:
        if self.hash_function.endswith("64") and self.scheme != "affine64":
            raise ValueError(f"hash_function {self.hash_function!r} gives 64-bit values: use scheme 'affine64'")
        return self
