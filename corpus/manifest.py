"""The `manifest.json` every stage writes: config, versions, inputs, outputs and counts that add up."""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from corpus.stats import StageStats

MANIFEST_NAME = "manifest.json"
_VERSIONED = ["rexbert", "pyspark", "ray", "torch", "transformers", "tokenizers", "trafilatura", "datatrove"]


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
    stats: StageStats | None = None,
    config: Any = None,
    inputs: list[str] | None = None,
    outputs: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A manifest dict; with `stats`, the accounting identity is checked before anything is written."""
    if stats is not None:
        stats.check(stage)
    if config is not None and hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    manifest: dict[str, Any] = {
        "stage": stage,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": package_versions(),
        "inputs": inputs or [],
        "config": config,
    }
    if stats is not None:
        manifest["counts"] = stats.to_dict()
    if outputs:
        manifest["outputs"] = outputs
    if extra:
        manifest.update(extra)
    return manifest


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    path = Path(out_dir) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str))
    return path


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST_NAME} in {out_dir}: the stage did not finish there")
    return json.loads(path.read_text())
