"""Stage output folders: never delete what the platform did not write, never look complete when half-written.

A stage writes its folder through `staged_output(uri, stage, inputs)`:

- it refuses, with one line, an output that is a file, that is (or holds, or lies inside) one of the stage's
  inputs, or that is a non-empty folder without a completion marker (`manifest.json`) of the same stage;
- locally it writes into a temporary sibling (`.NAME.tmp-ID`) and renames it into place only when the block
  ends without error, so an interrupted or failed run leaves the previous output (or nothing) behind;
  the temporary folder is removed on any error, Ctrl-C or SIGTERM (see `handle_sigterm`);
- on object stores (no rename) it removes the previous output's manifest first, then the previous output,
  and the stage writes in place with its manifest last: a folder without a manifest is never complete.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from infra.core import fs

MANIFEST_NAME = "manifest.json"


class OutputError(ValueError):
    """An output folder the stage may not write to; the message is one line that names it."""


def _normal(uri: str | Path) -> str:
    return str(uri).rstrip("/") if fs.is_remote(uri) else str(fs.local_path(uri).resolve())


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def marker_stage(uri: str | Path) -> str | None:
    """The `stage` of the completion marker in `uri`, or None when it has none (or an unreadable one)."""
    marker = fs.join(uri, MANIFEST_NAME)
    if not fs.is_file(marker):
        return None
    try:
        return json.loads(fs.read_text(marker)).get("stage")
    except (ValueError, AttributeError):
        return None


def check_output(uri: str | Path, stage: str, inputs: Iterable[str | Path] = ()) -> None:
    """Raise OutputError unless `uri` may be (re)written by `stage`; see the module docstring."""
    target = _normal(uri)
    for given in inputs:
        source = _normal(given)
        if _inside(source, target) or _inside(target, source):
            raise OutputError(f"output {uri} overlaps the input {given}: choose an output folder outside the inputs")
    if fs.is_file(uri):
        raise OutputError(f"output {uri} is a file, not a folder")
    if not fs.is_dir(uri) or not fs.list_files(uri, hidden=True):
        return
    found = marker_stage(uri)
    if found != stage:
        what = f"a {found!r} stage output" if found else "not a finished stage output (no manifest.json)"
        raise OutputError(f"output {uri} is not empty and is {what}; it is not replaced by {stage!r}: "
                          "choose an empty folder or remove it yourself")


@contextlib.contextmanager
def staged_output(uri: str | Path, stage: str, inputs: Iterable[str | Path] = ()) -> Iterator[str]:
    """Yield where the stage writes; on success that becomes `uri` (see the module docstring)."""
    check_output(uri, stage, inputs)
    if fs.is_remote(uri):
        if fs.exists(uri):  # a previous output of this stage: unmark it first, then clear it
            fs.delete_file(fs.join(uri, MANIFEST_NAME))
            fs.delete_dir(uri)
        yield str(uri)
        return
    final = fs.local_path(uri).absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield str(staging)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_stale_temporaries(uri: str | Path) -> list[str]:
    """Remove `.NAME.tmp-*` / `.NAME.old-*` siblings of a local output left by a killed process."""
    if fs.is_remote(uri):
        return []
    final = fs.local_path(uri).absolute()
    removed = []
    for pattern in (f".{final.name}.tmp-*", f".{final.name}.old-*"):
        for path in final.parent.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def handle_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so `staged_output` (and every `finally`) cleans up as on Ctrl-C."""
    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    with contextlib.suppress(ValueError):  # not the main thread: leave the handler alone
        signal.signal(signal.SIGTERM, _raise)
