"""`rexbert study domain-anneal`: the domain-anneal ablation (see ray_jobs/study.py)."""

from __future__ import annotations

import typer

from infra.commands.common import OVERRIDES, ConfigOption, resolve_config
from infra.commands.demo import DEMO_CONFIG

app = typer.Typer(help="Studies over the pipeline's models: the paper's ablations at any size.", no_args_is_help=True)


@app.command("domain-anneal", context_settings=OVERRIDES)
def domain_anneal(
    ctx: typer.Context,
    output: str | None = typer.Option(
        None, "--output", "-o", help="The run's root (run.output): its tokenizer, corpora and base token set."),
    config: str | None = ConfigOption,
    seeds: str | None = typer.Option(None, "--seeds", help="Comma-separated seeds (study.domain_anneal.seeds)."),
    from_hf: str | None = typer.Option(
        None, "--from-hf", help="A transformers ModernBERT checkpoint (folder or hub name): adds its anneal arm."),
) -> None:
    """From one base (general-phase) checkpoint, anneal on e-commerce text and on general text with equal token
    budgets, beside a compute-matched continuation of the general phase, for every seed; score each model on
    held-out e-commerce and general MLM and the downstream tasks; write a table with paired tests and plots
    under <run.output>/study/domain-anneal/results. Default config: the demo's (infra/configs/demo.yaml); the
    run root needs the demo's data stages (or `rexbert tokenize`). Extra options: --section.key=value overrides."""
    from ray_jobs.study import run_study, study_dir

    seed_list = [int(s) for s in seeds.split(",")] if seeds else None
    cfg = resolve_config(ctx, config or DEMO_CONFIG, **{"run.output": output, "study.domain_anneal.seeds": seed_list,
                                                          "study.domain_anneal.init_from_hf": from_hf})
    results = run_study(cfg)
    typer.echo(f"study: {len(results['arms'])} arms x {len(results['seeds'])} seeds in {results['seconds']:.0f}s")
    for line in results["verdict"]:
        typer.echo(f"  {line}")
    typer.echo(f"results: {study_dir(cfg)}/results/results.md (table, paired tests), arms.png, loss.png")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="study")
