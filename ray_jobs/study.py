"""`rexbert study domain-anneal`: the paper's ablation, annealing on e-commerce text against general text, at any
size the config names (`study.domain_anneal`; the defaults are the demo's CPU setting, about 30 minutes on 2 cores).

    1. token sets    every arm's set (`study.domain_anneal.token_sets`) packed with the run's tokenizer on Ray Data,
                     unless `<run.output>/tokens/<name>` already holds it with the same length and mixture
    2. base          the `base` phase of `pretrain.phases` (the demo's general phase), trained once, seed run.seed
    3. arms          from the base's final checkpoint (weights and optimizer moments), every arm once per seed: the
                     e-commerce anneal, the same anneal on general text, and the compute-matched continuation of the
                     general phase; all with one token budget. With `init_from_hf`, also that checkpoint annealed
                     with the `hf_arm` phase (and the checkpoint itself as a model)
    4. scoring       every model's held-out MLM (`training.evaluation.study`: e-commerce and general wcxb-dev text,
                     loss and acc@1/5, the same masked positions for every model) and the downstream tasks
                     (`ray_jobs.evaluate.run_evaluation`, Ray Tune, into `<study>/eval/`)
    5. results       `<study>/results/`: results.json, results.md (mean ± std over seeds, paired tests), arms.png,
                     loss.png, manifest.json

Every model trains in one plain process (`training.trainer.run_phase_local`: on the GPU when there is one, else the
CPU), so arms are compared at equal cost and speed. A phase folder that finished (its manifest and export are there)
is reused: a study stopped half way continues where it was. The study folder is local. Folders:

    <study>/base/<base>/        the base phase (checkpoints, export, metrics.jsonl, manifest.json)
    <study>/arms/<arm>-s<seed>/<arm>/
    <study>/eval/               the downstream evaluation (its own report)
    <study>/results/
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from infra.core import fs
from infra.core.config import PhaseConfig, PretrainConfig, RexbertConfig, resolve_data_path, write_resolved_config
from infra.core.manifest import InputError, StageStats, build_manifest, write_manifest
from infra.core.outputs import staged_output
from infra.core.paths import shared_data_dir

log = logging.getLogger(__name__)
STAGE = "study.domain-anneal"


def study_dir(config: RexbertConfig) -> str:
    return fs.under(config.run.output, config.study.domain_anneal.output)


def _set_matches(folder: str, seq_len: int, mixture: dict[str, float], token_budget: int | None) -> bool:
    """`folder` holds a finished token set of this length, mixture and budget."""
    path = fs.join(folder, "manifest.json")
    if not fs.is_file(path):
        return False
    from training.trainer import manifest_weights

    manifest = json.loads(fs.read_text(path))
    return (manifest.get("seq_len") == seq_len and manifest.get("token_budget") == token_budget
            and manifest_weights(manifest) == {k: float(v) for k, v in mixture.items()})


def ensure_token_sets(config: RexbertConfig, tokenizer: str, suffix: str = "") -> dict[str, str]:
    """Every study set under `<run.output>/tokens/<name><suffix>`, packed with `tokenizer` unless already there."""
    from ray_jobs.tokenize import pack

    study, root = config.study.domain_anneal, config.run.output
    corpora = {name: fs.under(root, path) for name, path in config.tokenize.corpora.items()}
    folders, todo = {}, []
    for name, token_set in study.token_sets.items():
        folder = fs.join(root, "tokens", name + suffix)
        folders[name] = folder
        unknown = sorted(set(token_set.mixture) - set(corpora))
        if unknown:
            raise InputError(f"study token set {name!r} mixes {unknown}, which are not tokenize.corpora "
                             f"({sorted(corpora)})")
        budget = token_set.token_budget or config.tokenize.token_budget
        if not _set_matches(folder, token_set.seq_len, token_set.mixture, budget):
            todo.append((name, token_set, folder, budget))
    for name, token_set, folder, budget in todo:
        log.info("study: packing token set %s into %s", name, folder)
        pack([(source, corpora[source], weight) for source, weight in token_set.mixture.items()],
             tokenizer, token_set.seq_len, folder, seed=config.run.seed + 1,
             validation_fraction=config.tokenize.validation_fraction,
             token_budget=budget,
             batch_size=config.tokenize.batch_size, rows_per_shard=config.tokenize.rows_per_shard, config=config)
    return folders


def _finished(phase_dir: str) -> dict[str, Any] | None:
    """The summary of a phase folder that finished (manifest and export written), else None."""
    manifest_path = fs.join(phase_dir, "manifest.json")
    if not fs.is_file(manifest_path):
        return None
    manifest = json.loads(fs.read_text(manifest_path))
    export = manifest.get("export")
    if not export or not fs.is_file(fs.join(export, "config.json")):
        return None
    return manifest


def train_phase(pretrain: PretrainConfig, phase: PhaseConfig, run_dir: str, data_dir: str, seed: int,
                init_from: str | None) -> dict[str, Any]:
    """One phase in one process, or the record of the same phase already finished in `run_dir`."""
    from training.trainer import run_phase_local

    phase_dir = fs.join(run_dir, phase.name)
    done = _finished(phase_dir)
    if done is not None:
        log.info("study: %s already trained, reused", phase_dir)
    else:
        if fs.exists(phase_dir):  # an interrupted run: start the phase again (its plan depends on nothing else)
            fs.delete_dir(phase_dir)
        run_phase_local(pretrain, phase, run_dir, data_dir, seed=seed, init_from=init_from)
        done = _finished(phase_dir)
    metrics = fs.join(phase_dir, "metrics.jsonl")
    rows = [json.loads(line) for line in fs.read_text(metrics).splitlines() if line.strip()] \
        if fs.is_file(metrics) else []
    return {"export": done["export"], "steps": done["steps"], "tokens": done["tokens"],
            "final_loss": done["final_loss"], "seconds": done.get("seconds"), "phase_dir": phase_dir,
            "losses": [(row["step"], row["loss"]) for row in rows if "loss" in row]}


def _hf_pretrain(pretrain: PretrainConfig) -> PretrainConfig:
    """The pretrain section for an imported checkpoint: its architecture replaces the configured one."""
    from training.trainer import ARCHITECTURE_FIELDS

    keep = {k: v for k, v in pretrain.model.overrides.items() if k not in ARCHITECTURE_FIELDS}
    return pretrain.model_copy(update={"model": pretrain.model.model_copy(update={"overrides": keep})})


def _same_tokenizer(checkpoint: Path, tokenizer_dir: str) -> bool:
    from training.tokenizer import load_tokenizer

    try:
        return load_tokenizer(checkpoint).get_vocab() == load_tokenizer(tokenizer_dir).get_vocab()
    except (OSError, ValueError):
        return False


def run_study(config: RexbertConfig, progress: bool = True) -> dict[str, Any]:
    """The whole study (see the module docstring); returns the results dict written to results.json. Ray's own
    logs (packing, the Tune sweeps) go to `<study>/logs/`, not the console."""
    from ray_jobs.runtime import ray_runtime

    out = study_dir(config)
    if fs.is_remote(out):
        raise InputError(f"study.domain_anneal.output {out} is remote: the study writes a local folder")
    with ray_runtime(config.ray, log_dir=Path(fs.local_path(out)) / "logs"):
        return _run_study(config, progress)


def _run_study(config: RexbertConfig, progress: bool) -> dict[str, Any]:
    from ray_jobs.evaluate import run_evaluation
    from training.checkpoint import latest_checkpoint
    from training.evaluation import study as analysis
    from training.staging import absolute

    started = time.perf_counter()
    study, pretrain, root = config.study.domain_anneal, config.pretrain, config.run.output
    out = study_dir(config)
    if study.base not in pretrain.phases:
        raise InputError(f"study.domain_anneal.base {study.base!r} is not a pretrain phase ({list(pretrain.phases)})")
    base_phase = pretrain.phases[study.base]
    base_data = resolve_data_path(pretrain, base_phase, root)
    tokenizer = fs.under(root, config.tokenize.tokenizer)
    for what, path in (("base token set", fs.join(base_data, "manifest.json")),
                       ("tokenizer", fs.join(tokenizer, "tokenizer.json"))):
        if not fs.exists(path):
            raise InputError(f"study: {what} not found at {fs.parent_of(path)}: run the tokenize stage first "
                             "(`rexbert demo --demo.stages='[sample-data,corpus,tokenize]'` or `rexbert tokenize`)")
    wcxb = shared_data_dir() / "pages" / "wcxb-dev"
    if not (wcxb / "labels.csv").is_file():
        raise InputError(f"study: the held-out MLM pages are not at {wcxb} (../shared/data)")
    fs.makedirs(out)
    write_resolved_config(config, out)
    sets = ensure_token_sets(config, tokenizer)

    plan = [("base", None)] + [(arm, seed) for seed in study.seeds for arm in study.arms]
    hf_arm = None
    if study.init_from_hf:
        from training.hf_import import resolve_checkpoint

        checkpoint = resolve_checkpoint(study.init_from_hf)
        hf_arm = f"hf-{study.hf_arm}"
        hf_sets = sets if _same_tokenizer(checkpoint, tokenizer) else ensure_token_sets(config, str(checkpoint),
                                                                                         suffix="-hf")
        plan += [(hf_arm, seed) for seed in study.seeds]
    bar = tqdm(total=len(plan), desc="study: train", unit="model", disable=not progress)
    base = train_phase(pretrain, base_phase, fs.join(out, "base"), base_data, config.run.seed, None)
    bar.update()
    base_checkpoint = latest_checkpoint(fs.join(base["phase_dir"], "checkpoints"))
    trained: list[dict[str, Any]] = []
    for arm, seed in plan[1:]:
        if arm == hf_arm:
            phase = study.arms[study.hf_arm].model_copy(update={"name": arm, "init_from": None,
                                                                 "init_from_hf": study.init_from_hf})
            data_dir, arm_pretrain, start = hf_sets[phase.data], _hf_pretrain(pretrain), None
        else:
            phase = study.arms[arm]
            data_dir, arm_pretrain, start = sets.get(phase.data) or resolve_data_path(pretrain, phase, root), \
                pretrain, base_checkpoint
        bar.set_postfix_str(f"{arm} seed {seed}")
        result = train_phase(arm_pretrain, phase, fs.join(out, "arms", f"{arm}-s{seed}"), data_dir, seed, start)
        trained.append({"arm": arm, "seed": seed, **result})
        bar.update()
    bar.close()
    base_name = f"{study.base} (base)"
    models = [{"arm": base_name, "seed": config.run.seed, **base}] + trained
    if study.init_from_hf:
        models.append({"arm": "hf-checkpoint", "seed": config.run.seed, "export": str(checkpoint), "losses": []})

    texts = analysis.held_out_texts(wcxb)
    for model in tqdm(models, desc="study: held-out MLM", unit="model", disable=not progress):
        model["mlm"] = analysis.score_model(model["export"], texts, config.evaluate.max_seq_length,
                                            config.evaluate.mask_probability)

    tasks = study.tasks if study.tasks is not None else [t for t in config.evaluate.tasks if t != "fill-mask"]
    baselines: dict[str, dict[str, float]] = {}
    if tasks:
        evaluation = run_evaluation([m["export"] for m in models], tasks, fs.join(out, "eval"), config)
        by_dir = {folder: name for name, folder in evaluation["models"].items()}
        for model in models:
            name = by_dir[absolute(model["export"])]
            model["tasks"] = {task: entry["models"].get(name, {}).get("test_mean")
                              for task, entry in evaluation["tasks"].items()}
        baselines = {task: {n: b["test_mean"] for n, b in entry.get("baselines", {}).items()}
                     for task, entry in evaluation["tasks"].items()}

    arms = [*study.arms, *([hf_arm] if hf_arm else [])]
    records = [m for m in models if m["arm"] in arms]
    table = analysis.arm_table([m for m in models if m["arm"] not in arms] + records)  # the base first
    metrics = [f"mlm-{s}/{m}" for s in analysis.MLM_SETS for m in analysis.MLM_METRICS] + list(tasks)
    pairs = analysis.comparisons(list(study.arms), study.baseline)
    tests = [{"a": a, "b": b, "metrics": analysis.paired_test(records, a, b)} for a, b in pairs]
    if hf_arm:  # the imported checkpoint's anneal against the checkpoint: every seed pairs with the same model
        hf_records = records + [{**m, "seed": s} for m in models if m["arm"] == "hf-checkpoint" for s in study.seeds]
        tests.append({"a": hf_arm, "b": "hf-checkpoint", "metrics": analysis.paired_test(hf_records, hf_arm,
                                                                                          "hf-checkpoint")})
    budget = next(iter(study.arms.values())).tokens
    results: dict[str, Any] = {
        "setup": (f"base phase {study.base!r} ({base['tokens']:,} tokens, seed {config.run.seed}), then every arm "
                  f"{budget:,} tokens from its checkpoint; model {pretrain.model.preset} "
                  f"{pretrain.model.overrides or ''}; downstream: {', '.join(tasks) or 'none'} "
                  f"(evaluate limits {config.evaluate.limits.model_dump(exclude_none=True)})."),
        "seeds": list(study.seeds), "arms": arms, "baseline": study.baseline, "base": study.base,
        "max_length": config.evaluate.max_seq_length, "mask_probability": config.evaluate.mask_probability,
        "held_out_texts": {name: len(items) for name, items in texts.items()},
        "metrics": metrics, "table": table, "tests": tests, "baselines": baselines,
        "phases": {name: arm.model_dump(mode="json", exclude_none=True) for name, arm in study.arms.items()},
        "token_sets": {name: s.model_dump(mode="json") for name, s in study.token_sets.items()},
    }
    results["verdict"] = analysis.verdict(results)
    results["seconds"] = round(time.perf_counter() - started, 1)  # this run (a model trained before is reused)
    results["train_seconds"] = round(sum(m.get("seconds") or 0 for m in models), 1)  # every model, when trained
    with staged_output(fs.join(out, "results"), STAGE, [m["export"] for m in models]) as staging:
        files = analysis.write_results(results, models, Path(fs.local_path(staging)))
        manifest = build_manifest(
            STAGE, StageStats(input=len(models), kept=len(models), seconds=results["seconds"]), config=config,
            inputs=[m["export"] for m in models], outputs={p.name: fs.join(out, "results", p.name) for p in files},
            extra={"arms": arms, "seeds": list(study.seeds), "models": len(models)})
        write_manifest(staging, manifest)
    return results
