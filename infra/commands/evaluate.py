"""`rexbert evaluate`: compare encoder checkpoints on e-commerce tasks with Ray Tune sweeps."""

from __future__ import annotations

import typer

from infra.commands.common import OVERRIDES, ConfigOption, check_inputs, check_stage_output, resolve_config
from infra.core import fs


def evaluate(
    ctx: typer.Context,
    model: list[str] = typer.Option(..., "--model", "-m", help="HF encoder folder (repeat to compare models)."),
    task: list[str] = typer.Option(
        None, "--task", "-t",
        help="NAME or NAME:PATH (repeatable): product-matching, page-type, attribute-tagging, similarity, "
        "fill-mask. Default: evaluate.tasks from the config.",
    ),
    output: str = typer.Option(
        ..., "--output", "-o", help="Results folder (path or URI): results.json, results.md, report.html."
    ),
    config: str | None = ConfigOption,
    address: str | None = typer.Option(None, "--address", help="Ray cluster address ('auto', 'ray://head:10001')."),
) -> None:
    """Fine-tune and score each model on each task; best config on validation, test mean ± std over seeds.

    Config overrides: --evaluate.seeds='[0,1,2]' --evaluate.asha=true --evaluate.gpus_per_trial=1 ...
    """
    from ray_jobs.evaluate import run_evaluation
    from training.evaluation import parse_task_spec
    from training.evaluation.report import STAGE, baseline_rows, comparison_rows, markdown_table

    cfg = resolve_config(ctx, config, **{"ray.address": address})
    # Before Ray starts (bad model folders and task data are refused by run_evaluation, also before Ray).
    check_inputs([parse_task_spec(spec)[1] for spec in task or []], what="task data")
    check_stage_output(output, STAGE, list(model))
    results = run_evaluation(list(model), list(task or []), output, cfg)
    header, rows = comparison_rows(results)
    typer.echo(markdown_table(header, rows + baseline_rows(results)))
    typer.echo(f"report: {fs.join(output, 'report.html')}")


def register(app: typer.Typer) -> None:
    app.command("evaluate", context_settings=OVERRIDES)(evaluate)
