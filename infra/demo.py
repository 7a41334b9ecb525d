"""`rexbert demo`: the whole pipeline at tiny scale, from generated crawl data to an evaluation report.

Stages run in order, each writing one folder under the output root:

    sample-data/   synthetic crawl (WARC.gz) with its ground truth        infra.sample_crawl.generate
    classifier/ ecom/ general/   curated corpora (Spark)                   infra.demo_corpus, spark_jobs.build_job
    tokenizer/ tokens/           tokenizer and packed shards (Ray Data)     ray_jobs.tokenize
    runs/demo/                   three pretraining phases (Ray Train)       ray_jobs.pretrain
    eval/                        downstream tasks (Ray Tune)                ray_jobs.evaluate
    report/                      one HTML page over every stage's numbers   infra.report

A stage whose module is not built yet is reported as such, and the stages after it that need its
output are skipped with that reason; nothing pretends to have run.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.core.config import RexbertConfig, write_resolved_config


@dataclass
class DemoStage:
    name: str
    module: str  # the job module providing `run_demo(config, root)`
    needs: tuple[str, ...]  # stages whose output this one reads
    entry: str = "run_demo"  # the function of `module` called as entry(config, root)


STAGES = [
    DemoStage("sample-data", "infra.sample_crawl.generate", ()),
    DemoStage("corpus", "infra.demo_corpus", ("sample-data",), entry="run_corpus_stage"),
    DemoStage("tokenize", "ray_jobs.tokenize", ("corpus",)),
    DemoStage("pretrain", "ray_jobs.pretrain", ("tokenize",)),
    DemoStage("evaluate", "ray_jobs.evaluate", ("pretrain",)),
    DemoStage("report", "infra.report", ()),
]


def _find_entry(stage: DemoStage) -> Callable[[RexbertConfig, Path], dict] | None:
    """The stage's entry function, or None when its module (or the function) does not exist yet."""
    if importlib.util.find_spec(stage.module) is None:
        return None
    module_name, _, function = stage.entry.rpartition(":")
    module = importlib.import_module(module_name or stage.module)
    return getattr(module, function, None)


def _active_spark():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()


def _stop_spark(keep=None) -> None:
    """Free the JVM before the Ray stages (2 cores are better spent on one engine); a session that
    was running before the demo started is not the demo's to stop."""
    active = _active_spark()
    if active is not None and active is not keep:
        active.stop()


def run_demo(config: RexbertConfig, root: Path, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the configured demo stages under `root`; returns (and writes) a per-stage summary."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_resolved_config(config, root)
    results: dict[str, dict[str, Any]] = {}
    ray_started = False
    spark_before = _active_spark()
    try:
        for stage in STAGES:
            if stage.name not in config.demo.stages:
                results[stage.name] = {"status": "skipped", "reason": "not in demo.stages"}
                continue
            missing = [n for n in stage.needs if results.get(n, {}).get("status") not in ("ok", "skipped")]
            if missing:
                results[stage.name] = {"status": "skipped", "reason": f"needs {', '.join(missing)}"}
                echo(f"[demo] {stage.name}: skipped (needs {', '.join(missing)})")
                continue
            run = _find_entry(stage)
            if run is None:
                results[stage.name] = {"status": "not built yet", "module": stage.module}
                echo(f"[demo] {stage.name}: NOT BUILT YET ({stage.module}: {stage.entry} does not exist)")
                continue
            if stage.name in ("tokenize", "pretrain", "evaluate") and not ray_started:
                from ray_jobs.runtime import init_ray

                _stop_spark(keep=spark_before)
                ray_started = init_ray(config.ray)
            echo(f"[demo] {stage.name}: running ({stage.module})")
            start = time.perf_counter()
            summary = run(config, root)
            seconds = round(time.perf_counter() - start, 1)
            results[stage.name] = {"status": "ok", "seconds": seconds, "summary": summary}
            echo(f"[demo] {stage.name}: done in {seconds}s")
    finally:
        _stop_spark(keep=spark_before)
        if ray_started:
            import ray

            ray.shutdown()
    (root / "demo-summary.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def format_summary(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'stage':<12} {'status':<14} seconds"]
    for name, result in results.items():
        seconds = result.get("seconds", "")
        lines.append(f"{name:<12} {result['status']:<14} {seconds}")
    return "\n".join(lines)
