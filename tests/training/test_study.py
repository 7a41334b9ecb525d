"""The domain-anneal study's analysis and config: per-text MLM scores of real models on real pages, the per-arm
table, the paired tests against scipy, the written results, and the config checks (one line each)."""

from __future__ import annotations

import statistics

import pytest
import torch
from scipy import stats

from infra.core.config import ConfigError, EvaluateConfig, load_config
from tests.training.shard_fixtures import DEMO_CONFIG
from training.evaluation import TASKS, TrialParams
from training.evaluation import study as analysis
from training.evaluation.fill_mask import load_mlm, score_texts, summarize_scores


@pytest.fixture(scope="module")
def tiny_models(shared_data, tmp_path_factory):
    from tests.training.tiny_models import build_tiny_pair

    torch.set_num_threads(1)
    return build_tiny_pair(shared_data, tmp_path_factory.mktemp("study-models"), mlm_steps=60)


@pytest.fixture(scope="module")
def records(shared_data, tiny_models):
    """Two "arms" (the random and the MLM-trained tiny model), three "seeds" each (three maskings of the texts),
    scored on 30 held-out texts of each set."""
    texts = {name: items[:30] for name, items in analysis.held_out_texts(shared_data / "pages" / "wcxb-dev").items()}
    out = []
    for arm, folder in zip(("random", "trained"), tiny_models, strict=True):
        model, tokenizer = load_mlm(str(folder))
        for seed in (0, 1, 2):
            mlm = {name: score_texts(model, tokenizer, items, 64, 0.15, torch.Generator().manual_seed(seed))
                   for name, items in texts.items()}
            out.append({"arm": arm, "seed": seed, "model": str(folder), "mlm": mlm, "tasks": {"page-type": 0.1 * seed},
                        "losses": [(10, 3.0), (20, 2.5), (30, 2.0)]})
    return out


@pytest.mark.shared_data
def test_held_out_texts_are_the_fill_mask_test_half_and_general_pages(shared_data, tmp_path):
    texts = analysis.held_out_texts(shared_data / "pages" / "wcxb-dev")
    fill_mask = TASKS["fill-mask"].load(None, EvaluateConfig(), tmp_path)
    assert texts["ecom"] == fill_mask.test
    assert len(texts["general"]) > 200 and not set(texts["general"]) & set(texts["ecom"])


@pytest.mark.shared_data
def test_per_text_scores_add_up_to_the_fill_mask_metrics(shared_data, tiny_models, tmp_path):
    config = EvaluateConfig(max_seq_length=64, mask_probability=0.15)
    data = TASKS["fill-mask"].load(None, config, tmp_path)
    data.valid, data.test = data.valid[:20], data.test[:20]
    metrics = TASKS["fill-mask"].run(str(tiny_models[1]), data, TrialParams(seed=3), config)
    model, tokenizer = load_mlm(str(tiny_models[1]))
    generator = torch.Generator().manual_seed(3)
    valid = summarize_scores(score_texts(model, tokenizer, data.valid, 64, 0.15, generator))
    test = score_texts(model, tokenizer, data.test, 64, 0.15, generator)  # the generator continues as run's does
    assert summarize_scores(test)["acc_at_1"] == metrics["test_acc_at_1"]
    assert valid["acc_at_5"] == metrics["valid_acc_at_5"] and valid["masked_tokens"] == metrics["valid_masked_tokens"]
    assert sum(test["masked"]) == metrics["test_masked_tokens"] > 0
    assert all(h1 <= h5 <= m for h1, h5, m in zip(test["hits_at_1"], test["hits_at_5"], test["masked"], strict=True))
    assert 0 < metrics["test_loss"] < 20


@pytest.mark.shared_data
def test_arm_table_and_paired_tests_match_scipy(records):
    table = analysis.arm_table(records)
    trained = [analysis.metric_values(r)["mlm-ecom/acc_at_1"] for r in records if r["arm"] == "trained"]
    random = [analysis.metric_values(r)["mlm-ecom/acc_at_1"] for r in records if r["arm"] == "random"]
    entry = table["trained"]["mlm-ecom/acc_at_1"]
    assert entry["mean"] == pytest.approx(statistics.fmean(trained))
    assert entry["std"] == pytest.approx(statistics.stdev(trained)) and entry["n"] == 3
    assert table["trained"]["page-type"]["by_seed"] == {"0": 0.0, "1": 0.1, "2": 0.2}

    test = analysis.paired_test(records, "trained", "random")
    ecom = test["mlm-ecom/acc_at_1"]
    assert ecom["diff_mean"] == pytest.approx(statistics.fmean(trained) - statistics.fmean(random))
    assert ecom["t_test_p"] == pytest.approx(stats.ttest_rel(trained, random).pvalue)
    assert ecom["n_texts"] == 30 and ecom["texts_better"] + ecom["texts_worse"] <= 30
    assert 0 < ecom["wilcoxon_p"] <= 1
    assert test["page-type"]["t_test_p"] is None  # equal per-seed values: no spread to test
    assert "wilcoxon_p" not in test["mlm-ecom/loss"]
    assert analysis.comparisons(["a", "b", "base"], "base") == [("a", "b"), ("a", "base"), ("b", "base")]


@pytest.mark.shared_data
def test_results_files_say_what_was_measured(records, tmp_path):
    table = analysis.arm_table(records)
    results = {"setup": "two tiny models.", "seeds": [0, 1, 2], "max_length": 64, "mask_probability": 0.15,
               "metrics": ["mlm-ecom/acc_at_1", "mlm-ecom/loss", "mlm-general/acc_at_1", "page-type"],
               "table": table, "baselines": {"page-type": {"majority": 0.05}},
               "tests": [{"a": "trained", "b": "random",
                          "metrics": analysis.paired_test(records, "trained", "random")}]}
    results["verdict"] = analysis.verdict(results)
    files = analysis.write_results(results, records, tmp_path)
    assert {f.name for f in files} == {"results.json", "results.md", "arms.png", "loss.png"}
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files if f.suffix == ".png")
    text = (tmp_path / "results.md").read_text()
    assert "| trained |" in text and "| trained − random | mlm-ecom/acc_at_1 |" in text
    assert "page-type majority 0.050" in text
    assert results["verdict"][0].startswith("trained is ") and "Wilcoxon over 30 texts" in results["verdict"][0]


def test_study_config_checks_name_the_problem():
    config = load_config(DEMO_CONFIG, {"study": {"domain_anneal": {"arm_overrides": {"tokens": 4096}}}})
    assert {arm.tokens for arm in config.study.domain_anneal.arms.values()} == {4096}
    assert set(config.study.domain_anneal.arms) == {"ecom-anneal", "general-anneal", "general-continued"}
    assert config.study.domain_anneal.arms["ecom-anneal"].mixture == \
        config.study.domain_anneal.token_sets["study-ecom-128"].mixture
    unequal = {"arms": {"a": "study-ecom-anneal.yaml", "b": {**config.study.domain_anneal.arms["general-anneal"]
                                                             .model_dump(), "name": "b", "tokens": 5}}}
    with pytest.raises(ConfigError, match="equal token budgets"):
        load_config(DEMO_CONFIG, {"study": {"domain_anneal": unequal}})
    with pytest.raises(ConfigError, match="baseline 'nope' is not an arm"):
        load_config(DEMO_CONFIG, {"study": {"domain_anneal": {"baseline": "nope"}}})
    with pytest.raises(ConfigError, match="seeds"):
        load_config(DEMO_CONFIG, {"study": {"domain_anneal": {"seeds": [0]}}})


@pytest.mark.shared_data
def test_the_run_report_shows_a_study_with_its_table_tests_and_plots(records, tmp_path):
    from infra.report import build_report

    table = analysis.arm_table(records)
    results = {"setup": "two tiny models.", "seeds": [0, 1, 2], "max_length": 64, "mask_probability": 0.15,
               "metrics": ["mlm-ecom/acc_at_1", "mlm-general/loss", "page-type"], "table": table, "baselines": {},
               "tests": [{"a": "trained", "b": "random",
                          "metrics": analysis.paired_test(records, "trained", "random")}]}
    results["verdict"] = analysis.verdict(results)
    analysis.write_results(results, records, tmp_path / "study" / "domain-anneal" / "results")
    summary = build_report(str(tmp_path))
    assert summary["sections"]["study"] is True
    assert {"study/domain-anneal/results/arms.png", "study/domain-anneal/results/loss.png"} <= set(summary["plots"])
    page = (tmp_path / "report" / "index.html").read_text()
    entry = table["trained"]["mlm-ecom/acc_at_1"]
    assert f"<td>trained</td><td>{entry['mean']:.4f} ± {entry['std']:.4f}</td>" in page
    assert "<td>trained − random</td><td>mlm-ecom/acc_at_1</td>" in page
    assert results["verdict"][0] in page
