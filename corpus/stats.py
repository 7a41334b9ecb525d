"""Mergeable stage counters, so every stage can prove input = kept + filtered + duplicates + errors.

Like datatrove's stats: each stage (or each Spark partition) keeps its own `StageStats`, and they
sum with `+` into the stage total written to the manifest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


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
