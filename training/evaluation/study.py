"""The domain-anneal study's numbers: held-out MLM per text, per-arm mean ± std over seeds, paired tests, plots.

No Ray here: `ray_jobs.study` trains the arms and runs the downstream tasks, then hands this module one record
per (arm, seed) model:

    {"arm": "ecom-anneal", "seed": 0, "model": DIR, "mlm": {"ecom": SCORES, "general": SCORES},
     "tasks": {"page-type": 0.41, ...}, "losses": [...]}

where SCORES is `training.evaluation.fill_mask.score_texts` on the held-out texts (the test half of the wcxb-dev
pages: e-commerce = product and collection, general = article, documentation, forum and service), masked with one
fixed generator seed so that every model of one tokenizer is scored on the same masked positions.

Two paired tests per comparison: over seeds (`scipy.stats.ttest_rel` on each seed's score: the arms of one seed
share the base checkpoint and the fine-tuning seed), and, for MLM, over texts (`scipy.stats.wilcoxon` on each
held-out text's acc@1, averaged over seeds: many more pairs than seeds, so it sees smaller effects).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from training.evaluation.base import stable_bucket
from training.evaluation.fill_mask import score_texts, summarize_scores

MLM_SETS = {"ecom": ("product", "collection"), "general": ("article", "documentation", "forum", "service")}
MLM_METRICS = ("acc_at_1", "acc_at_5", "loss")  # loss: lower is better
EVAL_MASK_SEED = 1234  # the masked positions of every model's held-out MLM scoring


def held_out_texts(wcxb: Path) -> dict[str, list[str]]:
    """The test half (by fill-mask's stable hash) of the wcxb-dev reference texts, per MLM set."""
    from training.evaluation.fill_mask import read_wcxb_texts

    return {name: [t for t in read_wcxb_texts(wcxb, types, skip_missing=True) if stable_bucket(t) % 2 == 1]
            for name, types in MLM_SETS.items()}


def score_model(model_dir: str, texts: dict[str, list[str]], max_length: int,
                mask_probability: float) -> dict[str, dict[str, list]]:
    """Per-text MLM scores of one exported model on every held-out set (same masks for every model)."""
    import torch
    from transformers.utils import logging as hf_logging

    from training.evaluation.fill_mask import load_mlm

    hf_logging.disable_progress_bar()  # one bar per model is the study's own
    model, tokenizer = load_mlm(model_dir)
    out = {}
    for name, items in texts.items():
        generator = torch.Generator().manual_seed(EVAL_MASK_SEED)
        out[name] = score_texts(model, tokenizer, items, max_length, mask_probability, generator)
    return out


def metric_values(record: dict[str, Any]) -> dict[str, float]:
    """One model's scalar scores: `mlm-<set>/<metric>` and each downstream task's test score."""
    values = {}
    for name, scores in record.get("mlm", {}).items():
        summary = summarize_scores(scores)
        for metric in MLM_METRICS:
            values[f"mlm-{name}/{metric}"] = summary[metric]
    for task, score in (record.get("tasks") or {}).items():
        if score is not None:
            values[task] = score
    return values


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def arm_table(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """arm -> metric -> {mean, std, n, by_seed}."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        for metric, value in metric_values(record).items():
            entry = table.setdefault(record["arm"], {}).setdefault(metric, {"by_seed": {}})
            entry["by_seed"][str(record["seed"])] = value
    for metrics in table.values():
        for entry in metrics.values():
            entry.update(_mean_std(list(entry["by_seed"].values())))
    return table


def _per_text_acc(records: list[dict[str, Any]], arm: str, mlm_set: str) -> list[float | None]:
    """Each held-out text's acc@1 for `arm`, averaged over its seeds (None: a text with no masked token)."""
    mine = [r["mlm"][mlm_set] for r in records if r["arm"] == arm]
    out: list[float | None] = []
    for i in range(len(mine[0]["masked"])):
        masked = mine[0]["masked"][i]
        out.append(None if not masked else statistics.fmean(s["hits_at_1"][i] / masked for s in mine))
    return out


def paired_test(records: list[dict[str, Any]], a: str, b: str) -> dict[str, dict[str, Any]]:
    """`a` against `b` per metric: mean difference over the seeds both have, its std, the paired t-test's p,
    and for the MLM acc@1 sets a Wilcoxon signed-rank test over held-out texts."""
    from scipy import stats

    table = arm_table(records)
    out: dict[str, dict[str, Any]] = {}
    for metric in table.get(a, {}):
        if metric not in table.get(b, {}):
            continue
        seeds = sorted(set(table[a][metric]["by_seed"]) & set(table[b][metric]["by_seed"]))
        xa = [table[a][metric]["by_seed"][s] for s in seeds]
        xb = [table[b][metric]["by_seed"][s] for s in seeds]
        diffs = [x - y for x, y in zip(xa, xb, strict=True)]
        entry: dict[str, Any] = {"diff_mean": statistics.fmean(diffs), "n_seeds": len(seeds),
                                 "diff_std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0}
        if len(diffs) > 1 and any(d != diffs[0] for d in diffs):
            entry["t_test_p"] = float(stats.ttest_rel(xa, xb).pvalue)
        else:
            entry["t_test_p"] = None  # identical differences: no spread to test against
        if metric.endswith("/acc_at_1"):
            mlm_set = metric.split("/")[0].removeprefix("mlm-")
            pa, pb = _per_text_acc(records, a, mlm_set), _per_text_acc(records, b, mlm_set)
            pairs = [(x, y) for x, y in zip(pa, pb, strict=True) if x is not None and y is not None]
            text_diffs = [x - y for x, y in pairs]
            entry["n_texts"] = len(pairs)
            entry["texts_better"] = sum(d > 0 for d in text_diffs)
            entry["texts_worse"] = sum(d < 0 for d in text_diffs)
            nonzero = [d for d in text_diffs if d != 0]
            entry["wilcoxon_p"] = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else None
        out[metric] = entry
    return out


def comparisons(arms: list[str], baseline: str) -> list[tuple[str, str]]:
    """Which pairs are tested: the first arm against the second (the domain effect), and every arm against the
    compute-matched baseline."""
    pairs = [(arms[0], arms[1])] if len(arms) > 1 and arms[1] != baseline else []
    return pairs + [(arm, baseline) for arm in arms if arm != baseline]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "–" if value is None else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")


def markdown(results: dict[str, Any]) -> str:
    """The study as Markdown: setup, per-arm table (mean ± std over seeds), the paired tests, and the verdict."""
    table, arms = results["table"], list(results["table"])
    metrics = [m for m in results["metrics"] if any(m in table[a] for a in arms)]
    lines = [f"# Domain-anneal study: {', '.join(arms)}", "",
             f"Generated by `rexbert study domain-anneal`; {results['setup']}"
             + (f" Training took {results['train_seconds']:,.0f} s over all models (one process each)."
                if results.get("train_seconds") else ""), "",
             "Mean ± std over pretraining seeds " + ", ".join(str(s) for s in results["seeds"])
             + " (higher is better, except loss). MLM: held-out wcxb-dev test-half texts, "
             f"first {results['max_length']} tokens, {results['mask_probability']:.0%} masked at fixed positions.",
             "", "| arm | " + " | ".join(metrics) + " |", "| --- |" + " --- |" * len(metrics)]
    for arm in arms:
        cells = [f"{_fmt(table[arm][m]['mean'])} ± {_fmt(table[arm][m]['std'])}" if m in table[arm] else "–"
                 for m in metrics]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    if results.get("baselines"):
        lines += ["", "Trivial baselines (same test data): " + "; ".join(
            f"{task} {name} {_fmt(value)}" for task, entries in results["baselines"].items()
            for name, value in entries.items())]
    lines += ["", "![Every metric per arm: mean ± std over seeds, one point per seed](arms.png)", "",
              "![Training loss of every arm and seed](loss.png)"]
    lines += ["", "## Paired tests", "",
              "Difference of means (first − second) over the seeds both arms have, the paired t-test's p over seeds, "
              "and for acc@1 a Wilcoxon signed-rank test over held-out texts (each text's acc@1 averaged over seeds).",
              "", "| comparison | metric | difference | p (t, seeds) | texts better / worse | p (Wilcoxon, texts) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for test in results["tests"]:
        for metric, entry in test["metrics"].items():
            texts = (f"{entry['texts_better']} / {entry['texts_worse']} of {entry['n_texts']}"
                     if "n_texts" in entry else "–")
            lines.append(f"| {test['a']} − {test['b']} | {metric} | {entry['diff_mean']:+.4f} ± "
                         f"{entry['diff_std']:.4f} | {_p(entry['t_test_p'])} | {texts} | "
                         f"{_p(entry.get('wilcoxon_p'))} |")
    lines += ["", "## What it shows", "", *[f"- {line}" for line in results["verdict"]], ""]
    return "\n".join(lines)


def verdict(results: dict[str, Any]) -> list[str]:
    """Plain sentences on the e-commerce MLM effect of each tested pair, whichever way it goes."""
    lines = []
    for test in results["tests"]:
        for metric in ("mlm-ecom/acc_at_1", "mlm-general/acc_at_1"):
            entry = test["metrics"].get(metric)
            if entry is None:
                continue
            tested = {name: p for name, p in (("seeds", entry["t_test_p"]), ("texts", entry.get("wilcoxon_p")))
                      if p is not None}
            below = [name for name, p in tested.items() if p < 0.05]
            strength = ("significant over seeds and over texts" if len(below) == 2 else
                        f"significant over {below[0]} only" if below else "not significant")
            direction = "above" if entry["diff_mean"] > 0 else "below" if entry["diff_mean"] < 0 else "equal to"
            lines.append(f"{test['a']} is {direction} {test['b']} on {metric} by {entry['diff_mean']:+.4f} "
                         f"({strength} at 0.05: paired t over {entry['n_seeds']} seeds p={_p(entry['t_test_p'])}, "
                         f"Wilcoxon over {entry.get('n_texts', 0)} texts p={_p(entry.get('wilcoxon_p'))}).")
    return lines


def plot(results: dict[str, Any], records: list[dict[str, Any]], out: Path) -> list[Path]:
    """`arms.png` (every metric per arm: mean ± std bars and each seed's point) and `loss.png` (the training
    loss of every arm and seed). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, arms = results["table"], list(results["table"])
    metrics = [m for m in results["metrics"] if all(m in table[a] for a in arms)]
    colours = {arm: f"C{i}" for i, arm in enumerate(arms)}
    cols = min(3, len(metrics)) or 1
    rows = -(-len(metrics) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for i, arm in enumerate(arms):
            entry = table[arm][metric]
            ax.errorbar(i, entry["mean"], yerr=entry["std"], color=colours[arm], fmt="s", markersize=8, capsize=5)
            ax.scatter([i + 0.15] * len(entry["by_seed"]), list(entry["by_seed"].values()), color="black", s=10,
                       zorder=3)
        values = [v for arm in arms for v in table[arm][metric]["by_seed"].values()]
        low, high = min(values), max(values)
        pad = (high - low) * 0.5 or abs(high) * 0.05 or 0.01
        ax.set_ylim(low - pad, high + pad)
        ax.set_xticks(range(len(arms)), arms, rotation=25, ha="right", fontsize=8)
        ax.set_title(metric + (" (lower is better)" if metric.endswith("/loss") else ""), fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"Domain-anneal study: mean ± std over seeds {results['seeds']}, points = seeds", fontsize=10)
    fig.tight_layout()
    written = [out / "arms.png"]
    fig.savefig(written[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    study_arms = set(results.get("arms", arms))
    base_steps = max((r.get("steps") or 0 for r in records if r["arm"] not in study_arms), default=0)
    for record in records:
        curve = record.get("losses") or []  # (step, loss) of each logged step
        if not curve:
            continue
        offset = base_steps if record["arm"] in study_arms else 0  # arms continue the base
        steps, losses = [offset + step for step, _ in curve], [loss for _, loss in curve]
        window = min(5, len(losses))
        smooth = [statistics.fmean(losses[max(0, i - window + 1): i + 1]) for i in range(len(losses))]
        label = record["arm"] if record["seed"] == results["seeds"][0] else None
        ax.plot(steps, smooth, color=colours.get(record["arm"], "grey"), lw=0.9, alpha=0.8, label=label)
    ax.set_xlabel("optimizer step (arms continue from the base's last step)")
    ax.set_ylabel("training MLM loss (own mixture and masking)")
    ax.set_title("Training loss, mean of the last 5 logged steps; one line per seed", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / "loss.png")
    fig.savefig(written[1], dpi=110)
    plt.close(fig)
    return written


def write_results(results: dict[str, Any], records: list[dict[str, Any]], out: Path) -> list[Path]:
    """`results.json` (the table, the tests, every record's per-seed scores), `results.md` and the plots."""
    out.mkdir(parents=True, exist_ok=True)
    slim = [{k: v for k, v in r.items() if k not in ("mlm", "losses")} | {"values": metric_values(r)}
            for r in records]
    (out / "results.json").write_text(json.dumps({**results, "records": slim}, indent=2))
    (out / "results.md").write_text(markdown(results))
    return [out / "results.json", out / "results.md", *plot(results, records, out)]
