"""Stage output folders: never delete what the platform did not write, never look complete when half-written.

A stage folder carries two markers. `_stage.json` is written first and says which stage owns the folder;
`manifest.json` is written last and says the stage finished there (`infra.core.manifest`). A folder with
the first and not the second is an unfinished output: downstream stages refuse it
(`infra.core.manifest.check_upstream`), and only a rerun of the same stage replaces it.

A stage writes its folder through `staged_output(uri, stage, inputs)`:

- it refuses, with one line, an output that is a file, that is (or holds, or lies inside) one of the stage's
  inputs, or that is a non-empty folder not owned by the same stage (no marker of that stage in it);
- locally it writes into a temporary sibling (`.NAME.tmp-ID`) and renames it into place only when the block
  ends without error, so an interrupted or failed run leaves the previous output (or nothing) behind; the
  temporary folder is removed on any error, Ctrl-C or SIGTERM (see `handle_sigterm`), and the leftovers of a
  killed process (SIGKILL, power loss) are removed by the next run into the same output;
- on object stores (no rename) it removes the previous output's manifest first, then the previous output,
  and the stage writes in place with its manifest last: a folder without a manifest is never complete.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import re
import shutil
import signal
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from infra.core import fs
from infra.core.manifest import (
    MANIFEST_NAME,
    STARTED_NAME,
    STOP_SIGNALS,
    completed_stage,
    location,
    raise_if_stopped,
    started_stage,
)

_TEMPORARY_ID = re.compile(r"^[0-9a-f]{8}$")  # the ID of `.NAME.tmp-ID` / `.NAME.old-ID`


class OutputError(ValueError):
    """An output folder the stage may not write to; the message is one line that names it."""


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def marker_stage(uri: str | Path) -> str | None:
    """The `stage` of the completion marker in `uri`, or None when it has none (or an unreadable one)."""
    return completed_stage(uri)


def owner_stage(uri: str | Path) -> str | None:
    """The stage that wrote `uri`: its completion marker's, else its start marker's (an unfinished output)."""
    return completed_stage(uri) or started_stage(uri)


def check_output(uri: str | Path, stage: str, inputs: Iterable[str | Path] = ()) -> None:
    """Raise OutputError unless `uri` may be (re)written by `stage`; see the module docstring.

    Cheap (a few metadata calls): stages call it before their expensive work, and `staged_output` again.
    """
    target = location(uri)
    for given in inputs:
        source = location(given)
        if _inside(source, target) or _inside(target, source):
            raise OutputError(f"output {uri} overlaps the input {given}: choose an output folder outside the inputs")
    if fs.is_file(uri):
        raise OutputError(f"output {uri} is a file, not a folder")
    if not fs.is_dir(uri) or not fs.list_files(uri, hidden=True):
        return
    done, started = completed_stage(uri), started_stage(uri)
    if stage in (done, started):
        return
    if done or started:
        what = f"a {done!r} stage output" if done else f"an unfinished {started!r} stage output"
    else:
        what = f"not a finished stage output (no {MANIFEST_NAME})"
    raise OutputError(f"output {uri} is not empty and is {what}; it is not replaced by {stage!r}: "
                      "choose an empty folder or remove it yourself")


def mark_started(uri: str | Path, stage: str) -> None:
    """Write the start marker: `uri` belongs to `stage` (and is unfinished until its manifest is written)."""
    record = {"stage": stage, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    fs.write_text(fs.join(uri, STARTED_NAME), json.dumps(record) + "\n")


def unmark(uri: str | Path) -> None:
    """Make a finished output unfinished: keep (or write) its start marker, then remove its manifest.

    Used before the output's inputs are rewritten (`corpus build` unmarks its later stages before extract
    runs again), so a rerun that stops half-way never leaves old output that looks complete. The stage's
    own rerun still replaces the folder; nothing else does.
    """
    stage = completed_stage(uri)
    if stage is None:
        return
    if started_stage(uri) != stage:
        mark_started(uri, stage)
    fs.delete_file(fs.join(uri, MANIFEST_NAME))


@contextlib.contextmanager
def staged_output(uri: str | Path, stage: str, inputs: Iterable[str | Path] = ()) -> Iterator[str]:
    """Yield where the stage writes; on success that becomes `uri` (see the module docstring)."""
    check_output(uri, stage, inputs)
    if fs.is_remote(uri):
        if fs.exists(uri):  # a previous output of this stage: unmark it first, then clear it
            unmark(uri)
            fs.delete_dir(uri)
        mark_started(uri, stage)
        yield str(uri)
        return
    final = fs.local_path(uri).absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    staging = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        mark_started(staging, stage)
        yield str(staging)
        raise_if_stopped()  # a stop signal whose KeyboardInterrupt a finaliser swallowed: do not commit
        if final.exists():
            final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if old.exists() and not final.exists():  # stopped between the two renames: put the old output back
            old.rename(final)
        shutil.rmtree(staging, ignore_errors=True)
        # An engine's workers (Spark tasks) may still write into it until the session stops: again at exit.
        atexit.register(shutil.rmtree, staging, ignore_errors=True)
        raise


def remove_stale_temporaries(uri: str | Path) -> list[str]:
    """Remove `.NAME.tmp-ID` / `.NAME.old-ID` siblings of a local output left by a killed process."""
    if fs.is_remote(uri):
        return []
    final = fs.local_path(uri).absolute()
    removed = []
    for kind in ("tmp", "old"):
        prefix = f".{final.name}.{kind}-"
        for path in final.parent.glob(f"{glob.escape(prefix)}*"):
            if _TEMPORARY_ID.match(path.name[len(prefix):]):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
    return removed


def handle_sigterm() -> None:
    """Make SIGTERM stop the process as Ctrl-C does (KeyboardInterrupt), so `staged_output` and every
    `finally` clean up: the temporary folder goes, and a Spark session is stopped by its context manager.

    Both signals are also recorded (`infra.core.manifest.STOP_SIGNALS`): when the KeyboardInterrupt is raised
    inside a finaliser, Python prints it and carries on, and the record still keeps the stage from committing
    its output or writing its manifest. Ctrl-C keeps the handler it had (Python's), wrapped to record the
    signal; pyspark installs its own when a SparkContext starts, and `record_ctrl_c` wraps that one too."""
    def _interrupt(signum, frame):  # noqa: ARG001
        STOP_SIGNALS.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    _interrupt.records_stop = True
    with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
        signal.signal(signal.SIGTERM, _interrupt)
        record_ctrl_c()


def _records_stop(signum: int) -> bool:
    """Whether the handler of `signum` is one of ours, that records the signal in `STOP_SIGNALS`."""
    return getattr(signal.getsignal(signum), "records_stop", False)


def record_ctrl_c() -> None:
    """After `handle_sigterm`, wrap the current Ctrl-C handler (pyspark's cancels the Spark jobs, then raises
    KeyboardInterrupt) so that SIGINT is recorded in `STOP_SIGNALS` first; without it, do nothing."""
    previous = signal.getsignal(signal.SIGINT)
    if not _records_stop(signal.SIGTERM) or not callable(previous) or _records_stop(signal.SIGINT):
        return

    def _record_then(signum, frame):
        STOP_SIGNALS.append(signum)
        previous(signum, frame)

    _record_then.records_stop = True
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, _record_then)
