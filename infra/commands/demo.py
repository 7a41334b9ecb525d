"""`rexbert demo`: run the whole pipeline at tiny scale on generated data (see infra/demo.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from infra.commands.common import OVERRIDES, ConfigOption, resolve_config

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def demo(
    ctx: typer.Context,
    output: Path = typer.Option(Path("demo-output"), "--output", "-o", help="Root folder of all stage outputs."),
    config: Path | None = ConfigOption,
    docs: int | None = typer.Option(None, "--docs", help="Synthetic pages to generate (demo.docs)."),
) -> None:
    """Run sample data -> corpus (Spark) -> tokenize (Ray Data) -> 3 pretraining phases (Ray Train) -> evaluate
    (Ray Tune) -> report, at tiny scale. Extra options: --section.key=value config overrides."""
    from infra.demo import format_summary, run_demo

    cfg = resolve_config(ctx, config or DEMO_CONFIG, **{"run.output": str(output), "demo.docs": docs})
    results = run_demo(cfg, Path(cfg.run.output), echo=typer.echo)
    typer.echo(format_summary(results))
    typer.echo(f"outputs under {Path(cfg.run.output).resolve()}")


def register(app: typer.Typer) -> None:
    app.command("demo", context_settings=OVERRIDES)(demo)
