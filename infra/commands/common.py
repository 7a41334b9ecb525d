"""Shared pieces of the command modules: config loading from options plus `--section.key=value` overrides."""

from __future__ import annotations

import typer

from infra.core.config import ConfigError, RexbertConfig, load_config, parse_overrides

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
