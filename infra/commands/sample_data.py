"""`rexbert sample-data`: write a synthetic crawl (WARC files plus ground truth) for tests, demos and benches."""

from __future__ import annotations

from pathlib import Path

import typer

from infra.commands.common import check_writable
from infra.sample_crawl.generate import GROUND_TRUTH_NAME, generate_sample_crawl


def _summary(manifest: dict, out: Path) -> str:
    labels = ", ".join(f"{k} {v}" for k, v in manifest["by_label"].items())
    defects = sum(manifest["counts"]["errors"].values())
    dups = sum(v for k, v in manifest["by_dup_kind"].items() if k != "None")
    return (
        f"wrote {manifest['counts']['input']} pages ({labels}; {dups} duplicates in {manifest['dup_groups']} groups, "
        f"{defects} malformed records) in {len(manifest['files'])} WARC files to {out}"
    )


def register(app: typer.Typer) -> None:
    @app.command("sample-data")
    def sample_data(
        docs: int = typer.Option(1000, "--docs", min=1, help="Number of pages to generate."),
        seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives byte-identical files."),
        out: Path = typer.Option(Path("sample-data"), "--out", help="Output folder."),
        docs_per_file: int = typer.Option(500, "--docs-per-file", min=1, help="Pages per WARC file."),
        ecommerce_share: float = typer.Option(
            0.5, "--ecommerce-share", min=0.0, max=1.0, help="Share of non-junk pages that are e-commerce."
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        """Write a realistic synthetic crawl as WARC.gz with a ground-truth file (labels, languages,
        duplicate groups, defects)."""
        check_writable(str(out))
        manifest = generate_sample_crawl(
            out, docs=docs, seed=seed, docs_per_file=docs_per_file, progress=progress, ecommerce_share=ecommerce_share
        )
        typer.echo(_summary(manifest, out))
        typer.echo(f"ground truth: {out / GROUND_TRUTH_NAME}")
