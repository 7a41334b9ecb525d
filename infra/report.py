"""`rexbert report`: one HTML page over every stage of a run root, for a person to look at.

It reads what the stages left behind — every `manifest.json`, pretraining `metrics.jsonl` (loss
curves), evaluation `results.md`, and the stage plots — and writes `<root>/report/index.html` with the
plots embedded, plus `report.json` with the numbers. The root may be a local folder or a URI: every
read and write goes through `infra.core.fs`.

Every manifest is checked with `infra.core.manifest.check_manifest`, the same check `write_manifest`
makes: the one schema, and input = kept + filtered + duplicates + errors. A manifest that fails (an old
schema, counts that do not add up, unreadable JSON) is a failed row of the report, never a skipped one.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import matplotlib

from infra.core import fs
from infra.core.manifest import MANIFEST_NAME, check_manifest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPORT_DIR = "report"
# The pipeline's stages in order, as they name themselves in their manifests' `stage` key (pretraining
# phases as `pretrain.<phase>`).
PIPELINE_STAGES = (
    "sample-data", "extract", "filter", "dedup", "corpus", "build", "train-tokenizer", "pack", "pretrain", "evaluate",
)
MAX_PLOT_BYTES = 2_000_000


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


def collect_stages(root: str, files: list[str]) -> list[dict[str, Any]]:
    """A checked row for every stage manifest among the run root's files."""
    rows = []
    for uri in files:
        relative = _relative(uri, root)
        if fs.name_of(uri) == MANIFEST_NAME and _is_stage_output(relative):
            folder = fs.parent_of(relative) if "/" in relative else "."
            rows.append(check_stage(folder, fs.read_text(uri)))
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
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def plot_training_curves(root: str, files: list[str]) -> bytes | None:
    """Loss against step for every `metrics.jsonl` of the run, one line per phase, as PNG bytes."""
    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = 0
    for uri in (f for f in files if fs.name_of(f) == "metrics.jsonl"):
        rows = [r for r in _read_jsonl(fs.read_text(uri)) if "loss" in r and "step" in r]
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=fs.parent_of(_relative(uri, root)))
            plotted += 1
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("MLM loss")
    ax.set_title("Pretraining loss by phase")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _img_tag(png: bytes) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" style="max-width:720px">'


def _table(rows: list[dict[str, Any]], failed: list[bool] | None = None) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = []
    for i, row in enumerate(rows):
        style = " style='background:#f8d0d0'" if failed and failed[i] else ""
        cells = "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row.values())
        body.append(f"<tr{style}>{cells}</tr>")
    return f"<table border=1 cellpadding=4 cellspacing=0><tr>{head}</tr>{''.join(body)}</table>"


def _stage_table(rows: list[dict[str, Any]]) -> str:
    shown = [{**{k: v for k, v in r.items() if k != "problem"}, "check": r["problem"] or "ok"} for r in rows]
    return _table(shown, [bool(r["problem"]) for r in rows])


def build_report(root: str) -> dict[str, Any]:
    """Write `<root>/report/index.html` and `report.json` (any filesystem); returns the numbers."""
    root = str(root).rstrip("/") or "/"
    if not fs.is_dir(root):
        raise FileNotFoundError(f"run root not found: {root}")
    out_dir = fs.join(root, REPORT_DIR)
    files = [f for f in fs.list_files(root) if _is_stage_output(_relative(f, root))]
    rows = collect_stages(root, files)
    pipeline = pipeline_summary(rows)
    loss_png = plot_training_curves(root, files)
    if loss_png:
        fs.write_bytes(fs.join(out_dir, "training-loss.png"), loss_png)
    plots = {_relative(f, root): fs.read_bytes(f) for f in files if f.endswith(".png")}
    plots = {name: png for name, png in plots.items() if len(png) < MAX_PLOT_BYTES}
    evaluation = {_relative(f, root): fs.read_text(f) for f in files if fs.name_of(f) == "results.md"}
    summary = {
        "root": root,
        "stages": rows,
        "pipeline": pipeline,
        "all_stages_pass": bool(rows) and not any(r["problem"] for r in rows),
        "plots": sorted(plots) + ([f"{REPORT_DIR}/training-loss.png"] if loss_png else []),
        "evaluation": sorted(evaluation),
    }
    parts = [
        "<html><head><meta charset='utf-8'><title>RexBERT run report</title></head><body>",
        f"<h1>RexBERT run report</h1><p>{html.escape(root)}</p>",
        "<h2>Pipeline stages</h2>",
        _table(pipeline, [line["failed"] > 0 for line in pipeline]),
        "<h2>Stage manifests (one schema; input = kept + filtered + duplicates + errors)</h2>",
        _stage_table(rows),
    ]
    if loss_png:
        parts += ["<h2>Pretraining</h2>", _img_tag(loss_png)]
    for name, text in sorted(evaluation.items()):
        parts += [f"<h2>Evaluation: {html.escape(name)}</h2>", f"<pre>{html.escape(text)}</pre>"]
    if plots:
        parts.append("<h2>Stage plots</h2>")
        for name, png in sorted(plots.items()):
            parts += [f"<h3>{html.escape(name)}</h3>", _img_tag(png)]
    parts.append("</body></html>")
    fs.write_text(fs.join(out_dir, "index.html"), "\n".join(parts))
    fs.write_text(fs.join(out_dir, "report.json"), json.dumps(summary, indent=2))
    return summary


def run_demo(config: Any, root: str) -> dict[str, Any]:
    """The demo's last stage: the report over everything the demo wrote."""
    summary = build_report(str(root))
    return {"report": fs.join(str(root), REPORT_DIR, "index.html"), "all_stages_pass": summary["all_stages_pass"],
            "failed": [r["folder"] for r in summary["stages"] if r["problem"]]}
