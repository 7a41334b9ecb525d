"""`rexbert evaluate`: fine-tune and score checkpoints on e-commerce tasks with Ray Tune sweeps.

The driver reads (and caches) each task's data once. Every trial is one point: (task, model,
learning rate, epochs, batch size, seed); the seeds are one more grid axis, so every configuration
runs once per seed. Without ASHA all points form one Tune experiment (trials of every task and model
run side by side as the cluster's resources allow, and warm trial actors are reused); with ASHA each
(task, model) gets its own experiment, so early stopping only compares trials of one task and one
model. Trials report per epoch and take the CPUs / GPUs the config asks for. The best
configuration is chosen on the mean validation score over seeds; its test score is reported as mean
± std (sample std) over the same seeds, beside each task's trivial baselines (majority class, the
exact-title rule, the most frequent token: `training.evaluation.baselines`), computed by the driver on the
same test split, and a flag per model saying whether it beats the strongest one by more than its seed spread.
Results: `results.json`, `results.md`, `report.html` and `manifest.json` under the output folder, next to
`config.resolved.yaml`. The whole folder is a stage output (`infra.core.outputs.staged_output`): the output is
checked before any trial starts, a local run writes into a temporary sibling renamed into place at the end, and
a failed or interrupted evaluation leaves the previous results (or nothing).

The output folder and the model folders may be URIs (`s3://bucket/eval`, `s3://bucket/runs/demo/decay/export`):
results are written through `infra.core.fs`, and a remote model is downloaded once per machine into the local
cache of `training.staging` (by the driver, which checks it, and by trials on other machines). Task data caches
and Tune's storage stay local (the output's staging folder) unless `evaluate.storage_path` names one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler
from tqdm import tqdm

from infra.core import fs
from infra.core.config import EvaluateConfig, RexbertConfig, write_resolved_config
from infra.core.manifest import check_upstream
from infra.core.outputs import check_output, staged_output
from ray_jobs.runtime import ray_runtime
from training.evaluation import (
    ModelFolderError,
    Task,
    TaskData,
    TaskDataError,
    TrialParams,
    check_encoder,
    get_task,
    parse_task_spec,
)
from training.evaluation.baselines import compare as compare_with_baselines
from training.evaluation.pages import PAGE_CACHE
from training.evaluation.report import STAGE, write_report_files
from training.staging import absolute, fetch_dir, local_dir

log = logging.getLogger(__name__)
NEW_TUNE_OUTPUT = "RAY_AIR_NEW_OUTPUT"


def _trial(params: dict[str, Any], *, model_dirs: dict[str, str], data: dict[str, TaskData],
           evaluate_config: dict[str, Any]) -> None:
    """One Tune trial: one task, model, configuration and seed; reports after every epoch."""
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    config = EvaluateConfig.model_validate(evaluate_config)
    torch.set_num_threads(max(1, int(config.cpus_per_trial)))
    point = params["point"]
    task = get_task(point["task"])
    model_dir = str(fetch_dir(model_dirs[point["model"]]))  # a cache hit where the driver downloaded it
    task.run(model_dir, data[task.name], TrialParams.from_dict(point), config, on_epoch=tune.report)


def model_names(models: list[str]) -> dict[str, str]:
    """Short unique display names: the folder name, or its parent's for `.../<run>/export`."""
    names: dict[str, str] = {}
    for model in models:
        folder, parent = fs.name_of(model), fs.name_of(fs.parent_of(model))
        base = parent if folder in ("export", "hf", "final") and parent and parent != folder else folder
        name, i = base, 2
        while name in names.values():
            name, i = f"{base}-{i}", i + 1
        names[model] = name
    return names


def trial_points(task: Task, model: str, config: EvaluateConfig) -> list[dict[str, Any]]:
    """The grid of one task for one model, seeds included (fill-mask: seeds only)."""
    grid = config.space_for(task.name)
    space = [{}]
    if task.finetunes:
        space = [{"learning_rate": lr, "epochs": e, "batch_size": b}
                 for lr in grid.learning_rate for e in grid.epochs for b in grid.batch_size]
    return [{"task": task.name, "model": model, **point, "seed": seed} for point in space for seed in config.seeds]


class TrialProgress(tune.Callback):
    """One progress bar per experiment, a step per finished trial, in place of Tune's status tables.

    Tune pickles its callbacks with the experiment state: the bar (a terminal stream) stays out of the pickle."""

    def __init__(self, name: str, total: int):
        self.name, self.total, self.failed = name, total, 0
        desc = "evaluate" if name == "evaluate" else f"evaluate {name}"
        self.bar = tqdm(total=total, desc=desc, unit="trial", dynamic_ncols=True)

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "total": self.total, "failed": self.failed, "bar": None}

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.failed += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_experiment(name: str, points: list[dict[str, Any]], model_dirs: dict[str, str], data: dict[str, TaskData],
                   config: EvaluateConfig, storage: Path, scheduler=None) -> list:
    """One Tune experiment over explicit points; returns its results (one per trial)."""
    trainable = tune.with_parameters(_trial, model_dirs=model_dirs, data=data,
                                     evaluate_config=config.model_dump(mode="json"))
    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
    progress = TrialProgress(name, len(points))
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={"point": tune.grid_search(points)},
        tune_config=tune.TuneConfig(metric="valid_score", mode="max", scheduler=scheduler, reuse_actors=True,
                                    max_concurrent_trials=config.max_concurrent_trials,
                                    trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}"),
        run_config=tune.RunConfig(name=name, storage_path=config.storage_path or str(storage.resolve()), verbose=0,
                                  callbacks=[progress]),
    )
    # Tune's newer console output prints an experiment banner even when silent; its classic reporter at
    # verbose=0 prints nothing, so the bar above is the whole console output of a sweep.
    saved = os.environ.get(NEW_TUNE_OUTPUT)
    os.environ[NEW_TUNE_OUTPUT] = "0"
    try:
        return list(tuner.fit())
    finally:
        progress.close()
        if saved is None:
            os.environ.pop(NEW_TUNE_OUTPUT, None)
        else:
            os.environ[NEW_TUNE_OUTPUT] = saved


def run_sweeps(tasks: dict[str, tuple[Task, TaskData]], model_dirs: dict[str, str], config: EvaluateConfig,
               storage: Path) -> dict[str, dict[str, Any]]:
    """All trials of all tasks and models; a summary per task and model."""
    data = {name: loaded for name, (_, loaded) in tasks.items()}
    results = []
    if config.asha:
        shared = []
        for name, (task, _) in tasks.items():
            for model in model_dirs:
                if not task.finetunes:
                    shared += trial_points(task, model, config)
                    continue
                asha = ASHAScheduler(time_attr="training_iteration", max_t=max(config.space_for(name).epochs),
                                     grace_period=config.asha_grace_period,
                                     reduction_factor=config.asha_reduction_factor)
                results += run_experiment(f"{name}--{model}", trial_points(task, model, config), model_dirs, data,
                                          config, storage, asha)
        if shared:
            results += run_experiment("no-finetune", shared, model_dirs, data, config, storage)
    else:
        points = [p for task, _ in tasks.values() for model in model_dirs for p in trial_points(task, model, config)]
        results = run_experiment("evaluate", points, model_dirs, data, config, storage)
    return {
        name: {model: summarize(task, [r for r in results if r.config["point"]["task"] == name
                                       and r.config["point"]["model"] == model]) for model in model_dirs}
        for name, (task, _) in tasks.items()
    }


def summarize(task: Task, grid: list) -> dict[str, Any]:
    """Group trials by configuration, choose on mean validation score, report test mean ± std."""
    trials = []
    for result in grid:
        params = dict(result.config["point"])
        history = []
        if result.metrics_dataframe is not None and not result.error:
            frame = result.metrics_dataframe
            keep = [c for c in frame.columns if c.startswith(("valid_", "test_")) or c in ("epoch", "train_loss")]
            history = frame[keep].to_dict("records")
        metrics = result.metrics or {}
        trials.append({
            "config": {k: v for k, v in params.items() if k not in ("seed", "model", "task")},
            "seed": params.get("seed"),
            "valid_score": metrics.get("valid_score"), "test_score": metrics.get("test_score"),
            "epochs_done": len(history), "error": str(result.error).splitlines()[0] if result.error else None,
            "error_kind": error_kind(result.error, metrics),
            "test_extra": {k: v for k, v in metrics.items() if k.startswith("test_") and k != "test_score"},
            "history": history,
        })
    ok = [t for t in trials if t["error"] is None and t["valid_score"] is not None]
    summary: dict[str, Any] = {
        "metric": task.metric, "trials": trials, "trials_total": len(trials), "trials_errored": len(trials) - len(ok),
        "trials_stopped_early": sum(1 for t in ok if t["epochs_done"] < t["config"].get("epochs", 0)),
    }
    if not ok:
        summary["error"] = next((t["error"] for t in trials if t["error"]), "no trial reported a score")
        return summary
    groups: dict[str, list[dict[str, Any]]] = {}
    for t in ok:
        groups.setdefault(json.dumps(t["config"], sort_keys=True), []).append(t)
    best_key = max(groups, key=lambda k: statistics.fmean(t["valid_score"] for t in groups[k]))
    best = groups[best_key]
    tests = [t["test_score"] for t in best]
    extras = {}
    for key in sorted({k for t in best for k in t["test_extra"]}):
        values = [t["test_extra"][key] for t in best if isinstance(t["test_extra"].get(key), int | float)]
        if values:
            extras[key.removeprefix("test_")] = {"mean": statistics.fmean(values), "std": _std(values)}
    summary.update(
        best_config=json.loads(best_key), seeds=[t["seed"] for t in best],
        valid_mean=statistics.fmean(t["valid_score"] for t in best),
        test_mean=statistics.fmean(tests), test_std=_std(tests), test_scores=tests, test_extras=extras,
        configs={k: {"valid_mean": statistics.fmean(t["valid_score"] for t in g), "n": len(g)}
                 for k, g in groups.items()},
    )
    return summary


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def error_kind(error: BaseException | None, metrics: dict[str, Any]) -> str | None:
    """Why a trial has no score, for the manifest's errors: the exception's own class (Ray wraps it), or
    `no_score` for a trial that ended without reporting one; None for a trial that finished."""
    if error is not None:
        return type(getattr(error, "cause", None) or error).__name__
    return None if metrics.get("valid_score") is not None else "no_score"


def local_model(model: str) -> str:
    """A local folder for a model given as a path or URI (remote ones are downloaded to the cache)."""
    try:
        return str(fetch_dir(model).resolve())
    except FileNotFoundError:
        raise ModelFolderError(f"model folder not found: {model}") from None


def run_evaluation(models: list[str], tasks: list[str], output: str, config: RexbertConfig,
                   page_cache: Path | None = None) -> dict[str, Any]:
    """Compare `models` (HF encoder folders, paths or URIs) on `tasks` (`NAME` or `NAME:PATH`); write results
    under `output` (a path or URI).

    `config` is the whole run config: its `evaluate` and `ray` sections are used, and it is written as the
    output's `config.resolved.yaml`. Bad model folders and task data fail here, before any trial starts.
    `page_cache`: a task cache folder written by an earlier stage (the demo's shared-text extraction), reused.
    """
    evaluate = config.evaluate
    tasks = list(tasks) or list(evaluate.tasks)
    if not models:
        raise ValueError("evaluate: give at least one --model")
    out = str(output)
    check_output(out, STAGE, models)  # before any model is loaded or trial started
    upstream = check_upstream(models)
    for model in models:
        check_encoder(local_model(model))
    specs = [parse_task_spec(spec) for spec in tasks]
    names = model_names(models)
    model_dirs = {names[m]: absolute(m) for m in models}
    start = time.perf_counter()
    results: dict[str, Any] = {"models": dict(model_dirs), "tasks": {}}
    with staged_output(out, STAGE, models) as staging:
        staged = local_dir(staging).resolve()  # task caches and Tune's storage: in the output when local
        keep_page_cache(out, staged / "cache", page_cache)
        write_resolved_config(config, staging)
        loaded: dict[str, tuple[Task, TaskData]] = {}
        for task, path in specs:
            try:
                data = task.load(path, evaluate, staged / "cache")
            except UnicodeDecodeError as err:  # a task file in another encoding: name the task and its data
                raise TaskDataError(f"{task.name}: data {path or task.default_data} is not UTF-8 text "
                                    f"(byte {err.start}: {err.reason})") from None
            data.cache_dir = staged / "cache"  # where a trial may keep what another can reuse (run_cosent)
            loaded[task.name] = (task, data)
            log.info("task %s: %s", task.name, data.sizes())
        local_models = {name: local_model(folder) for name, folder in model_dirs.items()}
        baselines = {name: task.baselines(data, evaluate, local_models) for name, (task, data) in loaded.items()}
        with ray_runtime(config.ray):
            summaries = run_sweeps(loaded, model_dirs, evaluate, staged / "tune")
        for name, (task, data) in loaded.items():
            for summary in summaries[name].values():
                summary["vs_baselines"] = compare_with_baselines(summary, baselines[name])
            results["tasks"][name] = {"metric": task.metric, "data": data.info, "sizes": data.sizes(),
                                      "baselines": baselines[name], "models": summaries[name]}
        results["seconds"] = time.perf_counter() - start
        write_report_files(results, staging, config=evaluate, upstream=upstream)
    return results


def keep_page_cache(out: str, cache: Path, extra: Path | None = None) -> None:
    """Carry a previous local evaluation's task cache (extracted page texts, the slow part) into the new one,
    then any file of `extra` (another stage's cache of the same layout) it lacks. A remote output's cache is
    already local and kept (`training.staging.local_dir`)."""
    previous = local_dir(out) / "cache"
    if not fs.is_remote(out) and previous.is_dir() and not cache.exists():
        shutil.copytree(previous, cache)
    if extra is not None and extra.is_dir():
        for source in (f for f in extra.rglob("*") if f.is_file()):
            target = cache / source.relative_to(extra)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


def run_demo(config: RexbertConfig, root: str | Path) -> dict[str, Any]:
    """Demo stage: compare `evaluate.models` (demo.yaml: the general-domain context export and the
    domain-specialised decay export) on `evaluate.tasks`, into `evaluate.output` under `root` (= run.output)."""
    root = str(root)
    models = [fs.under(root, model.format(run=config.run.name)) for model in config.evaluate.models]
    out = fs.under(root, config.evaluate.output)
    results = run_evaluation(models, [], out, config, page_cache=Path(fs.local_path(root)) / PAGE_CACHE
                             if not fs.is_remote(root) else None)
    return compact_summary(results, out)


def compact_summary(results: dict[str, Any], out: str) -> dict[str, Any]:
    """What the demo summary keeps: test mean ± std per task and model, and where the report is."""
    return {
        "output": out, "report": fs.join(out, "report.html"), "seconds": round(results["seconds"], 1),
        "scores": {task: {model: {k: s.get(k) for k in ("test_mean", "test_std", "best_config", "error",
                                                         "vs_baselines") if k in s}
                          for model, s in entry["models"].items()}
                   for task, entry in results["tasks"].items()},
        "baselines": {task: {name: b["test_mean"] for name, b in entry.get("baselines", {}).items()}
                      for task, entry in results["tasks"].items()},
    }
