"""`rexbert report`: build the HTML report over every stage of a run root (see infra/report.py)."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    root: Path = typer.Argument(Path("demo-output"), help="Run root holding the stage folders."),
) -> None:
    """Write ROOT/report/index.html: stage accounting, training curves, evaluation tables, stage plots."""
    from infra.report import build_report

    try:
        summary = build_report(root)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{len(summary['stages'])} stage manifests, counts add up: {summary['all_counts_add_up']}")
    typer.echo(f"report: {root / 'report' / 'index.html'}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
