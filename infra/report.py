"""`rexbert report`: one HTML page over every stage of a run root, for a person to look at.

It reads what the stages left behind — every `manifest.json` (counts that add up), pretraining
`metrics.jsonl` (loss curves), evaluation `results.json` / `results.md`, and the stage plots — and
writes `<root>/report/index.html` with the plots embedded, plus `report.json` with the numbers.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPORT_DIR = "report"


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def collect_manifests(root: Path) -> list[dict[str, Any]]:
    """Every stage manifest under the root (skipping staging folders and this report)."""
    found = []
    for path in sorted(root.rglob("manifest.json")):
        parts = path.relative_to(root).parts
        if parts[0] == REPORT_DIR or any(".tmp-" in p or ".old-" in p for p in parts):
            continue
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            found.append({"path": _rel(path, root), "error": f"unreadable manifest: {exc}"})
            continue
        found.append({"path": _rel(path.parent, root), "manifest": manifest})
    return found


def _counts_row(entry: dict[str, Any]) -> dict[str, Any] | None:
    counts = entry.get("manifest", {}).get("counts")
    if not isinstance(counts, dict) or "input" not in counts:
        return None
    filtered = sum((counts.get("filtered") or {}).values())
    errors = sum((counts.get("errors") or {}).values())
    kept = counts.get("kept", 0)
    duplicates = counts.get("duplicates", 0)
    return {
        "stage": entry["path"],
        "input": counts["input"],
        "kept": kept,
        "filtered": filtered,
        "duplicates": duplicates,
        "errors": errors,
        "adds_up": counts["input"] == kept + filtered + duplicates + errors,
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def plot_training_curves(root: Path, out_dir: Path) -> Path | None:
    """Loss against step for every `metrics.jsonl` under runs/, one line per phase."""
    files = sorted((root / "runs").rglob("metrics.jsonl")) if (root / "runs").is_dir() else []
    if not files:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = 0
    for path in files:
        rows = [r for r in _read_jsonl(path) if "loss" in r and "step" in r]
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=_rel(path.parent, root))
            plotted += 1
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("MLM loss")
    ax.set_title("Pretraining loss by phase")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = out_dir / "training-loss.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:720px">'


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table border=1 cellpadding=4 cellspacing=0><tr>{head}</tr>{body}</table>"


def build_report(root: str | Path) -> dict[str, Any]:
    """Write `<root>/report/index.html` and `report.json`; returns the numbers."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"run root not found: {root}")
    out_dir = root / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = collect_manifests(root)
    counts = [row for row in (_counts_row(m) for m in manifests) if row is not None]
    loss_plot = plot_training_curves(root, out_dir)
    stage_plots = [
        p
        for p in sorted(root.rglob("*.png"))
        if out_dir not in p.parents and ".tmp-" not in str(p) and p.stat().st_size < 2_000_000
    ]
    eval_md = sorted(root.glob("eval/**/results.md"))
    summary = {
        "root": str(root.resolve()),
        "stages": [m["path"] for m in manifests],
        "counts": counts,
        "all_counts_add_up": all(row["adds_up"] for row in counts),
        "plots": [_rel(p, root) for p in stage_plots] + ([_rel(loss_plot, root)] if loss_plot else []),
        "evaluation": [_rel(p, root) for p in eval_md],
    }
    parts = [
        "<html><head><meta charset='utf-8'><title>RexBERT run report</title></head><body>",
        f"<h1>RexBERT run report</h1><p>{html.escape(summary['root'])}</p>",
        "<h2>Stage accounting (input = kept + filtered + duplicates + errors)</h2>",
        _table(counts),
    ]
    if loss_plot:
        parts += ["<h2>Pretraining</h2>", _img_tag(loss_plot)]
    for md in eval_md:
        parts += [f"<h2>Evaluation: {html.escape(_rel(md, root))}</h2>", f"<pre>{html.escape(md.read_text())}</pre>"]
    if stage_plots:
        parts.append("<h2>Stage plots</h2>")
        for plot in stage_plots:
            parts += [f"<h3>{html.escape(_rel(plot, root))}</h3>", _img_tag(plot)]
    parts.append("</body></html>")
    (out_dir / "index.html").write_text("\n".join(parts))
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_demo(config: Any, root: Path) -> dict[str, Any]:
    """The demo's last stage: the report over everything the demo wrote."""
    summary = build_report(root)
    return {"report": str(Path(root) / REPORT_DIR / "index.html"), "all_counts_add_up": summary["all_counts_add_up"]}
