"""Shared pieces of the command modules: config loading from options plus `--section.key=value` overrides, and
the cheap checks every command runs before an engine starts (inputs readable, output writable)."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable

import typer

from infra.core import fs
from infra.core.config import ConfigError, RexbertConfig, check_ray_address, load_config, parse_overrides
from infra.core.manifest import check_upstream
from infra.core.outputs import OutputError, check_output

# Commands that accept config overrides pass this as `context_settings`; unknown non-dotted options
# still fail (parse_overrides rejects them with a message).
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}

# A `str`, not a `Path`: a Path would fold `s3://bucket/run.yaml` into `s3:/bucket/run.yaml`.
ConfigOption = typer.Option(
    None, "--config", "-c",
    help="Run config YAML: a local path or a file://, s3://, gs:// or hdfs:// URI (default: embedded local config).",
)


def resolve_config(ctx: typer.Context, config: str | None, **explicit: object) -> RexbertConfig:
    """Embedded defaults <- YAML file or URI <- `--section.key=value` extras <- explicit typed options.

    `explicit` maps dotted keys (e.g. "run.output") to option values, set as typed values (not re-parsed
    as YAML); None values are ignored. Every command loads its config here, so every command goes
    through `infra.core.config.load_config`.
    """
    overrides = parse_overrides(list(ctx.args))
    for key, value in explicit.items():
        if value is None:
            continue
        *sections, field = key.split(".")
        node = overrides
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"option for {key!r} conflicts with the override --{section}")
        node[field] = value
    return load_config(config, overrides)


# --- cheap checks, run before any engine starts --------------------------------------------------------------------


def _is_glob(path: str) -> bool:
    return any(ch in fs.name_of(path) for ch in "*?[")  # a pattern in the last part, as fs.list_inputs reads it


def check_inputs(paths: Iterable[str | None], what: str = "input") -> None:
    """Every input exists and, when local, can be read; else one line naming the first that cannot.

    Only what is named is looked at (a glob's folder, a folder itself, not every file under it): the stage
    lists the files itself, and listing a large bucket twice is not cheap.
    """
    for given in paths:
        if given is None:
            continue
        given = str(given)
        target = fs.parent_of(given) if _is_glob(given) else given
        if not fs.exists(target):
            raise FileNotFoundError(f"{what} not found: {given}")
        if fs.is_remote(target):
            continue
        local = fs.local_path(target)
        try:
            if local.is_dir():
                os.listdir(local)
            else:
                with open(local, "rb") as handle:
                    handle.read(1)
        except OSError as err:
            raise PermissionError(f"{what} {given} cannot be read: {err.strerror}") from None


def check_writable(uri: str, what: str = "output", folder: bool = True) -> None:
    """A local output can be created: it is no file (when it is to be a `folder`), and its nearest existing
    ancestor folder takes a new entry (probed, then removed: nothing is left behind). Object-store outputs are
    not probed (that would need a write)."""
    if folder and fs.is_file(uri):
        raise OutputError(f"{what} {uri} is a file, not a folder")
    if fs.is_remote(uri):
        return
    target = fs.local_path(uri).absolute()
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{what} {uri} cannot be created: {parent} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{target.name}.probe-", dir=parent))
    except OSError as err:
        raise OutputError(f"{what} {uri} cannot be written: {err.strerror} ({parent})") from None


def check_stage_output(uri: str, stage: str, inputs: Iterable[str] = ()) -> None:
    """What `staged_output` will check (a file, an input, a foreign folder), plus that it can be written, and
    that no input is an unfinished or out-of-date stage output (`check_upstream`)."""
    inputs = list(inputs)
    check_output(uri, stage, inputs)
    check_writable(uri)
    check_upstream(inputs)


_DASHBOARD_URL = re.compile(r"https?://[A-Za-z0-9_.\-]+(:\d+)?(/\S*)?")


def check_jobs_address(address: str) -> str:
    """A Ray Jobs address: the dashboard's http(s)://HOST:PORT, or one `ray.init` joins; else ValueError. An
    empty one would make Ray look for whatever cluster it finds on this machine."""
    if isinstance(address, str) and _DASHBOARD_URL.fullmatch(address.strip()):
        return address.strip()
    try:
        return check_ray_address(address)
    except ValueError:
        raise ValueError(f"{address!r} is not a Ray Jobs address: use the dashboard's http://HOST:8265 "
                         "(or ray://HOST:10001, auto)") from None
