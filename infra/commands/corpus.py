"""`rexbert corpus`: train the e-commerce classifier, build a corpus, or run one curation stage alone."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from infra.commands.common import (
    OVERRIDES,
    ConfigOption,
    check_inputs,
    check_stage_output,
    check_writable,
    resolve_config,
)
from infra.core import fs
from infra.core.config import RexbertConfig

app = typer.Typer(help="Curate an e-commerce corpus on Spark: extract, classify, filter, deduplicate.",
                  no_args_is_help=True)
INPUT = typer.Option(..., "--input", "-i", help="Input path(s): WARC(.gz), HTML folders, JSONL or Parquet.")
OUTPUT = typer.Option(..., "--output", "-o", help="Output folder (local, s3:// or gs://).")
CLASSIFIER = typer.Option(None, "--classifier", help="fastText e-commerce model (.bin).")


@app.command("train-classifier")
def train_classifier_cmd(
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (.bin)."),
    labeled_pages: Path | None = typer.Option(None, "--labeled-pages", help="Folder: labels.csv + html/ID.html.gz."),
    labeled_jsonl: Path | None = typer.Option(None, "--labeled-jsonl", help='{"text", "label"} lines.'),
    listing: str = typer.Option("exclude", help="Mixed 'listing' pages: exclude, positive or negative."),
    test_fraction: float = typer.Option(0.25, help="Share of domains held out for precision / recall."),
    seed: int = typer.Option(0, help="Split and training seed."),
) -> None:
    """Train on labelled pages and/or JSONL; print held-out precision and recall."""
    from spark_jobs.train_classifier_job import format_metrics, train_from_sources

    if labeled_pages is None and labeled_jsonl is None:
        raise typer.BadParameter("give --labeled-pages DIR and/or --labeled-jsonl FILE")
    check_inputs([labeled_pages, labeled_jsonl])
    check_writable(str(output), folder=False)
    metrics = train_from_sources(output, labeled_pages, labeled_jsonl, listing, test_fraction, seed)
    typer.echo(format_metrics(metrics))
    typer.echo(f"model: {output}")


@app.command("build", context_settings=OVERRIDES)
def build_cmd(
    ctx: typer.Context,
    input: list[str] = INPUT,
    output: str = OUTPUT,
    classifier: str | None = CLASSIFIER,
    config: str | None = ConfigOption,
) -> None:
    """Every stage: extracted/ filtered/ deduped/ corpus/, manifests, and report/index.html."""
    from spark_jobs.build_job import build_corpus
    from spark_jobs.filter_job import resolve_classifier

    cfg = resolve_config(ctx, config)
    # Before Spark starts and extraction runs: the inputs, the output, and the model the filter stage needs.
    check_inputs(input)
    check_writable(output)
    resolve_classifier(cfg.corpus, classifier)
    manifest = build_corpus(input, output, cfg, classifier)
    for step in manifest["funnel"]:
        typer.echo(f"{step['step']:>10}: {step['documents']}")
    typer.echo(f"manifest: {fs.join(output, 'manifest.json')}  report: {manifest.get('report')}")


def _stage(cfg: RexbertConfig, stage: str, inputs: list[str], output: str, run) -> None:
    """One Spark stage alone (`spark_jobs.session.run_stage_job`): session, stage, resolved config. Its inputs
    and output are checked first, before the Spark session starts."""
    from spark_jobs.session import run_stage_job

    check_inputs(inputs)
    check_stage_output(output, stage, inputs)
    manifest = run_stage_job("rexbert-corpus", cfg, output, run)
    typer.echo(json.dumps(manifest["counts"], indent=1))


@app.command("extract", context_settings=OVERRIDES)
def extract_cmd(ctx: typer.Context, input: list[str] = INPUT, output: str = OUTPUT,
                config: str | None = ConfigOption) -> None:
    """Extract text and product data from WARC / HTML / JSONL / Parquet into extracted/ Parquet."""
    from spark_jobs.extract_job import run_extract

    cfg = resolve_config(ctx, config)
    _stage(cfg, "extract", input, output, lambda spark: run_extract(spark, input, output, cfg.corpus))


@app.command("filter", context_settings=OVERRIDES)
def filter_cmd(ctx: typer.Context, input: str = typer.Option(..., "--input", "-i", help="extracted/ folder."),
               output: str = OUTPUT, classifier: str | None = CLASSIFIER,
               config: str | None = ConfigOption) -> None:
    """Score, categorise and quality-filter extracted/ into filtered/ (every row, with filter_reason)."""
    from spark_jobs.filter_job import resolve_classifier, run_filter

    cfg = resolve_config(ctx, config)
    resolve_classifier(cfg.corpus, classifier)  # the model the stage needs is there, before Spark starts
    _stage(cfg, "filter", [input], output, lambda spark: run_filter(spark, input, output, cfg.corpus, classifier))


@app.command("dedup", context_settings=OVERRIDES)
def dedup_cmd(ctx: typer.Context, input: list[str] = INPUT, output: str = OUTPUT,
              config: str | None = ConfigOption) -> None:
    """MinHash near-duplicate removal over any JSONL / Parquet of documents with text and url."""
    from spark_jobs.dedup_job import run_dedup

    cfg = resolve_config(ctx, config)
    _stage(cfg, "dedup", input, output, lambda spark: run_dedup(spark, input, output, cfg.corpus))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="corpus")
