"""`rexbert pretrain`: the three pretraining phases on Ray Train (FSDP2), and `pretrain export`."""

from __future__ import annotations

import json

import click
import typer
from typer.core import TyperGroup

from infra.commands.common import OVERRIDES, ConfigOption, check_inputs, check_writable, resolve_config


class _OverridesGroup(TyperGroup):
    """A group whose callback also takes `--section.key=value` overrides: an argument that starts with
    `--` is an override for the callback, never the name of a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        if ctx._protected_args and ctx._protected_args[0].startswith("--"):
            ctx.args = ctx._protected_args + ctx.args
            ctx._protected_args = []
        return rest


app = typer.Typer(cls=_OverridesGroup, invoke_without_command=True, context_settings=OVERRIDES,
                  help="Pretrain ModernBERT-style encoders (Ray Train + FSDP2) in the paper's three phases.")


@app.callback(invoke_without_command=True)
def pretrain(
    ctx: typer.Context,
    config: str | None = ConfigOption,
    phase: str | None = typer.Option(None, "--phase", help="One phase (general, context, decay); default: all."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in the run folder."),
    workers: int | None = typer.Option(None, "--workers", "-n", help="Ray Train workers (default pretrain.workers)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: ray.address or local)."),
    local: bool = typer.Option(False, "--local", help="One plain process without Ray or FSDP (debugging)."),
) -> None:
    """Train phase by phase; each starts from the previous phase's final checkpoint. Extra options:
    --section.key=value config overrides (e.g. --pretrain.model.preset=mini)."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = resolve_config(ctx, config, **{"ray.address": address})  # checked with the config, before Ray starts
    phases = [phase] if phase else None
    if local:
        from training.trainer import run_local

        results = run_local(cfg, phases, resume=resume)
    elif phase:
        from ray_jobs.pretrain import run_phase

        results = {phase: run_phase(cfg, phase, resume=resume, workers=workers)}
    else:
        from ray_jobs.pretrain import run_all_phases

        results = run_all_phases(cfg, resume=resume, workers=workers)
    for name, summary in results.items():
        typer.echo(f"{name}: {summary['steps']} steps, final loss {summary['final_loss']:.4f}, "
                   f"{summary['tokens_per_s'] or 0:,.0f} tokens/s (job), export {summary.get('export')}")


@app.command("export")
def export(
    run_dir: str = typer.Argument(..., help="Run folder (or one phase folder) with DCP checkpoints."),
    out_dir: str = typer.Argument(..., help="Folder for config.json, model.safetensors and the tokenizer."),
    phase: str | None = typer.Option(None, "--phase", help="Phase to export (default: newest checkpoint)."),
) -> None:
    """Export the latest checkpoint as a transformers ModernBertForMaskedLM folder."""
    from training.trainer import export_checkpoint

    check_inputs([run_dir], what="run folder")
    check_writable(out_dir)
    out = export_checkpoint(run_dir, out_dir, phase)
    typer.echo(json.dumps({"export": str(out)}))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="pretrain")
