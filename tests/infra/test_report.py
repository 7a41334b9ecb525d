"""The run report checks every stage's manifest (one schema, counts that add up) and shows each result."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from infra.cli import app
from infra.core import fs
from infra.core.manifest import StageStats, build_manifest, write_manifest
from infra.report import PIPELINE_STAGES, build_report

# Where each stage writes in a demo-shaped run root (pretraining: one folder per phase).
STAGE_FOLDERS = {
    "sample-data": "sample-data",
    "extract": "ecom/extracted",
    "filter": "ecom/filtered",
    "dedup": "ecom/deduped",
    "corpus": "ecom/corpus",
    "build": "ecom",
    "train-tokenizer": "tokenizer",
    "pack": "tokens/general-128",
    "evaluate": "eval",
}
PHASES = ("general", "context", "decay")


def _stats(input: int = 10) -> StageStats:
    stats = StageStats(input=input, kept=input - 4, duplicates=1)
    stats.drop("short_doc", 2)
    stats.error("bad_gzip")
    return stats


def _write_run(root: str) -> None:
    """A manifest from `build_manifest` for every stage of the pipeline, each phase of pretraining included."""
    for stage, folder in STAGE_FOLDERS.items():
        write_manifest(fs.join(root, folder), build_manifest(stage, _stats(), inputs=["in"], outputs={"path": folder}))
    for phase in PHASES:
        manifest = build_manifest(f"pretrain.{phase}", _stats(20), extra={"final_loss": 3.2})
        write_manifest(fs.join(root, "runs", "demo", phase), manifest)


# --- a run root in the shapes the stages write, built with their own writers where they run without an engine ---


def _trial(task: str, model: str, seed: int, score: float, lr: float) -> Any:
    """One Ray Tune result as a sweep leaves it: the trial's point, its last metrics and its per-epoch frame."""
    import pandas as pd
    from ray.tune import Result

    point = {"task": task, "model": model, "seed": seed, "lr": lr, "epochs": 2}
    history = pd.DataFrame([{"epoch": e, "valid_score": score - 0.1 + 0.1 * e, "test_score": score} for e in (0, 1)])
    metrics = {"config": {"point": point}, "valid_score": score, "test_score": score, "test_acc_at_3": score}
    return Result(metrics=metrics, checkpoint=None, error=None, path="", metrics_dataframe=history)


def write_evaluation(out: str, models: dict[str, str]) -> dict:
    """An evaluation folder from `ray_jobs.evaluate.summarize` over real Tune results and the evaluation's
    own report writer (results.json, results.md, report.html, manifest.json)."""
    from ray_jobs.evaluate import parse_task_spec, summarize
    from training.evaluation.report import write_report

    results = {"models": models, "tasks": {}}
    for i, name in enumerate(("page-type", "fill-mask")):
        task, _ = parse_task_spec(name)
        summaries = {model: summarize(task, [_trial(name, model, seed, 0.4 + 0.1 * i + 0.05 * j + 0.01 * seed, lr)
                                             for seed in (0, 1) for lr in (1e-4, 3e-4)])
                     for j, model in enumerate(models)}
        results["tasks"][name] = {"metric": task.metric, "data": {"source": "generated"},
                                  "sizes": {"train": 40, "valid": 10, "test": 10}, "models": summaries}
    results["seconds"] = 1.5
    write_report(results, out)
    return results


def _stage(root: str, folder: str, stage: str, stats: StageStats, **extra) -> dict:
    manifest = build_manifest(stage, stats, inputs=[root], outputs={"path": fs.join(root, folder)}, extra=extra)
    write_manifest(fs.join(root, folder), manifest)
    return manifest


def write_corpus_build(root: str, name: str = "ecom") -> dict:
    """A generated crawl (`infra.sample_crawl`, its real writer) and one corpus build over it: the four stage
    manifests, the build manifest from `spark_jobs.build_job.chain_funnel`, the corpus Parquet (e-commerce
    pages that are neither defective nor duplicates) and the Spark stats report's plots and summary.json."""
    from infra.sample_crawl.generate import generate_sample_crawl
    from spark_jobs.build_job import chain_funnel
    from spark_jobs.corpus_report import plot_funnel, plot_reasons

    crawl = fs.join(root, "sample-data")
    generate_sample_crawl(crawl, docs=120, docs_per_file=60, progress=False)
    truth = [json.loads(line) for line in (fs.local_path(crawl) / "ground-truth.jsonl").read_text().splitlines()]
    clean = [t for t in truth if t["defect"] is None]
    ecom = [t for t in clean if t["label"] == "ecommerce"]
    kept = [t for t in ecom if t["dup_kind"] is None]
    build = fs.join(root, name)
    stages = {}
    extracted = StageStats(input=len(truth), kept=len(clean))
    for t in truth:
        if t["defect"] is not None:
            extracted.error(t["defect"])
    stages["extracted"] = _stage(build, "extracted", "extract", extracted)
    stages["filtered"] = _stage(build, "filtered", "filter", StageStats(
        input=len(clean), kept=len(ecom), filtered=Counter({"not_ecommerce": len(clean) - len(ecom)})))
    notes = {"num_perm": 112, "theoretical_threshold": 0.7, "candidate_edges": 9, "components": 4,
             "largest_component": 3, "cc_rounds": 2, "docs_per_second": 120.0}
    stages["deduped"] = _stage(build, "deduped", "dedup", StageStats(
        input=len(ecom), kept=len(kept), duplicates=len(ecom) - len(kept)), dedup=notes)
    stages["corpus"] = _stage(build, "corpus", "corpus", StageStats(input=len(kept), kept=len(kept)))
    rows = [{"doc_id": t["record_id"], "url": t["url"], "text": t["title"], "ecom_score": 0.9,
             "category": t["category"], "source": "sample-data"} for t in kept]
    pq.write_table(pa.Table.from_pylist(rows), fs.local_path(build) / "corpus" / "part-00000.parquet")
    chain = chain_funnel(stages)
    inputs = [str(p) for p in sorted(fs.local_path(crawl).glob("*.warc.gz"))]
    manifest = build_manifest("build", chain["total"], inputs=inputs,
                              outputs={k: fs.join(build, k) for k in stages},
                              extra={"funnel": chain["funnel"], "stages": chain["stages"], "classifier": None,
                                     "ecommerce_filter": True, "docs_per_s": 60.0})
    report = fs.local_path(build) / "report"
    report.mkdir()
    plot_funnel(manifest, report)
    plot_reasons(manifest, report)
    categories = Counter(r["category"] or "none" for r in rows)
    (report / "summary.json").write_text(json.dumps({"categories": dict(sorted(categories.items())),
                                                     "funnel": manifest["funnel"]}))
    write_manifest(build, manifest)
    return manifest


def write_full_run(root: str) -> None:
    """Every stage of a demo-shaped run root: crawl and corpus build, tokenizer and packed tokens, three
    pretraining phases (metrics.jsonl through `training.metrics.JsonlSink`, manifests through
    `training.trainer.write_phase_manifest`) and an evaluation of two phase exports."""
    from training.metrics import JsonlSink
    from training.trainer import write_phase_manifest

    corpus = write_corpus_build(root)
    docs = corpus["counts"]["kept"]
    _stage(root, "tokenizer", "train-tokenizer", StageStats(input=docs, kept=docs), corpora=[f"{root}/ecom/corpus"],
           vocab_size=512, bpe_vocab=500, padding_tokens=12, min_frequency=2)
    per_source = {"train": {"ecom": {"sequences": 30, "real": 3700, "pad": 140},
                            "general": {"sequences": 18, "real": 2200, "pad": 104}},
                  "validation": {"ecom": {"sequences": 4, "real": 500, "pad": 12}}}
    splits = {split: {"sequences": sum(c["sequences"] for c in counts.values()),
                      "tokens_real": sum(c["real"] for c in counts.values()),
                      "tokens_pad": sum(c["pad"] for c in counts.values()), "tokens_per_source": counts, "files": []}
              for split, counts in per_source.items()}
    _stage(root, "tokens/general-128", "pack", StageStats(input=docs, kept=docs), seq_len=128, splits=splits)
    previous = None
    for i, phase in enumerate(PHASES):
        phase_dir = fs.join(root, "runs", "demo", phase)
        sink = JsonlSink(fs.local_path(phase_dir) / "metrics.jsonl")
        for step in range(1, 21):
            sink(step, {"loss": 7.0 - 0.5 * i - 0.1 * step, "grad_norm": 1.0, "lr": 1e-3, "batch_size": 8,
                        "real_tokens": 1024 * step, "tokens_per_s": 9000.0 + 300 * step + 1000 * i,
                        "tokens_per_s_per_device": 9000.0 + 300 * step, "tflops": 0.01, "mfu": None,
                        "step_time_s": 0.1, "data_share": 0.05, "peak_memory_gib": 0.5})
        summary = {"phase": phase, "sequences": 160, "steps": 20, "tokens": 20480, "final_loss": 5.0 - 0.5 * i,
                   "tokens_per_s": 15000.0, "export": fs.join(phase_dir, "export"), "init_from": previous,
                   "world_size": 1}
        write_phase_manifest(phase_dir, summary, None, fs.join(root, "tokens", "general-128"), seconds=3.0)
        previous = phase
    write_evaluation(fs.join(root, "eval"), {p: fs.join(root, "runs", "demo", p, "export") for p in PHASES[1:]})


def _rows_by_folder(summary: dict) -> dict[str, dict]:
    return {row["folder"]: row for row in summary["stages"]}


def test_every_stage_and_every_phase_is_checked_and_shown(tmp_path):
    _write_run(str(tmp_path))
    run = tmp_path / "runs" / "demo" / "general"
    (run / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 10 - s}) for s in range(5)))
    write_evaluation(str(tmp_path / "eval"), {"a": str(run / "export")})

    summary = build_report(str(tmp_path))

    assert summary["all_stages_pass"] is True
    rows = _rows_by_folder(summary)
    assert set(rows) == set(STAGE_FOLDERS.values()) | {f"runs/demo/{p}" for p in PHASES}
    assert rows["ecom/filtered"] == {"folder": "ecom/filtered", "stage": "filter", "input": 10, "kept": 6,
                                     "filtered": 2, "duplicates": 1, "errors": 1, "problem": None}
    assert rows["runs/demo/decay"]["stage"] == "pretrain.decay" and rows["runs/demo/decay"]["input"] == 20
    lines = {line["stage"]: line for line in summary["pipeline"]}
    expected = [s for s in PIPELINE_STAGES if s != "pretrain"] + [f"pretrain.{p}" for p in PHASES]
    assert [line["stage"] for line in summary["pipeline"]][-4:] == ["pretrain.context", "pretrain.decay",
                                                                    "pretrain.general", "evaluate"]
    assert set(lines) == set(expected)
    assert all(line["result"] == "ok" and line["manifests"] == 1 for line in lines.values())
    page = (tmp_path / "report" / "index.html").read_text()
    for stage in expected:
        assert f"<td>{stage}</td>" in page
    assert "<th>page-type (macro_f1)</th>" in page and "data:image/png;base64" in page
    assert 'class="failed"' not in page
    assert (tmp_path / "report" / "training-loss.png").stat().st_size > 1000
    assert json.loads((tmp_path / "report" / "report.json").read_text())["all_stages_pass"] is True


def test_counts_that_do_not_add_up_are_a_failed_stage(tmp_path):
    _write_run(str(tmp_path))
    manifest = build_manifest("dedup", _stats())
    manifest["counts"]["kept"] -= 1  # a record lost: write_manifest would refuse, so write the file as is
    fs.write_text(fs.join(str(tmp_path), "ecom", "deduped", "manifest.json"), json.dumps(manifest))

    summary = build_report(str(tmp_path))

    assert summary["all_stages_pass"] is False
    problem = _rows_by_folder(summary)["ecom/deduped"]["problem"]
    assert "input 10 != kept 5" in problem
    assert {line["stage"]: line["result"] for line in summary["pipeline"]}["dedup"] == "FAILED"
    assert '<tr class="failed"><td>dedup</td>' in (tmp_path / "report" / "index.html").read_text()


def test_a_manifest_without_the_schema_is_a_failure_not_skipped(tmp_path):
    _write_run(str(tmp_path))
    old = {"stage": "pack", "seq_len": 128, "splits": {"train": {"sequences": 4}}}  # an old-style manifest
    fs.write_text(fs.join(str(tmp_path), "tokens", "general-128", "manifest.json"), json.dumps(old))
    fs.write_text(fs.join(str(tmp_path), "odd", "manifest.json"), "{not json")
    fs.write_text(fs.join(str(tmp_path), "nameless", "manifest.json"), json.dumps({"counts": {"input": 1}}))

    summary = build_report(str(tmp_path))

    rows = _rows_by_folder(summary)
    assert "not a stage manifest (missing created_utc" in rows["tokens/general-128"]["problem"]
    assert rows["odd"]["problem"].startswith("unreadable manifest")
    assert "missing stage" in rows["nameless"]["problem"]
    results = {line["stage"]: line["result"] for line in summary["pipeline"]}
    assert results["pack"] == "FAILED"
    assert results["? (odd)"] == "FAILED" and results["? (nameless)"] == "FAILED"
    assert summary["all_stages_pass"] is False


def test_a_stage_that_did_not_run_says_so(tmp_path):
    write_manifest(fs.join(str(tmp_path), "ecom", "extracted"), build_manifest("extract", _stats()))
    results = {line["stage"]: line["result"] for line in build_report(str(tmp_path))["pipeline"]}
    assert results["extract"] == "ok"
    assert results["pretrain"] == "not in this run" and results["evaluate"] == "not in this run"


def test_an_unfinished_write_in_a_staging_folder_is_not_a_stage(tmp_path):
    write_manifest(fs.join(str(tmp_path), "ecom", "extracted"), build_manifest("extract", _stats()))
    fs.write_text(fs.join(str(tmp_path), "ecom", "filtered.tmp-1234abcd", "manifest.json"), "{}")
    assert set(_rows_by_folder(build_report(str(tmp_path)))) == {"ecom/extracted"}


def test_report_over_an_s3_run_root(s3_server):
    root = f"{s3_server}/report-run"
    _write_run(root)
    summary = build_report(root)
    assert summary["all_stages_pass"] is True and len(summary["stages"]) == len(STAGE_FOLDERS) + len(PHASES)
    assert "<td>pretrain.context</td>" in fs.read_text(f"{root}/report/index.html")


def test_report_command_exit_codes(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "not found" in result.output

    _write_run(str(tmp_path))
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "12 stage manifests, 0 failed" in result.output

    fs.write_text(fs.join(str(tmp_path), "eval", "manifest.json"), json.dumps({"stage": "evaluate"}))
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "1 failed the check: eval" in result.output


def test_grafana_panels_query_the_gauges_the_pretraining_job_exports(tmp_path):
    """Every training panel's metric is one the Ray metrics sink creates (ray_ + rexbert_pretrain_<key>)."""
    import inspect

    from infra.dashboards import TRAINING_PANELS, write_dashboards
    from training.metrics import MetricsProcessor

    source = inspect.getsource(MetricsProcessor)
    for _, expr, _ in TRAINING_PANELS:
        key = expr.removeprefix("ray_rexbert_pretrain_")
        assert f'"{key}"' in source, f"panel queries {expr}, which the trainer never logs"
    paths = write_dashboards(tmp_path, ["127.0.0.1:8080"])
    dashboard = json.loads(paths[0].read_text())
    assert len(dashboard["panels"]) >= len(TRAINING_PANELS)


def test_a_full_run_shows_each_stage_with_its_own_numbers(tmp_path):
    root = str(tmp_path)
    write_full_run(root)

    summary = build_report(root)

    assert summary["all_stages_pass"] is True
    assert {k for k, shown in summary["sections"].items() if not shown} == {"plots"}  # every plot has a home
    assert {"ecom/report/funnel.png", "ecom/report/reasons.png", "report/training-loss.png"} <= set(summary["plots"])
    page = (tmp_path / "report" / "index.html").read_text()
    # Yield per page type: the crawl's pages of each type against the corpus rows with their URLs.
    truth = [json.loads(line) for line in (tmp_path / "sample-data" / "ground-truth.jsonl").read_text().splitlines()]
    products = [t for t in truth if t["page_type"] == "product"]
    in_corpus = {r["url"] for r in pq.read_table(tmp_path / "ecom" / "corpus" / "part-00000.parquet").to_pylist()}
    kept = sum(t["url"] in in_corpus for t in products)
    assert 0 < kept < len(products)
    assert (f'<td>product</td><td class="num">{len(products)}</td><td class="num">{kept}</td>'
            f"<td>{kept / len(products):.1%}</td>") in page
    assert '<td>tokens/general-128</td><td>train</td><td>general</td><td class="num">18</td>' in page
    assert '<td>runs/demo/decay</td><td>decay</td><td class="num">20</td><td class="num">20,480</td>' in page
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    score = results["tasks"]["page-type"]["models"]["decay"]
    assert f"<td>decay</td><td>{score['test_mean']:.3f} ± {score['test_std']:.3f}</td>" in page
    assert '<a href="../eval/results.json">results.json</a>' in page
    assert '<a href="../runs/demo/general/metrics.jsonl">metrics.jsonl</a>' in page
    assert f"$ rexbert dashboard urls --output {root}" in page and "rexbert dashboard tensorboard" in page


def test_a_section_without_data_says_so(tmp_path):
    write_manifest(fs.join(str(tmp_path), "ecom", "extracted"), build_manifest("extract", _stats()))
    build_report(str(tmp_path))
    page = (tmp_path / "report" / "index.html").read_text()
    for sentence in ("no corpus build in this run", "no dedup stage in this run", "no pretraining in this run",
                     "no evaluation in this run", "no tokenizer or packed token set in this run"):
        assert f'<p class="empty">{sentence}</p>' in page


def test_values_are_escaped_and_baselines_are_rows_of_their_own(tmp_path):
    write_manifest(fs.join(str(tmp_path), "odd"), build_manifest("<b>bold</b>", _stats()))
    run = tmp_path / "runs" / "demo" / "general"
    results = write_evaluation(str(tmp_path / "eval"), {"general": str(run / "export")})
    results["tasks"]["page-type"]["baselines"] = {"majority-class": {"test_mean": 0.125, "test_std": 0.0}}
    from training.evaluation.baselines import compare

    summary = results["tasks"]["page-type"]["models"]["general"]
    summary["vs_baselines"] = compare(summary, results["tasks"]["page-type"]["baselines"])
    (tmp_path / "eval" / "results.json").write_text(json.dumps(results))

    build_report(str(tmp_path))

    page = (tmp_path / "report" / "index.html").read_text()
    assert "<td>&lt;b&gt;bold&lt;/b&gt;</td>" in page and "<b>bold</b>" not in page
    assert '<tr class="baseline"><td>majority-class (baseline)</td><td>0.125 ± 0.000</td><td>-</td>' in page
    margin = summary["test_mean"] - 0.125
    verdict = "yes" if margin > summary["test_std"] else "no"
    assert (f"<td>page-type</td><td>general</td><td>majority-class</td><td>{margin:+.3f}</td><td>{verdict}</td>"
            in page)
