"""The stage contract: mergeable counters and the one `manifest.json` writer every stage calls.

Every stage (sample-data, extract, filter, dedup, build, corpus, train-tokenizer, pack, each pretraining
phase, evaluate) ends with `write_manifest`, so every manifest has one schema:

    stage, created_utc, versions, config, inputs, outputs, seconds,
    counts: {input, kept, filtered: {reason: n}, duplicates, errors: {kind: n}, seconds}

plus stage-specific keys beside them (a funnel, token counts, losses). `counts` must add up,
input = kept + filtered + duplicates + errors, or nothing is written (`AccountingError`). The manifest
is written last, through the filesystem layer, and marks the stage's folder complete.

Like datatrove's stats: each stage (or each Spark partition, Ray block, Tune trial) keeps its own
`StageStats`, and they sum with `+` into the stage total.
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from infra.core import fs

MANIFEST_NAME = "manifest.json"
REQUIRED_KEYS = ("stage", "created_utc", "versions", "config", "inputs", "outputs", "counts", "seconds")
COUNT_KEYS = ("input", "kept", "filtered", "duplicates", "errors", "seconds")
_VERSIONED = ["rexbert", "pyspark", "ray", "torch", "transformers", "tokenizers", "trafilatura", "datatrove"]


class AccountingError(AssertionError):
    """A stage's counts do not add up: some record was lost or double-counted."""


@dataclass
class StageStats:
    """Counts of one stage. `filtered` and `errors` are keyed by reason slug / error kind."""

    input: int = 0
    kept: int = 0
    duplicates: int = 0
    filtered: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def drop(self, reason: str, n: int = 1) -> None:
        self.filtered[reason] += n

    def error(self, kind: str, n: int = 1) -> None:
        self.errors[kind] += n

    def __add__(self, other: StageStats) -> StageStats:
        return StageStats(
            input=self.input + other.input,
            kept=self.kept + other.kept,
            duplicates=self.duplicates + other.duplicates,
            filtered=self.filtered + other.filtered,
            errors=self.errors + other.errors,
            seconds=self.seconds + other.seconds,
        )

    @property
    def accounted(self) -> int:
        return self.kept + sum(self.filtered.values()) + self.duplicates + sum(self.errors.values())

    def check(self, stage: str = "stage") -> None:
        """Raise AccountingError unless input == kept + filtered + duplicates + errors exactly."""
        if self.input != self.accounted:
            raise AccountingError(
                f"{stage}: input {self.input} != kept {self.kept} + filtered {sum(self.filtered.values())} "
                f"+ duplicates {self.duplicates} + errors {sum(self.errors.values())} (= {self.accounted})"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "kept": self.kept,
            "filtered": dict(sorted(self.filtered.items())),
            "duplicates": self.duplicates,
            "errors": dict(sorted(self.errors.items())),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        return cls(
            input=data["input"],
            kept=data["kept"],
            duplicates=data.get("duplicates", 0),
            filtered=Counter(data.get("filtered", {})),
            errors=Counter(data.get("errors", {})),
            seconds=data.get("seconds", 0.0),
        )


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_manifest(
    stage: str,
    stats: StageStats,
    config: Any = None,
    inputs: list[str] | None = None,
    outputs: dict[str, Any] | None = None,
    seconds: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A manifest dict in the one schema; the accounting identity is checked first.

    Args:
        config: the stage's config (a pydantic model or a dict), recorded as it ran.
        seconds: the stage's wall time (default: `stats.seconds`).
        extra: stage-specific keys; they may not replace the schema's own keys.
    """
    stats.check(stage)
    if config is not None and hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    clash = sorted(set(extra or {}) & set(REQUIRED_KEYS))
    if clash:
        raise ValueError(f"manifest extra keys {clash} would replace the schema's own")
    manifest: dict[str, Any] = {
        "stage": stage,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": package_versions(),
        "config": config,
        "inputs": [str(i) for i in (inputs or [])],
        "outputs": outputs or {},
        "counts": stats.to_dict(),
        "seconds": round(stats.seconds if seconds is None else seconds, 3),
    }
    manifest.update(extra or {})
    return manifest


def check_manifest(manifest: dict[str, Any], where: str = "manifest") -> StageStats:
    """The manifest's counts, after checking it has the schema's keys and that the counts add up."""
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ValueError(f"{where}: not a stage manifest (missing {', '.join(missing)})")
    counts = manifest["counts"]
    missing = [key for key in COUNT_KEYS if key not in counts]
    if missing:
        raise ValueError(f"{where}: counts lack {', '.join(missing)}")
    stats = StageStats.from_dict(counts)
    stats.check(f"{where} ({manifest['stage']})")
    return stats


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> str:
    """Write `out_dir/manifest.json` (any filesystem), after checking its schema and counts."""
    check_manifest(manifest, fs.join(out_dir, MANIFEST_NAME))
    return fs.write_text(fs.join(out_dir, MANIFEST_NAME), json.dumps(manifest, indent=2, default=str) + "\n")


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """A finished stage's manifest; a clear error when the stage did not finish there."""
    uri = fs.join(out_dir, MANIFEST_NAME)
    if not fs.is_file(uri):
        raise FileNotFoundError(f"no {MANIFEST_NAME} in {out_dir}: the stage did not finish there")
    return json.loads(fs.read_text(uri))
