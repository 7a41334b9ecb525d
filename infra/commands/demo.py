"""`rexbert demo`: run the whole pipeline at tiny scale on generated data (see infra/demo.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from infra.commands.common import OVERRIDES, ConfigOption, resolve_config

DEMO_CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "demo.yaml")


def demo(
    ctx: typer.Context,
    output: str | None = typer.Option(
        None, "--output", "-o", help="Root folder of all stage outputs (default: run.output, demo-output)."
    ),
    config: str | None = ConfigOption,
    docs: int | None = typer.Option(None, "--docs", help="Synthetic pages to generate (demo.docs)."),
) -> None:
    """Run sample data -> corpus (Spark) -> tokenize (Ray Data) -> 3 pretraining phases (Ray Train) -> evaluate
    (Ray Tune) -> report, at tiny scale. Extra options: --section.key=value config overrides."""
    from infra.demo import format_summary, run_demo

    cfg = resolve_config(ctx, config or DEMO_CONFIG, **{"run.output": output, "demo.docs": docs})
    results = run_demo(cfg, cfg.run.output, echo=typer.echo)
    typer.echo(format_summary(results, cfg.run.output))


def register(app: typer.Typer) -> None:
    app.command("demo", context_settings=OVERRIDES)(demo)
