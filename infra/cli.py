"""The `rexbert` command: one Typer app, one subcommand group per platform concern.

Each group lives in `infra/commands/<name>.py` and exposes `register(app)`; commands stay thin and
call one job function. Config errors and bad options exit non-zero with a message naming the field.
"""

from __future__ import annotations

import importlib
import sys

import typer

from infra.core.config import ConfigError

app = typer.Typer(
    name="rexbert",
    help="Build e-commerce encoders end to end: curate (Spark), tokenize (Ray Data), pretrain (Ray Train), "
    "evaluate (Ray Tune).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Order here is the order of `rexbert --help`: the pipeline first, operations after.
COMMAND_MODULES = [
    "demo",
    "sample_data",
    "corpus",
    "tokenize",
    "pretrain",
    "evaluate",
    "report",
    "submit",
    "jobs",
    "dashboard",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"infra.commands.{_name}").register(app)


def main() -> None:
    """Console entry point: turn config errors into a one-screen message and exit code 2."""
    try:
        app()
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
