"""Local folders for run data that lives on an object store: staging before an upload, a cache of downloads.

DCP, TensorBoard, safetensors and transformers' `from_pretrained` read and write local folders only, while a
run folder, an export or a model to evaluate may be an `s3://` / `gs://` URI. Writers work in a local staging
folder and upload it with `infra.core.fs.copy_dir`; readers download a remote folder (or file) once into a
cache keyed by its listing (names, sizes, modification times), so a folder rewritten under the same URI is
fetched again. Local paths pass through untouched: nothing is copied for a local run.

The cache lives under $REXBERT_LOCAL_CACHE (default: `<tmp>/rexbert-cache`); every process on one machine
uses the same folders, so ranks and Tune trials on a node share one download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from infra.core import fs

CACHE_ENV = "REXBERT_LOCAL_CACHE"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "rexbert-cache")


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def staging_dir(uri: str | Path, *parts: str) -> Path:
    """The local folder standing in for remote `uri` (the same for every process on this machine)."""
    return cache_root().joinpath("staging", f"{fs.name_of(uri)}-{_key(str(uri))}", *parts)


def absolute(uri: str | Path) -> str:
    """A URI as it is, a local path made absolute (Ray workers and Tune trials run in other directories)."""
    return str(uri) if fs.is_remote(uri) else str(fs.local_path(uri).resolve())


def local_dir(uri: str | Path) -> Path:
    """Where to write what belongs in `uri`: the folder itself when local, else its staging folder."""
    return staging_dir(uri) if fs.is_remote(uri) else fs.local_path(uri)


def publish_dir(local: str | Path, uri: str | Path) -> None:
    """Upload a folder staged by `local_dir(uri)` (nothing to do for a local `uri`: it was written in place)."""
    if fs.is_remote(uri):
        fs.copy_dir(local, uri)


def _listing(uri: str) -> list[tuple[str, int, str]]:
    filesystem, root = fs.resolve(uri)
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.File:
        return [("", info.size, str(info.mtime))]
    entries = filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return sorted((e.path[len(root.rstrip("/")) + 1:], e.size, str(e.mtime))
                  for e in entries if e.type == pafs.FileType.File)


def fetch_dir(uri: str | Path) -> Path:
    """A local copy of folder `uri` (or of one file): itself when local, else a cached download.

    Concurrent callers (ranks, trials) may both download; each writes its own temporary folder and one
    rename wins, so nobody ever reads a half-copied folder.
    """
    if not fs.is_remote(uri):
        return fs.local_path(uri)
    listing = _listing(str(uri))
    if not listing:
        raise FileNotFoundError(f"not found (or empty): {uri}")
    target = cache_root() / "downloads" / f"{fs.name_of(uri)}-{_key(repr((str(uri), listing)))}"
    single_file = listing[0][0] == ""
    if not target.is_dir():
        partial = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        if single_file:  # kept under its own name, inside the cache folder
            partial.mkdir(parents=True)
            (partial / fs.name_of(uri)).write_bytes(fs.read_bytes(uri))
        else:
            fs.copy_dir(uri, partial)
        try:
            partial.rename(target)
        except OSError:  # another process finished the same download first
            shutil.rmtree(partial, ignore_errors=True)
    return target / fs.name_of(uri) if single_file else target
