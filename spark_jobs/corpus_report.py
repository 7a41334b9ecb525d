"""Stats report of a corpus build: PNG plots and one HTML page at `OUTPUT/report/index.html`.

Like the paper's domain characterisation: category distribution of the corpus, e-commerce score
histogram (kept vs dropped), quality signal histograms, the filter funnel
(input -> extracted -> filtered by reason -> deduped -> corpus), and the yield per page type: how many
pages of each type entered and where each one left (reader error, extract, language, classifier, which
quality rule, dedup) or that it reached the corpus (`page_yield`). Aggregation runs in Spark; only
binned counts (and at most `SAMPLE_ROWS` rows of signals) reach the driver. The page is drawn in a local
folder and, for a build on an object store, copied beside the stage folders through infra.core.fs.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from infra.core import fs  # noqa: E402
from spark_jobs.extract_job import DROPPED_DIR, ERRORS_DIR  # noqa: E402
from spark_jobs.output import read_parquet_dir  # noqa: E402

SAMPLE_ROWS = 200_000
LABELS_NAME = "labels.csv"  # a wcxb-shaped folder: labels.csv (file_id, page_type) beside html/ID.html.gz
GROUND_TRUTH_NAME = "ground-truth.jsonl"  # a generated crawl's (infra.sample_crawl): record_id -> page_type
KEPT = "corpus"
# Exit groups of the yield table, in pipeline order; an exit is "stage:reason".
EXIT_GROUPS = ("reader error", "pre-classifier", "extract", "empty text", "language", "classifier", "quality rule",
               "filter error", "dedup", KEPT)
_LANGUAGE = {"filter:wrong_language", "filter:low_lang_score"}
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


def exit_group(exit: str) -> str:
    """The yield table's column for one exit ("filter:gopher_short_doc" -> "quality rule")."""
    if exit == KEPT:
        return KEPT
    stage, _, reason = exit.partition(":")
    if stage == "extract":
        if reason == "no_commerce_evidence":  # corpus.extract.prefilter, before extraction
            return "pre-classifier"
        return "reader error" if reason.startswith("error_") else "extract"
    if stage == "dedup":
        return "dedup"
    if exit in _LANGUAGE:
        return "language"
    if reason == "empty_text":
        return "empty text"
    if reason == "not_ecommerce":
        return "classifier"
    return "filter error" if reason.startswith("error_") else "quality rule"


def _rows_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def page_type_labels(inputs: list[str]) -> tuple[str, dict[str, str], Counter]:
    """(where the page types come from, key -> page type, pages per type) for a build's inputs: a generated
    crawl's ground truth (keyed by WARC record id, and by file@offset), else wcxb-shaped `labels.csv` (keyed by
    file id), else nothing (the extractor's own page kind is used). Both files are one row per page, read
    once on the driver."""
    folders = []
    for given in inputs:
        folder = given if fs.is_dir(given) else fs.parent_of(given)
        folders += [folder, fs.parent_of(folder)]
    for folder in dict.fromkeys(folders):
        truth = fs.join(folder, GROUND_TRUTH_NAME)
        if fs.is_file(truth):
            rows = _rows_of(fs.read_text(truth))
            types = {r["record_id"]: r.get("page_type") or "unknown" for r in rows if r.get("record_id")}
            # A record the reader could not parse has no id: its file and offset still name it.
            pages = Counter(types.values())
            types.update({f"{fs.name_of(r['file'])}@{r['offset']}": r.get("page_type") or "unknown"
                          for r in rows if r.get("file") and r.get("offset") is not None})
            return "ground truth", types, pages
    for folder in dict.fromkeys(folders):
        labels = fs.join(folder, LABELS_NAME)
        if fs.is_file(labels):
            import csv
            import io

            rows = csv.DictReader(io.StringIO(fs.read_text(labels), newline=""))
            types = {r["file_id"]: r["page_type"] for r in rows if r.get("file_id")}
            return "wcxb labels", types, Counter(types.values())
    return "extractor page kind", {}, Counter()


def _file_key(column: str) -> F.Column:
    """An HTML file's id from its record id (the file's URI): ".../html/0042.html.gz" -> "0042"."""
    return F.regexp_extract(F.col(column), r"([^/]+?)(\.html?)?(\.gz)?$", 1)


def _typed(spark: SparkSession, df: DataFrame, source: str, labels: dict[str, str], fallback: F.Column) -> DataFrame:
    """`df` with a page_type column: its label by record id (or file id), else by file@offset (error rows),
    else "not labelled"; without labels, `fallback` (the extractor's page kind) or "unknown"."""
    if not labels:
        return df.withColumn("page_type", F.coalesce(fallback, F.lit("unknown")))
    key = F.col("record_id") if source == "ground truth" else _file_key("record_id")
    types = spark.createDataFrame(list(labels.items()), "_key string, _type string")
    joined = df.withColumn("_key", key).join(F.broadcast(types), "_key", "left")
    if "offset" in df.columns:
        at = F.concat(F.regexp_extract("file", r"[^/]+$", 0), F.lit("@"), F.col("offset").cast("string"))
        by_offset = types.select(F.col("_key").alias("_at"), F.col("_type").alias("_type_at"))
        joined = joined.withColumn("_at", at).join(F.broadcast(by_offset), "_at", "left")
        joined = joined.withColumn("_type", F.coalesce("_type", "_type_at")).drop("_at", "_type_at")
    return joined.withColumn("page_type", F.coalesce("_type", F.lit("not labelled"))).drop("_key", "_type")


def page_yield(spark: SparkSession, root: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Per page type: pages entered, where each left (`stage:reason`) and how many reached the corpus.

    Rows come from the stage folders: `extracted/_errors/` (reader errors), `extracted/_dropped/` (records
    extract dropped: non-HTML, too short, no sign of selling), `filtered/` (every extracted page with its
    filter_reason), `deduped/` (is_duplicate; a kept page missing there had no words to hash). A build from
    before `_dropped/` was written has its extract drops counted from its manifest instead: with labels, per
    page type as the labelled pages that left no row; without, as page type "unknown". `check`
    says whether every count agrees with the build's manifest (input, kept, each reason)."""
    source, labels, pages = page_type_labels(list(manifest.get("inputs", [])))
    filtered = read_parquet_dir(spark, fs.join(root, "filtered"))
    kind = F.col("page_kind") if "page_kind" in filtered.columns else F.lit(None)
    deduped = read_parquet_dir(spark, fs.join(root, "deduped")).select(
        "doc_id", F.col("is_duplicate").alias("_dup"), F.lit(True).alias("_in_dedup"))
    exits = F.when(F.col("filter_reason").isNotNull(), F.concat(F.lit("filter:"), "filter_reason")).when(
        F.col("_in_dedup").isNull(), F.lit("dedup:no_words")).when(F.col("_dup"), F.lit("dedup:duplicate")).otherwise(
        F.lit(KEPT))
    docs = filtered.select("doc_id", "record_id", "filter_reason", kind.alias("_kind")).join(deduped, "doc_id", "left")
    docs = _typed(spark, docs.withColumn("exit", exits), source, labels, F.col("_kind")).select("page_type", "exit")
    frames, dropped_rows = [docs], False
    for folder, column, prefix in ((ERRORS_DIR, "kind", "extract:error_"), (DROPPED_DIR, "reason", "extract:")):
        try:
            rows = read_parquet_dir(spark, fs.join(root, "extracted", folder))
        except FileNotFoundError:  # no Parquet part (a build from before `_dropped/` was written)
            continue
        rows = rows.select("record_id", "file", "offset", F.concat(F.lit(prefix), column).alias("exit"))
        frames.append(_typed(spark, rows, source, labels, F.lit(None)).select("page_type", "exit"))
        dropped_rows = dropped_rows or folder == DROPPED_DIR
    counts: dict[str, Counter] = {}
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    for r in rows.groupBy("page_type", "exit").count().collect():
        counts.setdefault(r["page_type"], Counter())[r["exit"]] = r["count"]
    if not dropped_rows:
        extract_drops = manifest.get("stages", {}).get("extracted", {}).get("filtered", {})
        _add_extract_drops(counts, extract_drops, pages)
    table = []
    for page_type in sorted(counts):
        exits = counts[page_type]
        groups = Counter()
        for exit, n in exits.items():
            groups[exit_group(exit)] += n
        table.append({"page_type": page_type, "entered": sum(exits.values()), "kept": exits.get(KEPT, 0),
                      "groups": {g: groups[g] for g in EXIT_GROUPS if groups[g]}, "exits": dict(exits.most_common())})
    return {"page_types_from": source, "rows": table, "check": _check_yield(table, manifest)}


def _add_extract_drops(counts: dict[str, Counter], drops: dict[str, int], pages: Counter) -> None:
    """The extract stage's row-less drops: per page type when the labelled pages without a row add up to
    exactly them, else all as "unknown" with their reasons."""
    total = sum(drops.values())
    if not total:
        return
    if pages:
        seen = Counter()
        for page_type, exits in counts.items():
            seen[page_type] = sum(exits.values())
        missing = Counter(pages)
        missing.subtract(seen)
        missing = Counter({t: n for t, n in missing.items() if n > 0})
        if sum(missing.values()) == total:
            exit = "extract:" + "/".join(sorted(drops))
            for page_type, n in missing.items():
                counts.setdefault(page_type, Counter())[exit] += n
            return
    for reason, n in drops.items():
        counts.setdefault("unknown", Counter())[f"extract:{reason}"] += n


def _check_yield(table: list[dict], manifest: dict[str, Any]) -> str:
    """"ok", or what does not add up against the build's manifest."""
    counts = manifest.get("counts", {})
    entered, kept = sum(r["entered"] for r in table), sum(r["kept"] for r in table)
    problems = []
    if entered != counts.get("input"):
        problems.append(f"entered {entered} != input {counts.get('input')}")
    if kept != counts.get("kept"):
        problems.append(f"kept {kept} != corpus {counts.get('kept')}")
    by_exit = Counter()
    for r in table:
        by_exit.update(r["exits"])
    filtered = manifest.get("stages", {}).get("filtered", {})
    expected = Counter({f"filter:{k}": v for k, v in filtered.get("filtered", {}).items()})
    expected.update({f"filter:error_{k}": v for k, v in filtered.get("errors", {}).items()})
    actual = Counter({k: v for k, v in by_exit.items() if k.startswith("filter:")})
    if actual != expected:
        problems.append(f"filter reasons {dict(actual)} != manifest {dict(expected)}")
    if by_exit["dedup:duplicate"] != counts.get("duplicates", 0):
        problems.append(f"duplicates {by_exit['dedup:duplicate']} != manifest {counts.get('duplicates', 0)}")
    return "; ".join(problems) or "ok"


def plot_yield(result: dict[str, Any], out: Path) -> str:
    """One stacked bar per page type: where its pages left, and the share that reached the corpus."""
    rows = result["rows"][::-1]
    colors = dict(zip(EXIT_GROUPS, ("#8c8c8c", "#17becf", "#bcbd22", "#c7c7c7", "#9467bd", "#1f77b4", "#ff7f0e",
                                     "#d62728", "#e377c2", "#2ca02c"), strict=True))
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.4 * len(rows) + 1.2)))
    left = [0] * len(rows)
    for group in EXIT_GROUPS:
        values = [r["groups"].get(group, 0) for r in rows]
        if any(values):
            ax.barh([r["page_type"] for r in rows], values, left=left, color=colors[group], label=group)
            left = [a + b for a, b in zip(left, values, strict=True)]
    for i, r in enumerate(rows):
        ax.text(r["entered"], i, f" {r['kept']}/{r['entered']}", va="center", fontsize=8)
    ax.set_xlabel("pages")
    ax.set_title(f"where each page left, by page type ({result['page_types_from']})")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, out / "yield.png")


def yield_table_html(result: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(g)}</th>" for g in EXIT_GROUPS)
    body = "".join(
        f"<tr><td>{html.escape(r['page_type'])}</td><td>{r['entered']}</td>"
        + "".join(f"<td>{r['groups'].get(g, 0)}</td>" for g in EXIT_GROUPS)
        + f"<td>{r['kept'] / r['entered']:.1%}</td></tr>"
        for r in result["rows"]
    )
    details = "".join(
        f"<tr><td>{html.escape(r['page_type'])}</td><td>{html.escape(exit)}</td><td>{n}</td></tr>"
        for r in result["rows"] for exit, n in r["exits"].items() if exit != KEPT
    )
    return (f"<h2>Yield per page type</h2><p>page types from: {html.escape(result['page_types_from'])}; "
            f"check against the manifest: {html.escape(result['check'])}</p>"
            f"<table><tr><th>page type</th><th>entered</th>{head}<th>yield</th></tr>{body}</table>"
            f"<h3>Exits by stage:reason</h3><table><tr><th>page type</th><th>exit</th><th>pages</th></tr>"
            f"{details}</table>")


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
    yields = page_yield(spark, root, manifest)
    images.append(plot_yield(yields, out))
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
{yield_table_html(yields)}
<h2>Categories</h2><pre>{html.escape(json.dumps(categories, indent=1))}</pre>
{"".join(f'<p><img src="{name}" alt="{name}"></p>' for name in images)}
<h2>Counts by stage</h2><pre>{html.escape(json.dumps(manifest.get("stages", {}), indent=1))}</pre>
</body></html>"""
    (out / "index.html").write_text(page)
    summary = {"categories": categories, "funnel": manifest["funnel"], "yield": yields}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
