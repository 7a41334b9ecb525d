"""Shared pieces of the command modules: config loading from options plus `--section.key=value` overrides."""

from __future__ import annotations

from pathlib import Path

import typer

from infra.core.config import RexbertConfig, load_config

# Commands that accept config overrides pass this as `context_settings`; unknown non-dotted options
# still fail (parse_overrides rejects them with a message).
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}

ConfigOption = typer.Option(None, "--config", "-c", help="Run config YAML (default: embedded local config).")


def resolve_config(ctx: typer.Context, config: Path | None, **explicit: object) -> RexbertConfig:
    """Embedded defaults <- YAML file <- `--section.key=value` extras <- explicit typed options.

    `explicit` maps dotted keys (e.g. "run.output") to option values; None values are ignored.
    """
    overrides = list(ctx.args)
    for key, value in explicit.items():
        if value is not None:
            overrides.append(f"--{key}={value}")
    return load_config(config, overrides)
