"""`rexbert report`: not built yet (see the open issues)."""

from __future__ import annotations

import typer

app = typer.Typer(help="(report) not built yet.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="report")
