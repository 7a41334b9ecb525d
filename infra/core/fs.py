"""The one filesystem layer: local paths, `file://`, `s3://`, `gs://` and `hdfs://` URIs through pyarrow.fs.

Every stage reads and writes through these functions, so a stage that works on a local folder works on
an object store too. A URI is kept as a string end to end (never a `pathlib.Path`, which folds
`s3://b` into `s3:/b`); local paths stay plain paths.

S3 endpoints: `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (as the AWS CLI reads them) point `s3://` at
another server, e.g. a local moto or MinIO one; credentials and region come from the usual AWS
variables and files. `gs://` uses Google's default credentials.

    fs.write_text("s3://bucket/run/manifest.json", text)
    for kind, uri in fs.list_inputs(["s3://bucket/crawl/", "local.warc.gz"]): ...
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

REMOTE_SCHEMES = ("s3", "s3a", "gs", "gcs", "hdfs", "viewfs")

# The one list of input suffixes (longest first wins): what each file kind is read as.
INPUT_KINDS = {
    ".warc.gz": "warc",
    ".warc": "warc",
    ".arc.gz": "warc",
    ".html": "html",
    ".htm": "html",
    ".html.gz": "html",
    ".htm.gz": "html",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".json": "jsonl",
    ".json.gz": "jsonl",
    ".parquet": "parquet",
}
PAGE_KINDS = ("warc", "html")
TEXT_KINDS = ("jsonl", "parquet")
# Stage side files that are never inputs even though their suffix says so.
SIDE_FILES = ("manifest.json", "ground_truth.jsonl")


class FileSystemError(OSError):
    """A URI that cannot be read or written; the message names the URI."""


def scheme(uri: str | Path) -> str:
    """'' for local paths (and `file://`), else the URI scheme ('s3', 'gs', ...)."""
    text = str(uri)
    if "://" not in text:
        return ""
    name = text.split("://", 1)[0].lower()
    return "" if name == "file" else name


def is_remote(uri: str | Path) -> bool:
    return scheme(uri) != ""


def local_path(uri: str | Path) -> Path:
    """The local path of a local path or `file://` URI; an error for remote URIs."""
    if is_remote(uri):
        raise FileSystemError(f"{uri} is not a local path")
    return Path(str(uri).removeprefix("file://"))


def absolute(uri: str | Path) -> str:
    """A URI unchanged, a local path made absolute: what a driver hands to executors, whose working folder is
    not the user's (a Spark cluster's executors run in their own work folders)."""
    return str(uri) if is_remote(uri) else str(local_path(uri).absolute())


def join(base: str | Path, *parts: str) -> str:
    """`base/part/...` as a string, for local paths and URIs alike."""
    text = str(base).rstrip("/") if str(base) not in ("/", "") else str(base)
    for part in parts:
        text = f"{text.rstrip('/')}/{str(part).strip('/')}"
    return text


def under(root: str | Path, path: str) -> str:
    """`path` as given when it is absolute or a URI, else `root/path` (config paths are relative to a root)."""
    return path if is_remote(path) or local_path(path).is_absolute() else join(root, path)


def name_of(uri: str | Path) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def parent_of(uri: str | Path) -> str:
    text = str(uri).rstrip("/")
    return text.rsplit("/", 1)[0] if "/" in text.split("://", 1)[-1] else text


def _s3_settings() -> tuple[tuple[str, Any], ...]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, Any] = {}
    if endpoint:
        scheme_, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host or scheme_, scheme=scheme_ if host else "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    return tuple(sorted(kwargs.items()))


@functools.lru_cache(maxsize=16)
def _filesystem(kind: str, hint: str, settings: tuple[tuple[str, Any], ...] = ()) -> pafs.FileSystem:
    """One filesystem object per scheme and settings (the S3 endpoint may change, e.g. between tests)."""
    if kind in ("s3", "s3a"):
        return pafs.S3FileSystem(**dict(settings))
    if kind in ("gs", "gcs"):
        return pafs.GcsFileSystem()
    return pafs.FileSystem.from_uri(hint)[0]


def filesystem(uri: str | Path) -> pafs.FileSystem:
    """The pyarrow filesystem of a path or URI (for libraries that take one: Ray Data, Ray Train, pyarrow)."""
    return resolve(uri)[0]


# Filesystems handed over by a driver, by scheme (see `pinned_filesystems`).
_PINNED: dict[str, pafs.FileSystem] = {}


def remote_filesystems(uris: Iterable[str | Path]) -> dict[str, pafs.FileSystem]:
    """This process's filesystem object for each remote scheme among `uris`: what a driver hands to its tasks."""
    return {scheme(uri): resolve(uri)[0] for uri in uris if is_remote(uri)}


@contextlib.contextmanager
def pinned_filesystems(filesystems: dict[str, pafs.FileSystem]) -> Iterator[None]:
    """Resolve these schemes to these filesystem objects for a while: a task on a cluster worker then reaches
    the object store exactly as the driver does (its endpoint, e.g. a local S3 server), whatever the worker's
    own environment says, as Ray Data's readers do with the filesystem they are given."""
    saved = dict(_PINNED)
    _PINNED.update(filesystems)
    try:
        yield
    finally:
        _PINNED.clear()
        _PINNED.update(saved)


def resolve(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for any supported path or URI."""
    kind = scheme(uri)
    if kind == "":
        return pafs.LocalFileSystem(), str(local_path(uri).absolute())
    if kind in _PINNED:
        return _PINNED[kind], _resolve_remote(uri, kind)[1]
    return _resolve_remote(uri, kind)


def _resolve_remote(uri: str | Path, kind: str) -> tuple[pafs.FileSystem, str]:
    text = str(uri)
    rest = text.split("://", 1)[1]
    if kind in ("s3", "s3a"):
        return _filesystem(kind, "", _s3_settings()), rest.rstrip("/")
    if kind in ("gs", "gcs"):
        return _filesystem(kind, ""), rest.rstrip("/")
    if kind not in REMOTE_SCHEMES:
        raise FileSystemError(f"unsupported URI scheme {kind!r} in {uri} (use a local path, file://, s3://, gs://, "
                              "hdfs://)")
    host = rest.split("/", 1)[0]
    fs = _filesystem(kind, f"{kind}://{host}")
    return fs, "/" + rest.split("/", 1)[1] if "/" in rest else "/"


def _info(uri: str | Path) -> pafs.FileInfo:
    fs, path = resolve(uri)
    return fs.get_file_info(path)


def exists(uri: str | Path) -> bool:
    return _info(uri).type != pafs.FileType.NotFound


def is_file(uri: str | Path) -> bool:
    return _info(uri).type == pafs.FileType.File


def is_dir(uri: str | Path) -> bool:
    return _info(uri).type == pafs.FileType.Directory


def makedirs(uri: str | Path) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)


def read_bytes(uri: str | Path) -> bytes:
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path, compression=None) as stream:
            return stream.read()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"not found: {uri}") from err


def read_text(uri: str | Path) -> str:
    return read_bytes(uri).decode("utf-8")


def open_input(uri: str | Path):
    """A readable binary stream (seekable where the filesystem allows)."""
    fs, path = resolve(uri)
    return fs.open_input_file(path)


def write_bytes(uri: str | Path, data: bytes) -> str:
    """Write a whole file. Locally through a temporary name and a rename, so a reader never sees half of it;
    an object store's put is already all or nothing."""
    fs, path = resolve(uri)
    if is_remote(uri):
        with fs.open_output_stream(path, compression=None) as stream:
            stream.write(data)
        return str(uri)
    target = local_path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    tmp.replace(target)
    return str(uri)


def write_text(uri: str | Path, text: str) -> str:
    return write_bytes(uri, text.encode("utf-8"))


def delete_file(uri: str | Path) -> None:
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


def delete_dir(uri: str | Path) -> None:
    """Remove a folder and everything under it (nothing when it does not exist)."""
    if not is_remote(uri):
        shutil.rmtree(local_path(uri), ignore_errors=True)
        return
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def list_files(uri: str | Path, suffixes: tuple[str, ...] | None = None, hidden: bool = False) -> list[str]:
    """Every file under a folder (recursively), or the file itself, as sorted URIs/paths in `uri`'s form.

    Names starting with `_` or `.` (and folders so named: Spark's `_errors/`, `_SUCCESS`, staging) are left
    out unless `hidden`.
    """
    fs, root = resolve(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        return [str(uri)]
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"not found: {uri}")
    base = str(uri).rstrip("/")
    found = []
    for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if entry.type != pafs.FileType.File:
            continue
        relative = entry.path[len(root.rstrip("/")) + 1:]
        if not hidden and any(part.startswith(("_", ".")) for part in relative.split("/")):
            continue
        if suffixes and not relative.endswith(suffixes):
            continue
        found.append(f"{base}/{relative}")
    return sorted(found)


def input_kind(name: str) -> str | None:
    """'warc' | 'html' | 'jsonl' | 'parquet' by file name, or None for anything else."""
    lowered = name.lower()
    for suffix in sorted(INPUT_KINDS, key=len, reverse=True):
        if lowered.endswith(suffix):
            return INPUT_KINDS[suffix]
    return None


def select_inputs(files: Iterable[str]) -> list[tuple[str, str]]:
    """(kind, file) for the readable files of one folder listing, sorted.

    Page inputs win: when a folder holds WARC or HTML files, its JSON / JSONL / Parquet files are side data
    (a crawl's ground truth, a manifest), not inputs. Hidden and `_`-prefixed names are skipped.
    """
    kinds = []
    for file in sorted(set(files)):
        name = name_of(file)
        kind = input_kind(name)
        if kind and not name.startswith(("_", ".")) and name not in SIDE_FILES and "/_" not in file:
            kinds.append((kind, file))
    if any(kind in PAGE_KINDS for kind, _ in kinds):
        kinds = [(kind, file) for kind, file in kinds if kind in PAGE_KINDS]
    return kinds


def list_inputs(paths: Iterable[str | Path], kinds: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """(kind, file) for every readable input under the given files or folders (each file once).

    A file named directly is taken whatever its folder holds; a folder is listed with `select_inputs`.
    `kinds` keeps only those kinds. A path that does not exist raises FileNotFoundError naming it.
    """
    found: dict[str, str] = {}
    for given in paths:
        given = str(given)
        if any(ch in name_of(given) for ch in "*?["):  # a glob in the last part: crawl/*.warc.gz
            pattern = name_of(given)
            matches = [f for f in list_files(parent_of(given)) if fnmatch.fnmatch(name_of(f), pattern)
                       and parent_of(f) == parent_of(given).rstrip("/")]
            if not matches:
                raise FileNotFoundError(f"no file matches {given}")
            for file in matches:
                kind = input_kind(name_of(file))
                if kind:
                    found.setdefault(file, kind)
            continue
        if is_file(given):
            kind = input_kind(name_of(given))
            if kind:
                found.setdefault(given, kind)
            continue
        for kind, file in select_inputs(list_files(given)):
            found.setdefault(file, kind)
    selected = [(kind, file) for file, kind in found.items() if kinds is None or kind in kinds]
    return sorted(selected, key=lambda item: item[1])


def copy_dir(source: str | Path, target: str | Path) -> None:
    """Copy a folder's files to another filesystem or place (upload, download or local copy)."""
    src_fs, src = resolve(source)
    dst_fs, dst = resolve(target)
    dst_fs.create_dir(dst, recursive=True)
    pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs)
