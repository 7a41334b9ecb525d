"""`rexbert study domain-anneal` end to end at test size: real corpora of wcxb text packed by Ray Data, the demo's
base phase and three arms x three seeds trained, an imported transformers checkpoint annealed, held-out MLM and a
Ray Tune downstream task, and the results with their paired tests and plots; a second run reuses every model."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.core.config import load_config
from tests.training.shard_fixtures import DEMO_CONFIG, make_demo_tokens, read_texts, smoke_overrides

pytestmark = [pytest.mark.heavy, pytest.mark.shared_data]


def write_corpora(root: Path, shared_data: Path, corpora: dict[str, str]) -> None:
    """Each tokenize corpus as one Parquet file of wcxb reference texts: e-commerce pages for a source named
    `...ecom`, general pages for the others (as the shard fixtures split them)."""
    texts = read_texts(shared_data)
    for name, folder in corpora.items():
        items = texts["ecom" if "ecom" in name else "general"]
        (root / folder).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"doc_id": [f"{name}-{i}" for i in range(len(items))], "text": items}),
                       root / folder / "part-00000.parquet")


def test_domain_anneal_study_end_to_end(shared_data, tmp_path, monkeypatch):
    from ray_jobs.study import run_study
    from tests.training.test_hf_import import save_hf_checkpoint

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    root = make_demo_tokens(tmp_path / "run", shared_data)  # the tokenizer and the base set (general-128)
    base = load_config(DEMO_CONFIG)
    write_corpora(root, shared_data, base.tokenize.corpora)
    small_sets = {name: {**s.model_dump(), "token_budget": 6144}
                  for name, s in base.study.domain_anneal.token_sets.items()}
    checkpoint = save_hf_checkpoint(tmp_path / "hf", 512, root / "tokenizer", seed=4)
    config = load_config(DEMO_CONFIG, smoke_overrides({
        "run": {"output": str(root)},
        "ray": {"num_cpus": 2},
        "study": {"domain_anneal": {"arm_overrides": {"tokens": 4096, "global_batch_size": 4},
                                    "token_sets": small_sets, "tasks": ["page-type"],
                                    "init_from_hf": str(checkpoint)}},
        "evaluate": {"seeds": [0], "search_space": {"learning_rate": [5.0e-4], "epochs": [1], "batch_size": [8]},
                     "limits": {"train": 16, "eval": 16, "pages_per_class": 1, "pages": 10}},
    }))
    results = run_study(config, progress=False)

    out = root / "study" / "domain-anneal"
    arms = ["ecom-anneal", "general-anneal", "general-continued", "hf-ecom-anneal"]
    assert results["arms"] == arms and results["seeds"] == [0, 1, 2]
    for name in ("study-ecom-128", "study-general-128", "study-mixed-128"):  # packed from the corpora by Ray Data
        manifest = json.loads((root / "tokens" / name / "manifest.json").read_text())
        assert manifest["token_budget"] == 6144 and manifest["seed"] == config.run.seed + 1
    for arm in arms:
        for seed in (0, 1, 2):
            phase = json.loads((out / "arms" / f"{arm}-s{seed}" / arm / "manifest.json").read_text())
            assert phase["tokens"] >= 4096 and phase["steps"] == 4096 // (4 * 128)
            if arm.startswith("hf-"):
                assert phase["init_from"] == str(checkpoint)
            else:  # every arm starts from the one base checkpoint
                assert phase["init_from"].startswith(str(out / "base" / "general" / "checkpoints" / "step-"))
    table = results["table"]
    assert list(table)[:1] == ["general (base)"] and "hf-checkpoint" in table
    for arm in arms:
        for metric in ("mlm-ecom/acc_at_1", "mlm-ecom/loss", "mlm-general/acc_at_5", "page-type"):
            assert table[arm][metric]["n"] == 3 and set(table[arm][metric]["by_seed"]) == {"0", "1", "2"}
    pairs = [(t["a"], t["b"]) for t in results["tests"]]
    assert pairs == [("ecom-anneal", "general-anneal"), ("ecom-anneal", "general-continued"),
                     ("general-anneal", "general-continued"), ("hf-ecom-anneal", "hf-checkpoint")]
    ecom = results["tests"][0]["metrics"]["mlm-ecom/acc_at_1"]
    assert ecom["n_seeds"] == 3 and 50 < ecom["n_texts"] <= results["held_out_texts"]["ecom"]
    assert "page-type" in results["baselines"] and results["verdict"]

    files = out / "results"
    manifest = json.loads((files / "manifest.json").read_text())
    assert manifest["counts"]["input"] == manifest["counts"]["kept"] == 1 + 3 * 4 + 1
    assert all((files / name).is_file() for name in ("results.json", "results.md", "arms.png", "loss.png"))
    assert "| ecom-anneal − general-anneal | mlm-ecom/acc_at_1 |" in (files / "results.md").read_text()
    assert (out / "eval" / "results.json").is_file() and (out / "logs").is_dir()

    trained = {p: p.stat().st_mtime for p in out.glob("arms/*/*/manifest.json")}
    again = run_study(config, progress=False)  # every model is reused: nothing trains again
    assert {p: p.stat().st_mtime for p in out.glob("arms/*/*/manifest.json")} == trained
    assert again["table"]["ecom-anneal"]["mlm-ecom/acc_at_1"] == table["ecom-anneal"]["mlm-ecom/acc_at_1"]

    from infra.report import build_report

    summary = build_report(str(root))  # the run report gives the study a section of its own
    assert summary["sections"]["study"] is True
    assert "study/domain-anneal/results/arms.png" in summary["plots"]
    assert not any(path.startswith("study/") for path in summary["evaluation"])
