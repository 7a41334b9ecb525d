"""A real Ray Tune sweep: two tiny checkpoints on all five tasks through `run_demo`, table + JSON + HTML."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.shared_data]


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

    # The demo's own caps apply where none is set; fewer pages keep extraction short here.
    config = load_config(None, {"evaluate": {"seeds": [0, 1], "limits": {"pages_per_class": 1, "pages": 12}}})
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
    manifest = json.loads((out / "manifest.json").read_text())
    trials = manifest["trials"]
    assert trials["input"] == trials["completed"] + trials["errored"] == 2 * (4 * 4 + 2)
    assert (out / "config.resolved.yaml").is_file()
    assert (out / "cache" / "page-type" / "texts.jsonl").is_file()


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
