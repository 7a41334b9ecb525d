"""Task readers on the real shared data, their error messages, and each task's metric on tiny models."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch

from infra.core.config import DataLimits, EvaluateConfig
from training.evaluation import TASKS, ModelFolderError, TaskDataError, TrialParams, check_encoder, parse_task_spec
from training.evaluation.attribute_tagging import match_spans
from training.evaluation.similarity import cosent_loss, read_esci_file

pytestmark = pytest.mark.shared_data

QUICK = EvaluateConfig(max_seq_length=64, limits=DataLimits(train=32, eval=24, pages_per_class=1, pages=12, texts=40))


@pytest.fixture(scope="module")
def tiny_models(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    """(general, ecom): same tokenizer, random init vs. briefly MLM-trained on offer titles."""
    from tests.training.tiny_models import build_tiny_pair

    torch.set_num_threads(1)
    return build_tiny_pair(shared_data, tmp_path_factory.mktemp("tiny-models"), mlm_steps=120)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("task-cache")


def test_product_matching_reads_wdc_computers_with_both_labels(shared_data, cache_dir):
    data = TASKS["product-matching"].load(None, QUICK, cache_dir)
    assert data.info["read"] == {"train": 2231, "valid": 536, "test": 1098}
    assert data.sizes() == {"train": 32, "valid": 24, "test": 24}
    assert {e.label for e in data.train} == {0, 1}
    assert not data.train[0].text.startswith("COL")


def test_product_matching_path_selects_category(shared_data, cache_dir):
    task, path = parse_task_spec(f"product-matching:{shared_data}/eval/wdc-products/cameras")
    assert task.load(path, QUICK, cache_dir).info["read"] == {"train": 1409, "valid": 392, "test": 1057}


def test_malformed_wdc_line_names_file_and_line(tmp_path, cache_dir):
    good = "COL title VAL a\tCOL title VAL b\t1\nCOL title VAL c\tCOL title VAL d\t0\n"
    for name in ("valid.txt.small", "test.txt"):
        (tmp_path / name).write_text(good)
    (tmp_path / "train.txt.small").write_text(good + "COL title VAL only one field\n")
    with pytest.raises(TaskDataError, match=r"train\.txt\.small:3: expected 3 tab-separated fields"):
        TASKS["product-matching"].load(str(tmp_path), QUICK, cache_dir)
    (tmp_path / "train.txt.small").write_text(good + "COL title VAL x\tCOL title VAL y\t2\n")
    with pytest.raises(TaskDataError, match=r"train\.txt\.small:3: label '2' does not fit product-matching"):
        TASKS["product-matching"].load(str(tmp_path), QUICK, cache_dir)


def test_missing_task_file_is_named(tmp_path, cache_dir):
    with pytest.raises(TaskDataError, match="train.txt.small"):
        (tmp_path / "valid.txt.small").write_text("")
        TASKS["product-matching"].load(str(tmp_path), QUICK, cache_dir)


def test_page_type_split_keeps_each_domain_on_one_side(shared_data, cache_dir):
    data = TASKS["page-type"].load(None, QUICK, cache_dir)
    assert len(data.info["labels"]) == 7 and data.info["no_domain"] == 3
    assert all(n == 1 for split in data.info["per_class"].values() for n in split.values())
    assert all(e.text for e in data.train + data.valid + data.test)
    # domains behind the chosen pages: recompute from labels.csv and check disjointness
    from training.evaluation.base import split_of
    from training.evaluation.page_type import read_labels

    sides: dict[str, set[str]] = {}
    for row in read_labels(shared_data / "pages/wcxb-dev/labels.csv"):
        sides.setdefault(row["split_key"], set()).add(split_of(row["split_key"]))
    assert all(len(s) == 1 for s in sides.values())


def test_page_type_bad_labels_file_names_file_and_line(tmp_path, cache_dir):
    (tmp_path / "labels.csv").write_text("file_id,page_type,url\n0001,product,https://a.com/x\n")
    with pytest.raises(TaskDataError, match=r"labels\.csv:1: header lacks column\(s\) domain"):
        TASKS["page-type"].load(str(tmp_path), QUICK, cache_dir)
    (tmp_path / "labels.csv").write_text("file_id,page_type,domain,url\n0001,product,a.com,u\n0002,,b.com,u\n")
    with pytest.raises(TaskDataError, match=r"labels\.csv:3: empty field\(s\) page_type"):
        TASKS["page-type"].load(str(tmp_path), QUICK, cache_dir)


def test_span_rule_is_exact_first_occurrence_and_counts_misses():
    from collections import Counter

    counts: Counter = Counter()
    text = "Acme Drill 12V, price 19.99 EUR (was 24.99); SKU AB-1; price 19.99"
    record = {"price": ["19.99"], "sku": ["AB-1"], "brand": ["ACME"], "mpn": ["99"], "gtin": [""]}
    spans = match_spans(text, record, ["price", "sku", "brand", "mpn", "gtin"], counts)
    assert spans == [(22, 27, "price"), (49, 53, "sku")]
    assert counts == Counter({"found/price": 1, "found/sku": 1, "not_found/brand": 1, "overlapping/mpn": 1,
                              "not_a_string/gtin": 1})


def test_attribute_tagging_counts_add_up_on_zyte_pages(shared_data, cache_dir):
    data = TASKS["attribute-tagging"].load(None, QUICK, cache_dir)
    truth = json.loads((shared_data / "pages/zyte-products/ground-truth.json").read_text())
    keys = sorted(truth)[:12]
    values = sum(len(truth[k].get(a, [])) for k in keys for a in QUICK.attributes)
    assert sum(data.info["matching"].values()) == values
    assert "price" in data.info["attributes"] and data.info["pages"] == 12
    assert sum(len(p.spans) for p in data.train + data.valid + data.test) == sum(
        v for k, v in data.info["matching"].items() if k.startswith("found/"))


def test_esci_file_maps_labels_and_names_bad_line(tmp_path):
    path = tmp_path / "esci.tsv"
    path.write_text("query\tproduct_title\tesci_label\nusb cable\tUSB-C cable 1m\tE\nusb cable\tHDMI cable\tI\n")
    assert [p.score for p in read_esci_file(path)] == [1.0, 0.0]
    path.write_text(path.read_text() + "usb cable\tcharger\tX\n")
    with pytest.raises(TaskDataError, match=r"esci\.tsv:4: esci_label 'X' does not fit similarity"):
        read_esci_file(path)


def test_fill_mask_reads_ecommerce_reference_texts(shared_data, cache_dir):
    data = TASKS["fill-mask"].load(None, EvaluateConfig(), cache_dir)
    assert data.info["texts"] > 150 and not data.train and data.valid and data.test


def test_cosent_loss_prefers_cosines_ordered_like_labels():
    labels = torch.tensor([1.0, 0.66, 0.0])
    assert cosent_loss(torch.tensor([0.9, 0.5, 0.1]), labels) < cosent_loss(torch.tensor([0.1, 0.5, 0.9]), labels)


def test_not_an_encoder_is_a_clear_error(tmp_path, tiny_models):
    with pytest.raises(ModelFolderError, match="no config.json"):
        check_encoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelFolderError, match="'gpt2' is not a bidirectional encoder"):
        check_encoder(tmp_path)
    assert check_encoder(tiny_models[1])["model_type"] == "modernbert"


def test_fill_mask_needs_an_mlm_head(tmp_path, tiny_models):
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(str(tiny_models[0])).save_pretrained(str(tmp_path))
    AutoTokenizer.from_pretrained(str(tiny_models[0])).save_pretrained(str(tmp_path))
    data = TASKS["fill-mask"].load(None, QUICK, tmp_path / "cache")
    with pytest.raises(ModelFolderError, match="no MLM head"):
        TASKS["fill-mask"].run(str(tmp_path), data, TrialParams(), QUICK)


@pytest.mark.parametrize("name", ["product-matching", "page-type", "attribute-tagging", "similarity"])
def test_finetuned_metric_is_reported_per_epoch(name, tiny_models, cache_dir):
    task = TASKS[name]
    data = task.load(None, QUICK, cache_dir)
    reports: list[dict] = []
    final = task.run(str(tiny_models[1]), data, TrialParams(learning_rate=5e-4, epochs=2, batch_size=8), QUICK,
                     reports.append)
    assert [r["epoch"] for r in reports] == [1, 2] and final is reports[-1]
    for key in ("valid_score", "test_score"):
        assert -1.0 <= final[key] <= 1.0
    assert final["train_loss"] == final["train_loss"]  # not NaN
    if name == "similarity":
        assert "test_zero_shot" in final
    if name == "product-matching":  # the default cut is chosen on validation
        assert 0.0 <= final["threshold"] <= 1.0


def test_bi_encoder_matching_picks_its_cosine_cut_on_validation(tiny_models, cache_dir):
    from sklearn.metrics import f1_score

    config = QUICK.model_copy(update={"matching_model": "bi-encoder"})
    task = TASKS["product-matching"]
    data = task.load(None, config, cache_dir)
    reports: list[dict] = []
    final = task.run(str(tiny_models[1]), data, TrialParams(learning_rate=5e-4, epochs=2, batch_size=8), config,
                     reports.append)
    assert [r["epoch"] for r in reports] == [1, 2] and final is reports[-1]
    assert -1.0 <= final["threshold"] <= 1.0 and "test_zero_shot" in final
    # the cut is the best of every cut on validation: no cut scores more there
    from transformers import AutoModel

    from training.evaluation.finetune import load_tokenizer
    from training.evaluation.similarity import ScoredPair, cosine_scores

    assert 0.0 <= final["test_score"] <= 1.0 and 0.0 < final["valid_score"] <= 1.0
    model = AutoModel.from_pretrained(str(tiny_models[1])).eval()
    with torch.no_grad():
        cos = cosine_scores(model, load_tokenizer(tiny_models[1]),
                            [ScoredPair(e.text, e.pair, float(e.label)) for e in data.valid], 64).tolist()
    gold = [e.label for e in data.valid]
    best = max(f1_score(gold, [int(c >= t) for c in cos], zero_division=0) for t in cos)
    assert reports[0]["valid_zero_shot"] == pytest.approx(best)  # zero shot: the checkpoint's own cosines


def test_similarity_scores_the_matching_bi_encoders_kept_cosines(tiny_models, cache_dir, tmp_path):
    """Matching's bi-encoder and similarity fine-tune the same model on the same WDC pairs: with a cache folder
    the second scores the first's kept cosines, with exactly the numbers it would have computed itself."""
    config = QUICK.model_copy(update={"matching_model": "bi-encoder"})
    model, params = str(tiny_models[1]), TrialParams(learning_rate=5e-4, epochs=2, batch_size=8, seed=3)
    matching, similarity = TASKS["product-matching"], TASKS["similarity"]
    fresh_reports: list[dict] = []
    fresh = similarity.run(model, similarity.load(None, config, cache_dir), params, config, fresh_reports.append)
    assert fresh["finetune_reused"] == 0.0

    kept = tmp_path / "kept"
    match_data = matching.load(None, config, cache_dir)
    match_data.cache_dir = kept
    matched = matching.run(model, match_data, params, config)
    assert matched["finetune_reused"] == 0.0 and len(list((kept / "cosent").glob("*.json"))) == 1
    sim_data = similarity.load(None, config, cache_dir)
    sim_data.cache_dir = kept
    reports: list[dict] = []
    reused = similarity.run(model, sim_data, params, config, reports.append)
    assert reused["finetune_reused"] == 1.0 and [r["epoch"] for r in reports] == [1, 2]
    for got, want in zip(reports, fresh_reports, strict=True):
        assert {k: v for k, v in got.items() if k != "finetune_reused"} == \
            {k: v for k, v in want.items() if k != "finetune_reused"}
    # another seed is another fine-tune: not a hit
    other = similarity.run(model, sim_data, TrialParams(learning_rate=5e-4, epochs=2, batch_size=8, seed=4), config)
    assert other["finetune_reused"] == 0.0 and len(list((kept / "cosent").glob("*.json"))) == 2


def test_mlm_trained_model_recovers_more_masked_tokens(tiny_models, cache_dir):
    task = TASKS["fill-mask"]
    data = task.load(None, QUICK, cache_dir)
    general, ecom = (task.run(str(m), data, TrialParams(seed=0), QUICK) for m in tiny_models)
    for metrics in (general, ecom):
        assert metrics["test_acc_at_1"] <= metrics["test_acc_at_3"] <= metrics["test_acc_at_5"]
        assert metrics["test_masked_tokens"] > 20
    assert ecom["test_acc_at_5"] > general["test_acc_at_5"]


def test_esci_file_is_split_by_query_and_hub_names_need_datasets(tmp_path, cache_dir):
    import importlib.util

    labels = "ESCI"
    rows = [f"query {i % 40}\tproduct {i}\t{labels[i % 4]}" for i in range(200)]
    path = tmp_path / "esci.tsv"
    path.write_text("query\tproduct_title\tesci_label\n" + "\n".join(rows) + "\n")
    data = TASKS["similarity"].load(str(path), EvaluateConfig(), cache_dir)
    assert sum(data.sizes().values()) == 200 and data.info["kind"].startswith("esci file")
    queries = {split: {p.a for p in getattr(data, split)} for split in ("train", "valid", "test")}
    assert not queries["train"] & queries["test"] and not queries["valid"] & queries["test"]
    if importlib.util.find_spec("datasets") is None:
        with pytest.raises(TaskDataError, match="needs the `datasets` package"):
            TASKS["similarity"].load("tasksource/esci", EvaluateConfig(), cache_dir)
    with pytest.raises(TaskDataError, match="data path not found"):
        TASKS["product-matching"].load(str(tmp_path / "missing"), EvaluateConfig(), cache_dir)


def test_task_data_on_s3_is_read_through_the_local_cache(tmp_path, s3_server, cache_dir, monkeypatch):
    from infra.core import fs

    monkeypatch.setenv("REXBERT_LOCAL_CACHE", str(tmp_path / "cache"))
    rows = [f"query {i % 40}\tproduct {i}\t{'ESCI'[i % 4]}" for i in range(200)]
    uri = fs.join(s3_server, tmp_path.name, "esci.tsv")
    fs.write_text(uri, "query\tproduct_title\tesci_label\n" + "\n".join(rows) + "\n")
    data = TASKS["similarity"].load(uri, EvaluateConfig(), cache_dir)
    assert sum(data.sizes().values()) == 200
    with pytest.raises(TaskDataError, match="data path not found"):
        TASKS["product-matching"].load(fs.join(s3_server, tmp_path.name, "missing"), EvaluateConfig(), cache_dir)


# --- trivial baselines (training.evaluation.baselines) ------------------------------------------------------


FULL = EvaluateConfig(max_seq_length=64)


def test_matching_baselines_are_the_train_majority_and_the_exact_title_rule(shared_data, cache_dir):
    from sklearn.metrics import f1_score

    from training.evaluation.baselines import normalized_title

    task = TASKS["product-matching"]
    data = task.load(None, FULL, cache_dir)
    baselines = task.baselines(data, FULL, {})
    positives = sum(e.label for e in data.train)
    majority = baselines["majority-class"]
    assert majority["predicts"] == ("same" if positives > len(data.train) / 2 else "different")
    assert majority["train_share"] == max(positives, len(data.train) - positives) / len(data.train)
    assert majority["test_mean"] == f1_score([e.label for e in data.test],
                                             [int(majority["predicts"] == "same")] * len(data.test), zero_division=0)
    equal = [int(" ".join(e.text.lower().split()) == " ".join((e.pair or "").lower().split())) for e in data.test]
    rule = [int(normalized_title(e.text) == normalized_title(e.pair or "")) for e in data.test]
    assert sum(rule) >= sum(equal) > 0  # normalisation only adds matches (case, punctuation)
    assert baselines["exact-title"]["test_mean"] == f1_score([e.label for e in data.test], rule)
    assert baselines["exact-title"]["test_std"] == 0.0
    share = sum(e.label for e in data.test) / len(data.test)  # always "same": recall 1, precision the share
    assert baselines["always-same"]["test_mean"] == pytest.approx(2 * share / (1 + share))
    assert baselines["always-same"]["predicts"] == "same" and baselines["always-same"]["test_mean"] > 0.4


def test_balanced_class_weights_follow_the_train_split():
    from training.evaluation.sequence_classification import class_weights

    weights = class_weights([0, 0, 0, 1], 3)  # a class absent from the split weighs as one example
    assert weights.tolist() == pytest.approx([4 / 9, 4 / 3, 4 / 3])
    assert (class_weights([0, 1, 0, 1], 2) == 1).all()


def test_validation_f1_cut_is_the_best_of_every_candidate_cut():
    from sklearn.metrics import f1_score

    from training.evaluation.sequence_classification import best_f1_threshold

    rng = np.random.default_rng(0)
    for _ in range(20):
        gold = rng.integers(0, 2, 60).tolist()
        probs = np.round(rng.random(60), 1).tolist()  # rounded: many ties, as a saturated model gives
        cut = best_f1_threshold(gold, probs)
        f1s = {t: f1_score(gold, [int(p >= t) for p in probs], zero_division=0) for t in set(probs)}
        best = max(f1s.values())
        assert f1s[cut] == pytest.approx(best)
        assert cut == max(t for t, f in f1s.items() if f == pytest.approx(best))  # ties: the higher cut
    assert best_f1_threshold([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.8


def test_page_type_and_tagging_baselines_predict_the_most_frequent_train_label(shared_data, cache_dir):
    from collections import Counter

    from sklearn.metrics import f1_score

    page_type = TASKS["page-type"]
    data = page_type.load(None, QUICK, cache_dir)
    counts = Counter(e.label for e in data.train)
    majority = page_type.baselines(data, QUICK, {})["majority-class"]
    assert counts[data.info["labels"].index(majority["predicts"])] == max(counts.values())
    gold = [e.label for e in data.test]
    expected = f1_score(gold, [data.info["labels"].index(majority["predicts"])] * len(gold), labels=sorted(set(gold)),
                        average="macro", zero_division=0)
    assert majority["test_mean"] == pytest.approx(expected) and 0 < expected < 1 / len(set(gold)) + 1e-9

    tagging = TASKS["attribute-tagging"]
    pages = tagging.load(None, QUICK, cache_dir)
    tag = tagging.baselines(pages, QUICK, {})["majority-tag"]
    assert tag["predicts"] == "O" and tag["test_mean"] == 0.0  # all "O": no entity found, entity F1 0


def test_similarity_baselines_score_a_constant_and_the_exact_title_rule(shared_data, cache_dir):
    from scipy.stats import spearmanr

    from training.evaluation.baselines import normalized_title

    task = TASKS["similarity"]
    data = task.load(None, FULL, cache_dir)
    baselines = task.baselines(data, FULL, {})
    assert baselines["constant"]["test_mean"] == 0.0
    rule = [float(normalized_title(p.a) == normalized_title(p.b)) for p in data.test]
    expected = spearmanr([p.score for p in data.test], rule).statistic
    assert baselines["exact-title"]["test_mean"] == pytest.approx(expected) and expected > 0


def test_most_frequent_token_baseline_is_its_share_of_the_test_tokens(tiny_models, cache_dir):
    from collections import Counter

    from transformers import AutoTokenizer

    task = TASKS["fill-mask"]
    data = task.load(None, QUICK, cache_dir)
    baselines = task.baselines(data, QUICK, {"general": str(tiny_models[0]), "ecom": str(tiny_models[1])})
    assert list(baselines) == ["most-frequent-token"]  # one tokenizer shared by both models: one baseline
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_models[0]))

    def tokens(texts):
        ids = tokenizer(texts, truncation=True, max_length=QUICK.max_seq_length, add_special_tokens=False)["input_ids"]
        return Counter(i for row in ids for i in row[: QUICK.max_seq_length - tokenizer.num_special_tokens_to_add()])

    top, _ = tokens(data.valid).most_common(1)[0]
    test = tokens(data.test)
    baseline = baselines["most-frequent-token"]
    assert baseline["test_mean"] == pytest.approx(test[top] / sum(test.values()))
    extras = baseline["test_extras"]
    assert baseline["test_mean"] == extras["acc_at_1"]["mean"]
    assert extras["acc_at_1"]["mean"] < extras["acc_at_3"]["mean"] < extras["acc_at_5"]["mean"]


def test_a_model_beats_a_baseline_only_by_more_than_its_seed_spread():
    from training.evaluation.baselines import baseline, compare

    baselines = {"majority-class": baseline(0.30, 0.3, "a"), "exact-title": baseline(0.50, 0.5, "b")}
    assert compare({"test_mean": 0.58, "test_std": 0.05}, baselines) == {
        "strongest_baseline": "exact-title", "margin": pytest.approx(0.08), "beats": True}
    assert compare({"test_mean": 0.58, "test_std": 0.10}, baselines)["beats"] is False
    assert compare({"error": "no trial reported a score"}, baselines) is None


# --- evaluation data kept out of pretraining text (training.evaluation.hygiene) --------------------------------


@pytest.fixture(scope="module")
def decontaminator(shared_data):
    from training.evaluation.hygiene import Decontaminator, evaluation_items

    return Decontaminator(evaluation_items(shared_data))


def _offers(path: Path) -> list[str]:
    from training.evaluation.product_matching import PREFIX

    return [f.removeprefix(PREFIX).strip() for line in path.read_text().splitlines() for f in line.split("\t")[:2]]


def test_wdc_test_offers_in_the_pretraining_offers_are_found_exactly(shared_data, decontaminator):
    from training.evaluation.hygiene import normalized_text

    evaluation = {normalized_text(o) for c in ("computers", "cameras") for name in ("valid.txt.small", "test.txt")
                  for o in _offers(shared_data / "eval/wdc-products" / c / name)}
    pretraining = list(dict.fromkeys(_offers(shared_data / "text/wdc-offers/computers-train.txt.medium")))
    overlaps = decontaminator.check_batch(pretraining)
    exact = [o for o, hit in zip(pretraining, overlaps, strict=True) if hit and hit.reason == "eval_exact"]
    assert len(exact) == sum(1 for o in pretraining if normalized_text(o) in evaluation) > 500
    assert all(hit.items[0].task == "product-matching" and hit.items[0].split in ("valid", "test")
               for hit in overlaps if hit and hit.reason == "eval_exact")


def test_near_duplicates_lines_and_urls_of_evaluation_items_are_caught(shared_data, decontaminator):
    offer = next(o for o in _offers(shared_data / "eval/wdc-products/computers/test.txt") if len(o.split()) > 12)
    assert decontaminator.check(offer + " free shipping").reason == "eval_near_duplicate"
    assert decontaminator.check(f"Our best sellers\n{offer}\nSee all offers").reason == "eval_line"
    test_page = next(i for i in decontaminator.items if i.task == "page-type" and i.split == "test" and i.url)
    parts = urlsplit(test_page.url)
    variant = f"http://www.{parts.hostname.removeprefix('www.')}{parts.path.rstrip('/')}/?{parts.query}"
    assert decontaminator.check("", variant).reason == "eval_url"
    wikitext = (shared_data / "text/wikitext-2/valid.txt").read_text().split("\n \n")[:200]
    assert not any(decontaminator.check_batch(wikitext))


def test_train_split_items_are_not_evaluation_items(shared_data, decontaminator):
    from training.evaluation.hygiene import normalized_text

    evaluation = {normalized_text(i.text) for i in decontaminator.items if i.task == "product-matching"}
    train_only = [o for o in _offers(shared_data / "eval/wdc-products/computers/train.txt.small")
                  if normalized_text(o) not in evaluation]
    hits = decontaminator.check_batch(train_only[:300])
    assert len(train_only) > 300 and all(h is None or h.reason == "eval_near_duplicate" for h in hits)
