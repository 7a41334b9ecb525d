"""`rexbert report`: build the HTML report over every stage of a run root (see infra/report.py)."""

from __future__ import annotations

import typer


def report(
    root: str = typer.Argument("demo-output", help="Run root holding the stage folders (a path or URI)."),
) -> None:
    """Write ROOT/report/index.html (one self-contained, styled page) and report.json: every stage's manifest
    checked, the corpus funnel and yield per page type, dedup clusters, tokens per source, loss and throughput
    per phase, the evaluation table, links to every output and the dashboard commands."""
    from infra.core import fs
    from infra.report import build_report

    summary = build_report(root)  # a missing root: one line and exit code 2 (infra.cli)
    failed = [row["folder"] for row in summary["stages"] if row["problem"]]
    typer.echo(f"{len(summary['stages'])} stage manifests, {len(failed)} failed the check"
               + (f": {', '.join(failed)}" if failed else ""))
    typer.echo(f"report: {fs.join(root, 'report', 'index.html')}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
