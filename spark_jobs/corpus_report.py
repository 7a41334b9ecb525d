"""Stats report of a corpus build: PNG plots and one HTML page at `OUTPUT/report/index.html`.

Like the paper's domain characterisation: category distribution of the corpus, e-commerce score
histogram (kept vs dropped), quality signal histograms, and the filter funnel
(input -> extracted -> filtered by reason -> deduped -> corpus). Aggregation runs in Spark; only
binned counts (and at most `SAMPLE_ROWS` rows of signals) reach the driver. The page is drawn in a local
folder and, for a build on an object store, copied beside the stage folders through infra.core.fs.
"""

from __future__ import annotations

import html
import json
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from infra.core import fs  # noqa: E402
from spark_jobs.output import read_parquet_dir  # noqa: E402

SAMPLE_ROWS = 200_000
SIGNALS = ("word_count", "mean_word_length", "symbol_ratio", "line_punct_ratio", "dup_line_ratio", "quality_score")


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def plot_funnel(manifest: dict, out: Path) -> str:
    steps = manifest["funnel"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh([s["step"] for s in steps][::-1], [s["documents"] for s in steps][::-1], color="#4c72b0")
    for i, s in enumerate(steps[::-1]):
        ax.text(s["documents"], i, f" {s['documents']}", va="center")
    ax.set_xlabel("documents")
    ax.set_title("filter funnel")
    return _save(fig, out / "funnel.png")


def plot_reasons(manifest: dict, out: Path) -> str:
    reasons = {**manifest["counts"]["filtered"], **manifest["counts"]["errors"]}
    if manifest["counts"]["duplicates"]:
        reasons["dedup:duplicate"] = manifest["counts"]["duplicates"]
    items = sorted(reasons.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * len(items) + 1)))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#dd8452")
    ax.set_xlabel("documents removed")
    ax.set_title("removed by stage:reason")
    return _save(fig, out / "reasons.png")


def plot_categories(spark: SparkSession, corpus_dir: str, out: Path) -> tuple[str, dict[str, int]]:
    rows = read_parquet_dir(spark, corpus_dir).groupBy("category").count().collect()
    counts = dict(sorted(((r["category"] or "none"), r["count"]) for r in rows))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(list(counts), list(counts.values()), color="#55a868")
    ax.set_ylabel("documents")
    ax.set_title("corpus category distribution")
    ax.tick_params(axis="x", rotation=30)
    return _save(fig, out / "categories.png"), counts


def plot_scores_and_signals(spark: SparkSession, filtered_dir: str, out: Path) -> list[str]:
    df = read_parquet_dir(spark, filtered_dir).select("ecom_score", "filter_reason", *SIGNALS)
    total = df.count()
    if total > SAMPLE_ROWS:
        df = df.sample(fraction=SAMPLE_ROWS / total, seed=0)
    pdf = df.withColumn("kept", F.col("filter_reason").isNull()).drop("filter_reason").toPandas()
    names = []
    fig, ax = plt.subplots(figsize=(7, 3.5))
    scores = pdf.dropna(subset=["ecom_score"])
    for kept, label in ((True, "kept"), (False, "dropped")):
        ax.hist(scores[scores.kept == kept].ecom_score, bins=20, range=(0, 1), alpha=0.6, label=label)
    ax.set_xlabel("ecom_score")
    ax.set_ylabel("documents")
    ax.set_title("e-commerce score")
    ax.legend()
    names.append(_save(fig, out / "ecom_score.png"))
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.5))
    for ax, column in zip(axes.flat, SIGNALS, strict=True):
        for kept, label in ((True, "kept"), (False, "dropped")):
            values = pdf[pdf.kept == kept][column].dropna()
            if column == "word_count":
                values = values.clip(upper=values.quantile(0.99) if len(values) else 0)
            ax.hist(values, bins=20, alpha=0.6, label=label)
        ax.set_title(column, fontsize=9)
    axes.flat[0].legend(fontsize=8)
    names.append(_save(fig, out / "quality_signals.png"))
    return names


def write_report(spark: SparkSession, root: str | Path, manifest: dict[str, Any]) -> str:
    """Write `root/report/` (PNGs + index.html) from a build's stage folders and top-level manifest; returns
    the page's path or URI."""
    root = str(root)
    if not fs.is_remote(root):
        out = fs.local_path(root) / "report"
        _draw_report(spark, root, manifest, out)
        return str(out / "index.html")
    with tempfile.TemporaryDirectory(prefix="rexbert-report-") as tmp:
        _draw_report(spark, root, manifest, Path(tmp))
        fs.copy_dir(tmp, fs.join(root, "report"))
    return fs.join(root, "report", "index.html")


def _draw_report(spark: SparkSession, root: str, manifest: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    images = [plot_funnel(manifest, out), plot_reasons(manifest, out)]
    category_png, categories = plot_categories(spark, fs.join(root, "corpus"), out)
    images.append(category_png)
    images += plot_scores_and_signals(spark, fs.join(root, "filtered"), out)
    funnel_rows = "".join(
        f"<tr><td>{html.escape(s['step'])}</td><td>{s['documents']}</td></tr>" for s in manifest["funnel"]
    )
    counts = manifest["counts"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>corpus report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}} td,th{{padding:2px 10px}}</style></head>
<body><h1>Corpus report</h1>
<p>inputs: {html.escape(", ".join(manifest.get("inputs", [])))}<br>
e-commerce filter: {manifest.get("ecommerce_filter")} &middot;
classifier: {html.escape(str(manifest.get("classifier")))}
&middot; {manifest.get("docs_per_s")} documents/s</p>
<h2>Funnel</h2><table><tr><th>step</th><th>documents</th></tr>{funnel_rows}</table>
<p>input {counts["input"]} = kept {counts["kept"]} + filtered {sum(counts["filtered"].values())}
+ duplicates {counts["duplicates"]} + errors {sum(counts["errors"].values())}</p>
<h2>Categories</h2><pre>{html.escape(json.dumps(categories, indent=1))}</pre>
{"".join(f'<p><img src="{name}" alt="{name}"></p>' for name in images)}
<h2>Counts by stage</h2><pre>{html.escape(json.dumps(manifest.get("stages", {}), indent=1))}</pre>
</body></html>"""
    (out / "index.html").write_text(page)
    (out / "summary.json").write_text(json.dumps({"categories": categories, "funnel": manifest["funnel"]}, indent=1))
