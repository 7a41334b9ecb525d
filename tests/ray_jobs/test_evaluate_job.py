"""A real Ray Tune sweep: two tiny checkpoints on all five tasks through `run_demo`, table + JSON + HTML."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.shared_data]

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "infra" / "configs" / "demo.yaml"


def test_demo_yaml_holds_the_evaluation_settings_the_demo_used_to_set_in_code():
    from infra.core.config import DataLimits, SearchSpace, load_config

    evaluate = load_config(DEMO_CONFIG).evaluate
    assert evaluate.limits == DataLimits(train=None, eval=None, pages_per_class=None, pages=None, texts=None)
    assert evaluate.max_seq_length == 64 and evaluate.class_weights == "balanced"
    assert (evaluate.matching_model, evaluate.matching_threshold) == ("bi-encoder", "valid-f1")
    assert set(evaluate.task_search_space) == {"product-matching", "page-type", "attribute-tagging", "similarity"}
    assert all(len(space.learning_rate) == 1 for space in evaluate.task_search_space.values())
    assert evaluate.search_space == SearchSpace(learning_rate=[1e-4, 5e-4], epochs=[1], batch_size=[16])
    assert evaluate.models == ["runs/{run}/decay/export"]  # the model the demo hands over
    assert evaluate.output == "eval" and len(evaluate.tasks) == 5


@pytest.fixture(scope="module")
def demo_root(shared_data, tmp_path_factory) -> Path:
    """A demo output folder whose pretraining stage left two exports: context (general) and decay (ecom)."""
    import torch

    from tests.training.tiny_models import build_tiny_pair

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("demo")
    general, ecom = build_tiny_pair(shared_data, root / "models", mlm_steps=120)
    shutil.copytree(general, root / "runs/demo/context/export")
    shutil.copytree(ecom, root / "runs/demo/decay/export")
    return root


@pytest.fixture(scope="module")
def demo_results(demo_root, ray_cluster) -> dict:
    from infra.core.config import load_config
    from ray_jobs.evaluate import run_demo

    # The demo's settings (demo.yaml), with less data to keep fine-tuning and extraction short here, both exports
    # (the demo evaluates its final one) and every fine-tuned task on a two-point grid (the demo sweeps one point
    # per task) to test the comparison and the sweep themselves.
    grid = {"learning_rate": [1e-4, 5e-4], "epochs": [1], "batch_size": [16]}
    config = load_config(DEMO_CONFIG, {"run": {"output": str(demo_root)}, "evaluate": {
        "models": ["runs/{run}/context/export", "runs/{run}/decay/export"],
        "seeds": [0, 1], "limits": {"train": 48, "eval": 32, "pages_per_class": 1, "pages": 12},
        "task_search_space": {task: grid for task in ("product-matching", "page-type", "attribute-tagging",
                                                      "similarity")}}})
    summary = run_demo(config, demo_root)
    assert summary["report"].endswith("report.html") and set(summary["scores"]["fill-mask"]) == {"context", "decay"}
    return json.loads((demo_root / "eval" / "results.json").read_text())


def test_sweep_compares_two_models_on_all_five_tasks(demo_results, demo_root):
    assert list(demo_results["models"]) == ["context", "decay"]
    assert set(demo_results["tasks"]) == {"product-matching", "page-type", "attribute-tagging", "similarity",
                                          "fill-mask"}
    for task, entry in demo_results["tasks"].items():
        for model, summary in entry["models"].items():
            assert summary["trials_errored"] == 0, (task, model, summary.get("error"))
            # 2 seeds x 2 learning rates for fine-tuned tasks, 2 seeds for fill-mask
            assert summary["trials_total"] == (2 if task == "fill-mask" else 4)
            assert sorted(summary["seeds"]) == [0, 1] and len(summary["test_scores"]) == 2
            assert summary["test_mean"] == pytest.approx(sum(summary["test_scores"]) / 2)
            if task != "fill-mask":
                assert summary["best_config"]["learning_rate"] in (1e-4, 5e-4)
                chosen = summary["configs"][json.dumps(summary["best_config"], sort_keys=True)]["valid_mean"]
                assert chosen == max(c["valid_mean"] for c in summary["configs"].values())
                assert all(t["history"] and "valid_score" in t["history"][0] for t in summary["trials"])


def test_every_task_reports_its_trivial_baselines_beside_the_models(demo_results, demo_root):
    expected = {"product-matching": {"majority-class", "always-same", "exact-title"}, "page-type": {"majority-class"},
                "attribute-tagging": {"majority-tag"}, "similarity": {"constant", "exact-title"},
                "fill-mask": {"most-frequent-token"}}
    for task, entry in demo_results["tasks"].items():
        assert set(entry["baselines"]) == expected[task]
        for baseline in entry["baselines"].values():
            assert baseline["test_std"] == 0.0 and baseline["rule"]
        strongest = max(b["test_mean"] for b in entry["baselines"].values())
        for summary in entry["models"].values():
            verdict = summary["vs_baselines"]
            assert verdict["margin"] == pytest.approx(summary["test_mean"] - strongest)
            assert verdict["beats"] == (verdict["margin"] > summary["test_std"])
    table = (demo_root / "eval" / "results.md").read_text()
    assert "| exact-title (baseline) |" in table and "## Against the baselines" in table


def test_domain_model_recovers_more_masked_tokens(demo_results):
    fill = demo_results["tasks"]["fill-mask"]["models"]
    assert fill["decay"]["test_extras"]["acc_at_5"]["mean"] > fill["context"]["test_extras"]["acc_at_5"]["mean"]


def test_outputs_table_json_html_and_manifest(demo_results, demo_root):
    out = demo_root / "eval"
    table = (out / "results.md").read_text()
    assert "| context |" in table and "| decay |" in table and "product-matching (f1)" in table
    assert " ± " in table
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    from infra.core.manifest import check_manifest

    manifest = json.loads((out / "manifest.json").read_text())
    counts = check_manifest(manifest)  # input = kept + errors by kind
    assert manifest["stage"] == "evaluate" and counts.input == counts.kept == 2 * (4 * 4 + 2) and not counts.errors
    assert manifest["inputs"] == [str(demo_root / "runs/demo" / m / "export") for m in ("context", "decay")]
    assert manifest["config"]["max_seq_length"] == 64 and manifest["stopped_early_by_asha"] == 0
    assert (out / "config.resolved.yaml").is_file()
    assert (out / "cache" / "page-type" / "texts.jsonl").is_file()


def test_results_are_written_to_an_s3_uri(demo_results, s3_server):
    from infra.core import fs
    from infra.core.manifest import read_manifest
    from training.evaluation.report import write_report

    out = fs.join(s3_server, "eval-results")
    paths = write_report(demo_results, out)
    assert paths["manifest"] == fs.join(out, "manifest.json")
    assert json.loads(fs.read_text(fs.join(out, "results.json")))["tasks"].keys() == demo_results["tasks"].keys()
    assert "| context |" in fs.read_text(fs.join(out, "results.md"))
    assert fs.read_text(fs.join(out, "report.html")).count("data:image/png;base64,") == 5
    assert read_manifest(out)["counts"]["input"] == 2 * (4 * 4 + 2)


def test_a_failing_trial_is_counted_as_an_error_by_kind(demo_root, ray_cluster, tmp_path):
    """A checkpoint without an MLM head passes the driver's encoder check but fails every fill-mask trial:
    the manifest counts those trials as errors of the trial's own exception class."""
    from transformers import AutoModel, AutoTokenizer

    from infra.core.config import load_config
    from infra.core.manifest import read_manifest
    from ray_jobs.evaluate import run_evaluation

    headless = tmp_path / "headless"
    AutoModel.from_pretrained(demo_root / "runs/demo/decay/export").save_pretrained(headless)
    AutoTokenizer.from_pretrained(demo_root / "runs/demo/decay/export").save_pretrained(headless)
    config = load_config(DEMO_CONFIG, {"evaluate": {"seeds": [0, 1], "limits": {"texts": 12}}})
    results = run_evaluation([str(headless)], ["fill-mask"], str(tmp_path / "out"), config)
    assert results["tasks"]["fill-mask"]["models"]["headless"]["trials_errored"] == 2
    counts = read_manifest(tmp_path / "out")["counts"]
    assert counts["input"] == 2 and counts["kept"] == 0 and counts["errors"] == {"ModelFolderError": 2}


@pytest.mark.heavy
def test_asha_stops_weak_trials_early(demo_root, ray_cluster, tmp_path):
    """ASHA with 3-epoch trials, grace 1, reduction 2: some of 8 trials stop before epoch 3."""
    from infra.core.config import load_config
    from ray_jobs.evaluate import run_evaluation

    config = load_config(None, {"evaluate": {
        "seeds": [0, 1, 2, 3], "asha": True, "max_seq_length": 64, "max_concurrent_trials": 2,
        "search_space": {"learning_rate": [1e-5, 5e-4], "epochs": [3], "batch_size": [16]},
        "limits": {"train": 48, "eval": 32}}})
    results = run_evaluation([str(demo_root / "runs/demo/decay/export")], ["product-matching"], str(tmp_path), config)
    summary = results["tasks"]["product-matching"]["models"]["decay"]
    assert summary["trials_total"] == 8 and summary["trials_errored"] == 0
    assert summary["trials_stopped_early"] >= 1
