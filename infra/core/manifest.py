"""The stage contract: mergeable counters and the one `manifest.json` writer every stage calls.

Every stage (sample-data, extract, filter, dedup, build, corpus, train-tokenizer, pack, each pretraining
phase, evaluate) ends with `write_manifest`, so every manifest has one schema:

    stage, created_utc, versions, config, inputs, outputs, seconds,
    counts: {input, kept, filtered: {reason: n}, duplicates, errors: {kind: n}, seconds}

plus `upstream` (lineage, below), a `run_id`, and stage-specific keys beside them (a funnel, token
counts, losses). `counts` must add up, input = kept + filtered + duplicates + errors, or nothing is
written (`AccountingError`). The manifest is written last, through the filesystem layer, and marks the
stage's folder complete.

Like datatrove's stats: each stage (or each Spark partition, Ray block, Tune trial) keeps its own
`StageStats`, and they sum with `+` into the stage total.

Lineage: every manifest's `upstream` lists the finished stage folders it was built from, each with the
sha256 of that folder's `manifest.json` as it was read. Before reading, a stage calls
`check_upstream(inputs)`: it refuses (one line, `InputError`) an input folder that a stage started and did
not finish (a start marker `_stage.json` and no manifest: failed, interrupted, or being rewritten), and an
input whose own upstream changed since it was built. Plain user inputs (a WARC folder, a user's JSONL),
which carry neither marker, are read as they are.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from infra.core import fs
from infra.core.config import redact

MANIFEST_NAME = "manifest.json"  # the completion marker: written last, it says the stage finished there
STOP_SIGNALS: list[int] = []  # SIGTERM / SIGINT received (`infra.core.outputs.handle_sigterm`): no manifest after one
STARTED_NAME = "_stage.json"  # the start marker: written first, it says which stage owns the folder
REQUIRED_KEYS = ("stage", "created_utc", "versions", "config", "inputs", "outputs", "counts", "seconds")
COUNT_KEYS = ("input", "kept", "filtered", "duplicates", "errors", "seconds")
_VERSIONED = ["rexbert", "pyspark", "ray", "torch", "transformers", "tokenizers", "trafilatura", "datatrove"]


class AccountingError(AssertionError):
    """A stage's counts do not add up: some record was lost or double-counted."""


class InputError(ValueError):
    """Input a stage may not use (unfinished, out of date, or empty); the message is one line that names it."""


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
    upstream: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A manifest dict in the one schema; the accounting identity is checked first.

    Args:
        config: the stage's config (a pydantic model or a dict), recorded as it ran, secrets redacted.
        seconds: the stage's wall time (default: `stats.seconds`).
        extra: stage-specific keys; they may not replace the schema's own keys.
        upstream: what `check_upstream` returned when the stage started (default: `upstream_of(inputs)`
            now, for a stage that did not check).
    """
    stats.check(stage)
    config = redact(config)  # a manifest lands in the output folder: no credential may ride along
    clash = sorted(set(extra or {}) & {*REQUIRED_KEYS, "upstream", "run_id"})
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
        "upstream": upstream_of(inputs or []) if upstream is None else upstream,
        "run_id": uuid.uuid4().hex,  # two runs never write the same manifest, so its sha256 names one output
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


def raise_if_stopped() -> None:
    """Raise KeyboardInterrupt when a stop signal came, even one whose KeyboardInterrupt was swallowed.

    Python ignores an exception raised while it runs a finaliser (py4j's weakref callbacks, for one), so a
    SIGTERM that lands there would otherwise let the stage run on and finish as if nothing had happened."""
    if STOP_SIGNALS:
        raise KeyboardInterrupt(f"signal {STOP_SIGNALS[0]}")


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> str:
    """Write `out_dir/manifest.json` (any filesystem), after checking its schema and counts; never after a stop
    signal (`raise_if_stopped`)."""
    raise_if_stopped()
    check_manifest(manifest, fs.join(out_dir, MANIFEST_NAME))
    return fs.write_text(fs.join(out_dir, MANIFEST_NAME), json.dumps(manifest, indent=2, default=str) + "\n")


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """A finished stage's manifest; a clear error when the stage did not finish there."""
    uri = fs.join(out_dir, MANIFEST_NAME)
    if not fs.is_file(uri):
        raise FileNotFoundError(f"no {MANIFEST_NAME} in {out_dir}: the stage did not finish there")
    return json.loads(fs.read_text(uri))


# --- lineage ------------------------------------------------------------------------------------------


def location(uri: str | Path) -> str:
    """One spelling per place: a URI without its trailing slash, a local path (or file:// URI) made absolute."""
    return str(uri).rstrip("/") if fs.is_remote(uri) else str(fs.local_path(uri).resolve())


def _stage_of(uri: str | Path, name: str) -> str | None:
    marker = fs.join(uri, name)
    if not fs.is_file(marker):
        return None
    try:
        stage = json.loads(fs.read_text(marker)).get("stage")
    except (ValueError, AttributeError):
        return None
    return stage if isinstance(stage, str) else None


def completed_stage(uri: str | Path) -> str | None:
    """The stage whose manifest marks `uri` complete, or None (no manifest, or not one of ours)."""
    return _stage_of(uri, MANIFEST_NAME)


def started_stage(uri: str | Path) -> str | None:
    """The stage whose start marker `uri` carries (finished or not), or None."""
    return _stage_of(uri, STARTED_NAME)


def _stage_folder(uri: str | Path) -> str | None:
    """The folder whose markers speak for input `uri`: itself when a folder, its folder when a file or a glob."""
    if fs.is_dir(uri):
        return str(uri)
    if fs.is_file(uri) or any(c in fs.name_of(uri) for c in "*?["):
        parent = fs.parent_of(uri)
        return parent if parent and fs.is_dir(parent) else None
    return None


def _entry(folder: str) -> dict[str, str] | None:
    """{path, stage, sha256} of a finished stage folder, None for anything else."""
    stage = completed_stage(folder)
    if stage is None:
        return None
    digest = hashlib.sha256(fs.read_bytes(fs.join(folder, MANIFEST_NAME))).hexdigest()
    return {"path": location(folder), "stage": stage, "sha256": digest}


def _stage_folders(inputs: list[str | Path]) -> list[tuple[str, str]]:
    """(input as given, its stage folder) once per folder, in input order."""
    found, seen = [], set()
    for given in inputs:
        folder = _stage_folder(given)
        if folder is not None and location(folder) not in seen:
            seen.add(location(folder))
            found.append((str(given), folder))
    return found


def upstream_of(inputs: list[str | Path]) -> list[dict[str, str]]:
    """The finished stage folders among (or holding) `inputs`, with their manifests' sha256: a manifest's
    `upstream`. Inputs that are no stage's output are left out."""
    entries = (_entry(folder) for _, folder in _stage_folders(list(inputs)))
    return [entry for entry in entries if entry is not None]


def _check_built_from(given: str, stage: str, entry: dict[str, Any]) -> None:
    """Raise InputError when the folder `given` was built from (`entry`) is not what it was then."""
    path = entry.get("path")
    if not path or not fs.is_dir(path):
        return  # moved or copied elsewhere (a corpus uploaded to a bucket): nothing here to compare with
    now = _entry(path)
    if now is None:
        state = f"unfinished ({started_stage(path)!r} started, no {MANIFEST_NAME})" if started_stage(path) else \
            f"no stage output any more (no {MANIFEST_NAME})"
        raise InputError(f"input {given} was built from {path}, which is {state}: rerun {stage!r} after it")
    if now["sha256"] != entry.get("sha256"):
        raise InputError(f"input {given} is out of date: {path} was rewritten ({now['stage']!r}) after {stage!r} "
                         f"built it; rerun {stage!r}")


def check_upstream(inputs: list[str | Path]) -> list[dict[str, str]]:
    """Refuse unfinished and out-of-date stage outputs among `inputs` (InputError, one line); returns
    `upstream_of(inputs)` for the stage's manifest. Cheap: a few metadata reads per input folder."""
    for given, folder in _stage_folders(list(inputs)):
        done, started = completed_stage(folder), started_stage(folder)
        if done is None and started is not None:
            where = given if location(given) == location(folder) else f"{given} (in {folder})"
            raise InputError(f"input {where} is an unfinished {started!r} output (no {MANIFEST_NAME}: its run "
                             f"failed, was interrupted or is being rewritten); rerun {started!r} first")
        if done is not None:
            for entry in read_manifest(folder).get("upstream") or []:
                _check_built_from(given, done, entry)
    return upstream_of(inputs)
