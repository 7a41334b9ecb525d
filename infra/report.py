"""`rexbert report`: one styled HTML page over every stage of a run root, for a person to look at.

It reads what the stages left behind — every `manifest.json` (the corpus build's funnel, dedup's clusters,
pack's tokens per source, each pretraining phase), the sample crawl's ground truth, pretraining
`metrics.jsonl` (loss and throughput), evaluation `results.json`, and the stage plots — and writes
`<root>/report/index.html`, plus `report.json` with the numbers. The page is rendered from
`infra/templates/report.html` (Jinja2, autoescape on) and is self-contained: style inline, plots as
data: URIs. The root may be a local folder or a URI: every read and write goes through `infra.core.fs`.

Every manifest is checked with `infra.core.manifest.check_manifest`, the same check `write_manifest`
makes: the one schema, and input = kept + filtered + duplicates + errors. A manifest that fails (an old
schema, counts that do not add up, unreadable JSON) is a failed row of the report, never a skipped one.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections import Counter
from typing import Any

import matplotlib
from jinja2 import Environment, PackageLoader, StrictUndefined

from infra.core import fs
from infra.core.manifest import MANIFEST_NAME, check_manifest, location

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPORT_DIR = "report"
TEMPLATE = "report.html"
# The pipeline's stages in order, as they name themselves in their manifests' `stage` key (pretraining
# phases as `pretrain.<phase>`).
PIPELINE_STAGES = (
    "sample-data", "extract", "filter", "dedup", "corpus", "build", "train-tokenizer", "pack", "pretrain", "evaluate",
)
MAX_PLOT_BYTES = 2_000_000
# The keys of dedup's manifest notes (`spark_jobs.dedup_job.run_dedup`) the report shows, in order.
DEDUP_KEYS = ("num_perm", "theoretical_threshold", "candidate_edges", "components", "largest_component",
              "cc_rounds", "docs_per_second")


def _relative(uri: str, root: str) -> str:
    return uri[len(root.rstrip("/")) + 1:]


def _is_stage_output(relative: str) -> bool:
    """False for this report's own folder and for the staging / replaced folders of an unfinished write."""
    parts = relative.split("/")
    return parts[0] != REPORT_DIR and not any(".tmp-" in p or ".old-" in p for p in parts)


def check_stage(folder: str, text: str) -> dict[str, Any]:
    """One row of the stage table: the manifest's stage, its counts, and `problem` (None when it passes)."""
    row: dict[str, Any] = {"folder": folder, "stage": None, "input": None, "kept": None, "filtered": None,
                           "duplicates": None, "errors": None, "problem": None}
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        row["problem"] = f"unreadable manifest: {exc}"
        return row
    if not isinstance(manifest, dict):
        row["problem"] = f"not a stage manifest (a JSON {type(manifest).__name__})"
        return row
    row["stage"] = manifest.get("stage") if isinstance(manifest.get("stage"), str) else None
    try:
        stats = check_manifest(manifest, where=folder)
    except (ValueError, TypeError, KeyError, AssertionError) as exc:  # AccountingError is an AssertionError
        row["problem"] = str(exc)
        return row
    row.update(input=stats.input, kept=stats.kept, filtered=sum(stats.filtered.values()),
               duplicates=stats.duplicates, errors=sum(stats.errors.values()))
    return row


def _folder_of(relative: str) -> str:
    return fs.parent_of(relative) if "/" in relative else "."


def read_manifests(root: str, files: list[str]) -> dict[str, dict[str, Any]]:
    """Every stage manifest under the root that parses as a JSON object, by folder (relative to the root)."""
    manifests = {}
    for uri in files:
        if fs.name_of(uri) == MANIFEST_NAME:
            try:
                manifest = json.loads(fs.read_text(uri))
            except json.JSONDecodeError:
                continue  # a failed row of the stage table (check_stage says why)
            if isinstance(manifest, dict):
                manifests[_folder_of(_relative(uri, root))] = manifest
    return manifests


def collect_stages(root: str, files: list[str]) -> list[dict[str, Any]]:
    """A checked row for every stage manifest among the run root's files."""
    rows = []
    for uri in files:
        relative = _relative(uri, root)
        if fs.name_of(uri) == MANIFEST_NAME and _is_stage_output(relative):
            rows.append(check_stage(_folder_of(relative), fs.read_text(uri)))
    return rows


def pipeline_order(stage: str) -> tuple[int, str]:
    """Sort key: a stage's place in the pipeline (`pretrain.general` is a phase of `pretrain`), unknown ones last."""
    base = stage.split(".", 1)[0]
    return (PIPELINE_STAGES.index(base) if base in PIPELINE_STAGES else len(PIPELINE_STAGES), stage)


def pipeline_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per stage (each pretraining phase, `pretrain.<phase>`, its own), in pipeline order.

    A pipeline stage with no manifest under the root says so; a manifest without a `stage` is a line of its
    own, failed.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["stage"] or f"? ({row['folder']})", []).append(row)
    for stage in PIPELINE_STAGES:
        if not any(name == stage or name.startswith(f"{stage}.") for name in groups):
            groups[stage] = []
    lines = []
    for stage in sorted(groups, key=pipeline_order):
        group = groups[stage]
        failed = sum(1 for r in group if r["problem"])
        result = "not in this run" if not group else ("FAILED" if failed else "ok")
        lines.append({"stage": stage, "manifests": len(group), "failed": failed, "result": result})
    return lines


def _read_jsonl(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


# --- plots (PNG bytes) ----------------------------------------------------------------------------------


def _png(fig) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def phase_metrics(root: str, files: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The logged steps of every `metrics.jsonl` (`training.metrics.JsonlSink`), by phase folder."""
    runs = {}
    for uri in (f for f in files if fs.name_of(f) == "metrics.jsonl"):
        rows = [r for r in _read_jsonl(fs.read_text(uri)) if "step" in r]
        if rows:
            runs[fs.parent_of(_relative(uri, root))] = rows
    return runs


def _plot_per_phase(runs: dict[str, list[dict[str, Any]]], key: str, ylabel: str, title: str) -> bytes | None:
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    plotted = 0
    for name, rows in runs.items():
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
        if points:
            ax.plot(*zip(*points, strict=True), label=name, marker="." if len(points) < 30 else None)
            plotted += 1
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def plot_training_curves(root: str, files: list[str]) -> bytes | None:
    """Loss against step for every `metrics.jsonl` of the run, one line per phase, as PNG bytes."""
    return _plot_per_phase(phase_metrics(root, files), "loss", "MLM loss", "Pretraining loss by phase")


def _barh(labels: list[str], values: list[float], title: str, xlabel: str, color: str = "#4c72b0") -> bytes:
    fig, ax = plt.subplots(figsize=(7.5, max(2.2, 0.38 * len(labels) + 1.2)))
    ax.barh(labels[::-1], values[::-1], color=color)
    for i, value in enumerate(values[::-1]):
        ax.text(value, i, f" {value:,.3g}" if isinstance(value, float) else f" {value:,}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.margins(x=0.15)
    return _png(fig)


# --- sections: each a title, a sentence for when it has nothing, and blocks the template draws --------------


def _section(id: str, title: str, note: str, empty: str) -> dict[str, Any]:
    return {"id": id, "title": title, "note": note, "empty": empty, "blocks": []}


def _table(header: list[str], rows: list[list[Any]], caption: str = "", css: list[str] | None = None) -> dict:
    return {"kind": "table", "caption": caption, "header": header,
            "rows": [{"cells": row, "css": (css[i] if css else "")} for i, row in enumerate(rows)]}


def _image(png: bytes, caption: str) -> dict[str, Any]:
    return {"kind": "image", "src": _data_uri(png), "caption": caption}


def _text(kind: str, text: str) -> dict[str, Any]:
    return {"kind": kind, "text": text}


def _by_stage(manifests: dict[str, dict], stage: str) -> dict[str, dict]:
    return {folder: m for folder, m in sorted(manifests.items()) if m.get("stage") == stage}


def pipeline_section(rows: list[dict[str, Any]], pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    section = _section("pipeline", "Pipeline stages", "Every stage manifest, checked: one schema, and "
                       "input = kept + filtered + duplicates + errors.", "no stage manifest under this root")
    if not rows:
        return section
    section["blocks"].append(_table(
        ["stage", "manifests", "failed", "result"],
        [[p["stage"], p["manifests"], p["failed"], p["result"]] for p in pipeline],
        "By stage", ["failed" if p["failed"] else "" for p in pipeline]))
    keys = ["folder", "stage", "input", "kept", "filtered", "duplicates", "errors"]
    section["blocks"].append(_table(
        keys + ["check"], [[r[k] for k in keys] + [r["problem"] or "ok"] for r in rows],
        "Stage manifests", ["failed" if r["problem"] else "" for r in rows]))
    return section


def crawl_page_types(root: str, manifests: dict[str, dict]) -> dict[str, dict[str, str]]:
    """url -> page type of each generated crawl (`infra.sample_crawl`), keyed by the crawl folder's location.

    Only a generated crawl knows its pages' types (its `ground-truth.jsonl`); a real crawl has none."""
    crawls = {}
    for folder, manifest in _by_stage(manifests, "sample-data").items():
        truth = fs.join(root, folder, str(manifest.get("ground_truth", "")))
        if manifest.get("ground_truth") and fs.is_file(truth):
            rows = _read_jsonl(fs.read_text(truth))
            crawls[location(fs.join(root, folder))] = {r["url"]: r.get("page_type") or "?" for r in rows if "url" in r}
    return crawls


def corpus_urls(root: str, files: list[str], corpus_dir: str) -> Counter | None:
    """How many corpus rows have each URL, read a column at a time from the corpus Parquet files (None when
    the corpus folder is not under the root)."""
    import pyarrow.parquet as pq

    prefix = location(corpus_dir).rstrip("/") + "/"
    parts = [f for f in files if f.endswith(".parquet") and location(f).startswith(prefix)]
    if not parts:
        return None
    urls: Counter = Counter()
    for part in parts:
        with fs.open_input(part) as stream:
            for batch in pq.ParquetFile(stream).iter_batches(columns=["url"]):
                urls.update(batch.column(0).to_pylist())
    return urls


def page_type_yield(crawl: dict[str, str], urls: Counter) -> list[list[Any]]:
    """Per page type: pages in the crawl, documents in the corpus, and the share kept."""
    pages = Counter(crawl.values())
    kept = Counter()
    for url, n in urls.items():
        kept[crawl.get(url, "not in the crawl")] += n
    rows = []
    for page_type in sorted(set(pages) | set(kept)):
        share = kept[page_type] / pages[page_type] if pages[page_type] else None
        rows.append([page_type, pages[page_type], kept[page_type], share])
    return rows


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def corpus_section(root: str, files: list[str], manifests: dict[str, dict]) -> tuple[dict[str, Any], set[str]]:
    """The corpus builds (`spark_jobs.build_job`): funnel, what was removed and why, yield per page type, and
    the plots of the Spark stats report. Returns the section and the plot files it shows."""
    section = _section("corpus", "Corpus", "Each corpus build: documents left after each stage, what was "
                       "removed and why, and how much of each page type reached the corpus.",
                       "no corpus build in this run")
    crawls = crawl_page_types(root, manifests)
    shown: set[str] = set()
    for folder, manifest in _by_stage(manifests, "build").items():
        blocks = section["blocks"]
        blocks.append(_text("heading", f"{folder} (e-commerce filter "
                                       f"{'on' if manifest.get('ecommerce_filter') else 'off'})"))
        plots = [f for f in files if f.endswith(".png") and _relative(f, root).startswith(f"{folder}/{REPORT_DIR}/")]
        funnel = [s for s in manifest.get("funnel", []) if isinstance(s, dict) and "step" in s]
        if funnel:
            start = funnel[0]["documents"] or 1
            blocks.append(_table(["step", "documents", "share of input"],
                                 [[s["step"], s["documents"], _share(s["documents"] / start)] for s in funnel],
                                 "Funnel"))
            if not any(fs.name_of(f) == "funnel.png" for f in plots):  # the Spark stats report draws its own
                blocks.append(_image(_barh([s["step"] for s in funnel], [s["documents"] for s in funnel],
                                           f"{folder}: filter funnel", "documents"), f"{folder}: documents per step"))
        counts = manifest.get("counts", {})
        removed = {**counts.get("filtered", {}), **counts.get("errors", {})}
        if counts.get("duplicates"):
            removed["duplicates"] = counts["duplicates"]
        if removed:
            items = sorted(removed.items(), key=lambda kv: -kv[1])
            blocks.append(_table(["stage:reason", "documents"], [list(kv) for kv in items], "Removed, by reason"))
        inputs = {location(fs.parent_of(i)) for i in manifest.get("inputs", [])}
        crawl = next((pages for where, pages in crawls.items() if where in inputs), None)
        corpus_dir = manifest.get("outputs", {}).get("corpus")
        urls = corpus_urls(root, files, corpus_dir) if crawl and corpus_dir else None
        if crawl and urls is not None:
            rows = page_type_yield(crawl, urls)
            blocks.append(_table(["page type", "pages in the crawl", "documents in the corpus", "yield"],
                                 [[*row[:3], _share(row[3])] for row in rows],
                                 "Yield per page type (from the generated crawl's ground truth)"))
            typed = [r for r in rows if r[3] is not None]
            blocks.append(_image(_barh([r[0] for r in typed], [float(r[3]) for r in typed],
                                       f"{folder}: yield per page type", "corpus documents / crawl pages",
                                       "#55a868"), f"{folder}: share of each page type kept"))
        else:
            blocks.append(_text("text", "Yield per page type: the crawl's pages carry no page type "
                                        "(only a generated sample crawl has a ground truth)."))
        summary = fs.join(root, folder, REPORT_DIR, "summary.json")
        if fs.is_file(summary):
            categories = json.loads(fs.read_text(summary)).get("categories") or {}
            if categories:
                blocks.append(_table(["category", "documents"], [list(kv) for kv in categories.items()],
                                     "Corpus documents per category (the Spark stats report)"))
        for plot in plots:
            png = fs.read_bytes(plot)
            if len(png) < MAX_PLOT_BYTES:
                blocks.append(_image(png, _relative(plot, root)))
                shown.add(_relative(plot, root))
    return section, shown


HYGIENE_NAME = "hygiene.json"  # `infra.demo_corpus.write_hygiene`


def hygiene_blocks(root: str) -> list[dict[str, Any]]:
    """The evaluation-overlap check of the pretraining text (`training.evaluation.hygiene`), when the run has one:
    a line with the totals, then documents dropped per source and evaluation items found per task and split."""
    path = fs.join(root, HYGIENE_NAME)
    if not fs.is_file(path):
        return []
    try:
        hygiene = json.loads(fs.read_text(path))
    except json.JSONDecodeError as exc:
        return [_text("text", f"{HYGIENE_NAME}: unreadable ({exc})")]
    blocks = [_text("heading", "Evaluation overlap (data hygiene)")]
    if hygiene.get("skipped"):
        return blocks + [_text("text", f"Not checked: {hygiene['skipped']}.")]
    shared = hygiene.get("shared_text_overlap") or {}
    crawl = hygiene.get("crawl_corpora_overlap") or {}
    reasons = ", ".join(f"{k} {v:,}" for k, v in (shared.get("dropped_by_reason") or {}).items()) or "none"
    rule = hygiene.get("rule") or {}
    blocks.append(_text("text", (
        f"Checked against {hygiene.get('evaluation_items', 0):,} validation and test items: "
        f"{shared.get('documents_dropped', 0):,} of {shared.get('documents_checked', 0):,} shared-text documents "
        f"repeat one and were dropped from pretraining ({reasons}); {crawl.get('documents_dropped', 0):,} of "
        f"{crawl.get('documents_checked', 0):,} crawl-corpus documents overlap. Near duplicate: word "
        f"{rule.get('ngram')}-gram Jaccard >= {rule.get('near_duplicate_jaccard')}.")))
    rows = [[source, c.get("checked", 0), sum(v for k, v in c.items() if k != "checked")]
            for report in (shared, crawl) for source, c in report.get("by_source", {}).items()]
    if rows:
        blocks.append(_table(["pretraining source", "documents checked", "dropped (overlap)"], rows,
                             "Pretraining documents that repeat an evaluation item"))
    found = shared.get("evaluation_items_found_in_pretraining") or {}
    if found:
        blocks.append(_table(["task/split", "evaluation items", "found in the shared pretraining text"],
                             [[name, v["items"], v["found"]] for name, v in found.items()],
                             "Evaluation items seen in the raw pretraining text (before the drop)"))
    return blocks


def dedup_section(manifests: dict[str, dict]) -> dict[str, Any]:
    """MinHash dedup (`spark_jobs.dedup_job`): clusters found, and the duplicate groups the generator planted."""
    section = _section("dedup", "Near-duplicate removal", "MinHash clusters each dedup run found, and the "
                       "duplicates it removed.", "no dedup stage in this run")
    runs = _by_stage(manifests, "dedup")
    if runs:
        counts = ("input", "kept", "duplicates")
        rows = [[key, *(m.get("counts", {}).get(key) for m in runs.values())] for key in counts]
        rows += [[key, *(m.get("dedup", {}).get(key) for m in runs.values())] for key in DEDUP_KEYS]
        section["blocks"].append(_table(["", *runs], rows, "Clusters (components) and duplicates, per dedup run"))
        section["blocks"].append(_image(_barh(
            [f"{folder}: {label}" for folder in runs for label in ("clusters", "duplicates removed")],
            [v for m in runs.values() for v in (m.get("dedup", {}).get("components") or 0,
                                                m.get("counts", {}).get("duplicates") or 0)],
            "MinHash clusters and duplicates removed", "count", "#8172b2"), "clusters and duplicates per run"))
    planted = {f: m for f, m in _by_stage(manifests, "sample-data").items() if "dup_groups" in m}
    if planted and not runs:  # the crawl's note alone would hide that no dedup ran
        section["blocks"].append(_text("text", section["empty"] + "."))
    for folder, manifest in planted.items():
        section["blocks"].append(_text("text", f"The generated crawl {folder} planted {manifest['dup_groups']} "
                                               "groups of exact and near duplicates."))
    return section


def tokens_section(manifests: dict[str, dict]) -> dict[str, Any]:
    """Tokenizer and packing (`ray_jobs.tokenize`): the vocabulary, and tokens per mixture source and split."""
    section = _section("tokens", "Tokenizer and packed tokens", "Real and padding tokens each source contributes "
                       "to each packed token set.", "no tokenizer or packed token set in this run")
    for folder, m in _by_stage(manifests, "train-tokenizer").items():
        section["blocks"].append(_text("text", f"Tokenizer {folder}: vocabulary {m.get('vocab_size')} "
                                               f"({m.get('bpe_vocab')} BPE + {m.get('padding_tokens')} padding), "
                                               f"trained on {', '.join(map(str, m.get('corpora', [])))}."))
    packs = _by_stage(manifests, "pack")
    rows, bars = [], {}
    for folder, m in packs.items():
        for split, info in m.get("splits", {}).items():
            for source, c in info.get("tokens_per_source", {}).items():
                rows.append([folder, split, source, c.get("sequences"), c.get("real"), c.get("pad")])
                if split == "train":
                    bars[f"{folder}: {source}"] = c.get("real") or 0
    if rows:
        section["blocks"].append(_table(["token set", "split", "source", "sequences", "real tokens", "pad tokens"],
                                        rows, "Tokens per source"))
    if bars:
        section["blocks"].append(_image(_barh(list(bars), list(bars.values()), "Train tokens per source",
                                              "real tokens", "#c44e52"), "real train tokens per source"))
    return section


def pretrain_section(root: str, files: list[str], manifests: dict[str, dict]) -> tuple[dict[str, Any], bytes | None]:
    """Each pretraining phase (`training.trainer`): its manifest's totals, loss and throughput per step."""
    section = _section("pretrain", "Pretraining", "Each phase: steps, tokens and final loss from its manifest; "
                       "loss and throughput per logged step from its metrics.jsonl.", "no pretraining in this run")
    phases = {f: m for f, m in sorted(manifests.items()) if str(m.get("stage", "")).startswith("pretrain.")}
    if phases:
        keys = ["steps", "tokens", "final_loss", "tokens_per_s", "world_size", "init_from"]
        section["blocks"].append(_table(["folder", "phase", *keys],
                                        [[f, m["stage"].removeprefix("pretrain."), *(m.get(k) for k in keys)]
                                         for f, m in phases.items()], "Phases"))
    runs = phase_metrics(root, files)
    loss = _plot_per_phase(runs, "loss", "MLM loss", "Pretraining loss by phase")
    if loss:
        section["blocks"].append(_image(loss, "MLM loss per step, one line per phase"))
    throughput = _plot_per_phase(runs, "tokens_per_s", "tokens/s", "Throughput by phase")
    if throughput:
        section["blocks"].append(_image(throughput, "real tokens per second (all devices) per logged step"))
    return section, loss


def evaluation_section(root: str, files: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The downstream evaluation (`ray_jobs.evaluate`): the comparison table from results.json, a task's
    baselines as rows of their own when the results hold them, the chosen configurations, and a plot per task."""
    from training.evaluation.report import (
        VERDICT_HEADER,
        baseline_rows,
        baseline_verdicts,
        comparison_rows,
        task_figure,
    )

    section = _section("evaluation", "Evaluation", "Test score of the configuration chosen on validation, "
                       "mean ± std over seeds.", "no evaluation in this run")
    found = []
    for uri in (f for f in files if fs.name_of(f) == "results.json"):
        try:
            results = json.loads(fs.read_text(uri))
            header, rows = comparison_rows(results)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            section["blocks"].append(_text("text", f"{_relative(uri, root)}: not an evaluation's results ({exc})"))
            continue
        name = _relative(uri, root)
        found.append(name)
        tasks = results["tasks"]
        extra = baseline_rows(results)
        css = [""] * len(rows) + ["baseline"] * len(extra)
        section["blocks"] += [_text("heading", name), _table(header, rows + extra, "Models by task (trivial "
                                                             "baselines, no model, in grey)", css)]
        verdicts = baseline_verdicts(results)
        if verdicts:
            section["blocks"].append(_table(VERDICT_HEADER, verdicts, "Against the strongest baseline",
                                            ["" if v[-1] == "yes" else "failed" for v in verdicts]))
        chosen = [[task, model, json.dumps(s.get("best_config", {})), s.get("valid_mean"),
                   s.get("trials_total"), s.get("trials_errored")]
                  for task, entry in tasks.items() for model, s in entry["models"].items()]
        section["blocks"].append(_table(["task", "model", "chosen config", "valid mean", "trials", "errored"],
                                        chosen, "Chosen configurations"))
        for task, entry in tasks.items():
            png = base64.b64decode(task_figure(task, entry))
            section["blocks"].append(_image(png, f"{task}: test {entry['metric']} per model, validation per epoch"))
    return section, found


STUDY_DIR = "study"  # `rexbert study ...` outputs: their phases and evaluations show in the study section only


def study_section(root: str, files: list[str]) -> tuple[dict[str, Any], set[str]]:
    """Each study's results (`ray_jobs.study`): the per-arm table (mean ± std over seeds), the paired tests, what
    they show, and its plots. Returns the section and the plot files it shows."""
    section = _section("study", "Domain-anneal study", "From one base checkpoint, arms annealed on e-commerce or "
                       "general text with equal token budgets, every seed; held-out MLM and downstream tasks.",
                       "no study in this run (`rexbert study domain-anneal`)")
    shown: set[str] = set()
    for uri in (f for f in files if fs.name_of(f) == "results.json" and fs.name_of(fs.parent_of(f)) == "results"):
        try:
            results = json.loads(fs.read_text(uri))
            table, tests, metrics = results["table"], results["tests"], results["metrics"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            section["blocks"].append(_text("text", f"{_relative(uri, root)}: not a study's results ({exc})"))
            continue
        folder = fs.parent_of(uri)
        section["blocks"] += [_text("heading", _relative(folder, root)), _text("text", results.get("setup", ""))]
        columns = [m for m in metrics if any(m in table[arm] for arm in table)]
        rows = [[arm, *(f"{table[arm][m]['mean']:.4f} ± {table[arm][m]['std']:.4f}" if m in table[arm] else ""
                        for m in columns)] for arm in table]
        section["blocks"].append(_table(["arm", *columns], rows, f"Mean ± std over seeds {results.get('seeds')}"))
        test_rows = [[f"{t['a']} − {t['b']}", metric, f"{e['diff_mean']:+.4f}", e.get("t_test_p"),
                      e.get("wilcoxon_p")] for t in tests for metric, e in t["metrics"].items()
                     if metric.startswith("mlm-") or metric in columns]
        section["blocks"].append(_table(["comparison", "metric", "difference", "p (paired t, seeds)",
                                         "p (Wilcoxon, texts)"], test_rows, "Paired tests"))
        for line in results.get("verdict", []):
            section["blocks"].append(_text("text", line))
        for name, caption in (("arms.png", "every metric per arm: mean ± std, one point per seed"),
                              ("loss.png", "training loss of every arm and seed")):
            png_uri = fs.join(folder, name)
            if fs.is_file(png_uri):
                section["blocks"].append(_image(fs.read_bytes(png_uri), caption))
                shown.add(_relative(png_uri, root))
    return section, shown


def plots_section(root: str, files: list[str], shown: set[str]) -> tuple[dict[str, Any], list[str]]:
    section = _section("plots", "Other stage plots", "PNG files the stages wrote beside their outputs.",
                       "no other stage plots in this run")
    names = []
    for uri in (f for f in files if f.endswith(".png")):
        name = _relative(uri, root)
        png = fs.read_bytes(uri)
        if name not in shown and len(png) < MAX_PLOT_BYTES:
            section["blocks"].append(_image(png, name))
            names.append(name)
    return section, names


def outputs_section(root: str, files: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Relative links (from report/index.html) to every stage folder, its manifest and its readable outputs."""
    section = _section("outputs", "Outputs", "Links relative to this page: each stage folder and what it wrote "
                       "for people to read.", "no stage output under this root")
    readable = ("results.json", "results.md", "report.html", "index.html", "metrics.jsonl", "summary.json",
                "config.resolved.yaml")
    groups = []
    for row in sorted(rows, key=lambda r: r["folder"]):
        prefix = "" if row["folder"] == "." else f"{row['folder']}/"
        items = [(MANIFEST_NAME, f"../{prefix}{MANIFEST_NAME}")]
        for uri in files:
            inner = _relative(uri, root)[len(prefix):]
            if _relative(uri, root).startswith(prefix) and "/" not in inner.removeprefix(f"{REPORT_DIR}/") \
                    and fs.name_of(uri) in readable:
                items.append((inner, f"../{prefix}{inner}"))
        groups.append({"label": f"{prefix or './'}", "href": f"../{prefix}", "stage": row["stage"] or "no stage",
                       "files": items})
    if groups:
        section["blocks"].append({"kind": "links", "links": groups})
    return section


def dashboard_lines(root: str) -> list[str]:
    """What `rexbert dashboard urls` prints for this run root (with the config it ran with, when it left one)."""
    from infra.cli import app
    from infra.core.config import RESOLVED_CONFIG_NAME

    args = ["dashboard", "urls", "--output", root]
    config = fs.join(root, RESOLVED_CONFIG_NAME)
    attempts = ([args + ["--config", config]] if fs.is_file(config) else []) + [args]
    for attempt in attempts:
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                app(attempt, standalone_mode=False)
        except Exception:  # noqa: BLE001 - a config this checkout cannot load: try without it
            continue
        return [f"$ rexbert {' '.join(attempt)}", *printed.getvalue().splitlines()]
    return []


def dashboards_section(root: str) -> dict[str, Any]:
    section = _section("dashboards", "Dashboards", "Where to watch this run live: the Ray dashboard, "
                       "TensorBoard, Prometheus and Grafana, the Spark history server.",
                       "no dashboard commands: `rexbert dashboard urls` could not read this run's config")
    lines = dashboard_lines(root)
    if lines:
        section["blocks"].append({"kind": "commands", "lines": lines})
    return section


# --- the page --------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """How a table cell reads: integers with thousands separators, floats with 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_page(context: dict[str, Any]) -> str:
    """The report page from `infra/templates/report.html`, every value escaped."""
    env = Environment(loader=PackageLoader("infra", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = _cell
    return env.get_template(TEMPLATE).render(**context)


def build_report(root: str) -> dict[str, Any]:
    """Write `<root>/report/index.html` and `report.json` (any filesystem); returns the numbers."""
    root = str(root).rstrip("/") or "/"
    if not fs.is_dir(root):
        raise FileNotFoundError(f"run root not found: {root}")
    out_dir = fs.join(root, REPORT_DIR)
    files = [f for f in fs.list_files(root) if _is_stage_output(_relative(f, root))]
    rows = collect_stages(root, files)
    pipeline = pipeline_summary(rows)
    manifests = read_manifests(root, files)
    in_study = {f for f in files if _relative(f, root).startswith(f"{STUDY_DIR}/")}
    run_files = [f for f in files if f not in in_study]
    run_manifests = {folder: m for folder, m in manifests.items() if not folder.startswith(f"{STUDY_DIR}/")}
    corpus, shown = corpus_section(root, files, manifests)
    corpus["blocks"] += hygiene_blocks(root)
    pretrain, loss_png = pretrain_section(root, run_files, run_manifests)
    evaluation, results = evaluation_section(root, run_files)
    study, study_plots = study_section(root, sorted(in_study))
    shown |= study_plots
    plots, plot_names = plots_section(root, run_files, shown)
    sections = [pipeline_section(rows, pipeline), corpus, dedup_section(manifests), tokens_section(manifests),
                pretrain, evaluation, *([study] if study["blocks"] else []),  # a run without a study: no section
                plots, outputs_section(root, files, rows), dashboards_section(root)]
    if loss_png:
        fs.write_bytes(fs.join(out_dir, "training-loss.png"), loss_png)
    summary = {
        "root": root,
        "stages": rows,
        "pipeline": pipeline,
        "all_stages_pass": bool(rows) and not any(r["problem"] for r in rows),
        "plots": sorted(shown | set(plot_names)) + ([f"{REPORT_DIR}/training-loss.png"] if loss_png else []),
        "evaluation": results,
        "hygiene": HYGIENE_NAME if fs.is_file(fs.join(root, HYGIENE_NAME)) else None,
        "sections": {s["id"]: bool(s["blocks"]) for s in sections},
    }
    page = render_page({"root": root, "all_stages_pass": summary["all_stages_pass"], "sections": sections})
    fs.write_text(fs.join(out_dir, "index.html"), page)
    fs.write_text(fs.join(out_dir, "report.json"), json.dumps(summary, indent=2))
    return summary


def run_demo(config: Any, root: str) -> dict[str, Any]:
    """The demo's last stage: the report over everything the demo wrote."""
    summary = build_report(str(root))
    return {"report": fs.join(str(root), REPORT_DIR, "index.html"), "all_stages_pass": summary["all_stages_pass"],
            "failed": [r["folder"] for r in summary["stages"] if r["problem"]]}
