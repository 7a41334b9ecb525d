"""The evaluation report: `results.json`, a Markdown comparison table, and an HTML page with plots.

Rows are models, columns are tasks; each cell is the test score of the configuration chosen on
validation, as mean ± std over seeds. Each task's trivial baselines are rows of their own, marked
"(baseline)", and drawn as dashed lines on the task's plot. The HTML page embeds one PNG per task (bars with std error
bars per model, and the validation curve of the chosen configuration per epoch). Everything is written
through `infra.core.fs`, so the results folder may be a URI; `manifest.json` counts the trials. The folder
is a stage output (stage `evaluate`, `infra.core.outputs.staged_output`): it appears whole or not at all.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from infra.core import fs
from infra.core.manifest import StageStats, build_manifest, write_manifest
from infra.core.outputs import staged_output

STAGE = "evaluate"  # the manifest's stage and the folder's owner: a rerun replaces only its own results


def cell(summary: dict[str, Any]) -> str:
    if "test_mean" not in summary:
        return "error"
    return f"{summary['test_mean']:.3f} ± {summary['test_std']:.3f}"


def comparison_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (one row per model)."""
    tasks = results["tasks"]
    header = ["model"] + [f"{name} ({entry['metric']})" for name, entry in tasks.items()]
    extra_cols = []
    if "similarity" in tasks:
        header.append("similarity zero-shot (spearman)")
        extra_cols.append(("similarity", "zero_shot"))
    if "fill-mask" in tasks:
        header += ["fill-mask acc@3", "fill-mask acc@5"]
        extra_cols += [("fill-mask", "acc_at_3"), ("fill-mask", "acc_at_5")]
    rows = []
    for model in results["models"]:
        row = [model] + [cell(entry["models"].get(model, {})) for entry in tasks.values()]
        for task, key in extra_cols:
            extra = tasks[task]["models"].get(model, {}).get("test_extras", {}).get(key)
            row.append(f"{extra['mean']:.3f} ± {extra['std']:.3f}" if extra else "-")
        rows.append(row)
    return header, rows


def baseline_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per trivial baseline (`training.evaluation.baselines`), in the comparison table's columns:
    its score under each task that has it, "-" elsewhere."""
    tasks = results["tasks"]
    names = sorted({b for entry in tasks.values() for b in entry.get("baselines", {})})
    rows = []
    for name in names:
        row = [f"{name} (baseline)"]
        row += [cell(entry["baselines"][name]) if name in entry.get("baselines", {}) else "-"
                for entry in tasks.values()]
        if "similarity" in tasks:
            row.append("-")
        if "fill-mask" in tasks:
            extras = tasks["fill-mask"].get("baselines", {}).get(name, {}).get("test_extras", {})
            row += [f"{extras[k]['mean']:.3f}" if k in extras else "-" for k in ("acc_at_3", "acc_at_5")]
        rows.append(row)
    return rows


def baseline_verdicts(results: dict[str, Any]) -> list[list[str]]:
    """Per task and model: the strongest baseline, the margin over it, and whether that margin exceeds the
    model's seed spread (`vs_baselines`, written by `ray_jobs.evaluate`)."""
    rows = []
    for task, entry in results["tasks"].items():
        for model, summary in entry["models"].items():
            verdict = summary.get("vs_baselines")
            if verdict:
                rows.append([task, model, verdict["strongest_baseline"], f"{verdict['margin']:+.3f}",
                             "yes" if verdict["beats"] else "no"])
    return rows


VERDICT_HEADER = ["task", "model", "strongest baseline", "margin (test mean - baseline)", "beats it by > seed std"]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_report(results: dict[str, Any]) -> str:
    header, rows = comparison_rows(results)
    parts = ["# Downstream evaluation", "", "Test score of the configuration chosen on validation, "
             "mean ± std over seeds; trivial baselines (no model) on the same test split below the models.", "",
             markdown_table(header, rows + baseline_rows(results)), ""]
    verdicts = baseline_verdicts(results)
    if verdicts:
        parts += ["## Against the baselines", "", markdown_table(VERDICT_HEADER, verdicts), ""]
    parts += ["## Chosen configurations", ""]
    best_rows = []
    for task, entry in results["tasks"].items():
        for model, summary in entry["models"].items():
            best_rows.append([task, model, json.dumps(summary.get("best_config", {})),
                              f"{summary['valid_mean']:.3f}" if "valid_mean" in summary else "-",
                              str(summary.get("seeds", [])), f"{summary['trials_total']}",
                              f"{summary['trials_errored']}", f"{summary['trials_stopped_early']}"])
    parts.append(markdown_table(["task", "model", "best config", "valid mean", "seeds", "trials", "errored",
                                 "stopped early"], best_rows))
    parts += ["", "## Data", ""]
    for task, entry in results["tasks"].items():
        parts.append(f"- **{task}**: {entry['sizes']} from `{entry['data'].get('source', '')}`")
        if "matching" in entry["data"]:
            parts.append(f"  - span matching ({entry['data']['span_rule']}): {entry['data']['matching']}")
    return "\n".join(parts) + "\n"


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def task_figure(task: str, entry: dict[str, Any]) -> str:
    """Bars (test mean ± std per model) and the chosen configuration's validation curve per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 3.8))
    models = list(entry["models"])
    means = [entry["models"][m].get("test_mean", 0.0) for m in models]
    stds = [entry["models"][m].get("test_std", 0.0) for m in models]
    bars.bar(models, means, yerr=stds, capsize=6, color=[f"C{i}" for i in range(len(models))])
    bars.set_title(f"{task}: test {entry['metric']}\n(mean ± std over seeds)")
    # Spearman can be negative: keep the axis at 0..1 unless a bar (with its error bar) leaves it.
    bars.set_ylim(min([0.0] + [m - s for m, s in zip(means, stds, strict=True)]),
                  max([1.0] + [m + s for m, s in zip(means, stds, strict=True)]))
    bars.axhline(0.0, color="black", linewidth=0.6)
    for k, (name, base) in enumerate(sorted(entry.get("baselines", {}).items())):
        bars.axhline(base["test_mean"], color="gray", linestyle=("--", ":", "-.")[k % 3], linewidth=1.2,
                     label=f"{name} {base['test_mean']:.3f}")
    if entry.get("baselines"):
        bars.legend(fontsize=7, loc="upper right")
    for i, model in enumerate(models):
        summary = entry["models"][model]
        chosen = [t for t in summary.get("trials", []) if t["config"] == summary.get("best_config") and t["history"]]
        for j, trial in enumerate(chosen):
            xs = [h.get("epoch", k + 1) for k, h in enumerate(trial["history"])]
            ys = [h.get("valid_score") for h in trial["history"]]
            curves.plot(xs, ys, marker="o", color=f"C{i}", alpha=0.8, label=model if j == 0 else None)
    curves.set_title(f"validation {entry['metric']} per epoch\n(chosen config, one line per seed)")
    curves.set_xlabel("epoch")
    if curves.get_legend_handles_labels()[0]:
        curves.legend()
    encoded = _png(fig)
    plt.close(fig)
    return encoded


def html_report(results: dict[str, Any]) -> str:
    header, rows = comparison_rows(results)
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    table += "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    table += "".join("<tr style='color:#666;font-style:italic'>" + "".join(f"<td>{html.escape(c)}</td>" for c in row)
                     + "</tr>" for row in baseline_rows(results))
    table += "</table>"
    sections = []
    for task, entry in results["tasks"].items():
        sections.append(f"<h2>{html.escape(task)}</h2><p>data: {html.escape(json.dumps(entry['sizes']))}</p>"
                        f"<img alt='{html.escape(task)}' src='data:image/png;base64,{task_figure(task, entry)}'>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>RexBERT evaluation</title><style>{style}</style>"
            f"</head><body><h1>Downstream evaluation</h1><p>Test score of the configuration chosen on validation, "
            f"mean ± std over seeds.</p>{table}{''.join(sections)}</body></html>")


def trial_stats(results: dict[str, Any]) -> StageStats:
    """Every trial of the run: kept when it finished with a score, else an error by kind."""
    stats = StageStats(seconds=results.get("seconds") or 0.0)
    for entry in results["tasks"].values():
        for summary in entry["models"].values():
            for trial in summary["trials"]:
                stats.input += 1
                kind = trial.get("error_kind") or ("error" if trial.get("error") else None)
                if kind:
                    stats.error(kind)
                else:
                    stats.kept += 1
    return stats


def write_report(results: dict[str, Any], out_dir: str | Path, config: Any = None) -> dict[str, str]:
    """Write the results folder `out_dir` (a path or URI) whole: see `write_report_files`. It must be empty,
    absent or a previous evaluation's (else `OutputError`); returns the final paths."""
    with staged_output(out_dir, STAGE, list(results["models"].values())) as staging:
        write_report_files(results, staging, config)
    return report_paths(str(out_dir))


def report_paths(out: str) -> dict[str, str]:
    """Where the report's files are in the results folder `out`."""
    return {"json": fs.join(out, "results.json"), "markdown": fs.join(out, "results.md"),
            "html": fs.join(out, "report.html"), "manifest": fs.join(out, "manifest.json")}


def write_report_files(results: dict[str, Any], folder: str, config: Any = None,
                       upstream: list[dict[str, str]] | None = None) -> None:
    """Write results.json, results.md, report.html (plots embedded) and, last, manifest.json into `folder`,
    the staging folder of a `staged_output` block; the manifest counts trials (input = finished + failed by
    kind). `upstream`: what `check_upstream` returned for the models when the evaluation started."""
    paths = report_paths(folder)
    fs.write_text(paths["json"], json.dumps(results, indent=2, default=str))
    fs.write_text(paths["markdown"], markdown_report(results))
    fs.write_text(paths["html"], html_report(results))
    summaries = [s for entry in results["tasks"].values() for s in entry["models"].values()]
    manifest = build_manifest(
        STAGE, trial_stats(results), config=config, inputs=list(results["models"].values()), upstream=upstream,
        outputs={name: fs.name_of(path) for name, path in paths.items() if name != "manifest"},
        extra={"models": results["models"], "tasks": list(results["tasks"]),
               "stopped_early_by_asha": sum(s["trials_stopped_early"] for s in summaries)})
    write_manifest(folder, manifest)
