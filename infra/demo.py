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

The console shows one line per stage and the stages' own progress bars; Spark's and Ray's logs go to
`logs/` under the root (`spark.log`, `ray.log`, `ray/` with the Ray session's worker logs), see
`spark_jobs.session` and `ray_jobs.runtime`. The run ends with where every output lives (`output_locations`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.core.config import RexbertConfig, write_resolved_config

LOG_DIR = "logs"
# What a person looks for after a demo run, relative to the root (globs; only those that exist are listed).
OUTPUTS = (
    ("generated crawl (WARC) and its ground truth", "sample-data"),
    ("e-commerce page classifier", "classifier/model.bin"),
    ("curated corpora (Parquet), one per demo.corpora", "*/corpus"),
    ("evaluation overlap removed from pretraining text", "hygiene.json"),
    ("pretraining text from the shared data", "shared-text/*"),
    ("tokenizer", "tokenizer"),
    ("packed token sets", "tokens/*"),
    ("pretrained checkpoints (HF folders)", "runs/*/*/export"),
    ("pretraining metrics", "runs/*/*/metrics.jsonl"),
    ("evaluation report", "eval/report.html"),
    ("run report", "report/index.html"),
    ("Spark logs", f"{LOG_DIR}/spark.log"),
    ("Ray logs (driver; workers under ray/)", f"{LOG_DIR}/ray.log"),
    ("stage summary", "demo-summary.json"),
)


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


class PhaseProgress:
    """A progress bar per pretraining phase, drawn by the driver from the phases' `metrics.jsonl` (the Ray Train
    workers' own output stays in the Ray logs): steps logged so far and the last loss. A thread polls the files
    every `interval` seconds while the block runs."""

    def __init__(self, runs: Path, interval: float = 2.0):
        self.runs, self.interval = runs, interval
        self.bars: dict[Path, Any] = {}
        self.read: dict[Path, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="phase-progress", daemon=True)

    def __enter__(self) -> PhaseProgress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.poll()
        for bar in self.bars.values():
            bar.close()

    def _watch(self) -> None:
        while not self.stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        from tqdm import tqdm

        for path in sorted(self.runs.glob("*/metrics.jsonl")):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            offset = self.read.get(path, 0) if len(data) >= self.read.get(path, 0) else 0  # rewritten: start over
            complete = data[offset:].rpartition(b"\n")[0]  # a line still being written waits for the next poll
            self.read[path] = offset + len(complete) + (1 if complete else 0)
            rows = []
            for line in complete.decode("utf-8", "replace").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    rows.append(json.loads(line))
            rows = [r for r in rows if isinstance(r, dict) and isinstance(r.get("step"), int)]
            if not rows:
                continue
            bar = self.bars.get(path)
            if bar is None:
                bar = self.bars[path] = tqdm(desc=f"pretrain {path.parent.name}", unit="step", dynamic_ncols=True)
            bar.update(max(0, int(rows[-1].get("step", 0)) - bar.n))
            if isinstance(rows[-1].get("loss"), int | float):
                bar.set_postfix(loss=f"{rows[-1]['loss']:.3f}")


def run_demo(config: RexbertConfig, root: Path, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the configured demo stages under `root`; returns (and writes) a per-stage summary."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_resolved_config(config, root)
    results: dict[str, dict[str, Any]] = {}
    log_dir = root / LOG_DIR
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
                ray_started = init_ray(config.ray, log_dir=log_dir)
            echo(f"[demo] {stage.name}: running ({stage.module})")
            start = time.perf_counter()
            runs = root / "runs" / config.run.name
            with PhaseProgress(runs) if stage.name == "pretrain" else contextlib.nullcontext():
                summary = run(config, root)
            seconds = round(time.perf_counter() - start, 1)
            results[stage.name] = {"status": "ok", "seconds": seconds, "summary": summary}
            echo(f"[demo] {stage.name}: done in {seconds}s")
    finally:
        _stop_spark(keep=spark_before)
        if ray_started:
            from ray_jobs.runtime import shutdown_ray

            shutdown_ray(log_dir)
    (root / "demo-summary.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def output_locations(root: str | Path) -> list[tuple[str, Path]]:
    """(what, path) for every demo output that exists under `root`, in pipeline order."""
    root = Path(root)
    found = []
    for what, pattern in OUTPUTS:
        for path in sorted(root.glob(pattern)):
            if path.exists() and not any(".tmp-" in part or ".old-" in part for part in path.parts):
                found.append((what, path))
    return found


def format_summary(results: dict[str, dict[str, Any]], root: str | Path | None = None) -> str:
    """The stage table and, given the root, where each output lives."""
    lines = [f"{'stage':<12} {'status':<14} seconds"]
    for name, result in results.items():
        seconds = result.get("seconds", "")
        lines.append(f"{name:<12} {result['status']:<14} {seconds}")
    if root is not None:
        locations = output_locations(root)
        width = max((len(str(path)) for _, path in locations), default=0)
        lines += ["", f"outputs under {root}:"]
        lines += [f"  {str(path):<{width}}  {what}" for what, path in locations]
        lines.append(f"  dashboards: rexbert dashboard urls --output {root}")
    return "\n".join(lines)
