"""The export folder loads with transformers' AutoModelForMaskedLM and AutoTokenizer and gives the same
logits as the training model; `load_exported` brings it back for further training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.training.test_attention import real_documents, tiny_model, tokenizer_dir
from training.export import export_hf, load_exported
from training.parallelize import apply_ac

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def exported(shared_data, tmp_path_factory):
    model = tiny_model(global_rope_theta=160_000.0)  # context-extension thetas: global 160k, local 10k
    apply_ac(model, "full")  # wrapped blocks must still export with transformers' names
    out = export_hf(model, model.args, tmp_path_factory.mktemp("export"), tokenizer_dir(shared_data))
    return model, Path(out)


@pytest.fixture(scope="module")
def documents(shared_data):
    docs = real_documents(shared_data, 6, min_len=40, max_len=60, seed=5)
    return docs


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_transformers_loads_the_export_and_gives_the_same_logits(exported, documents, attn_implementation):
    from transformers import AutoModelForMaskedLM

    model, out = exported
    hf = AutoModelForMaskedLM.from_pretrained(out, attn_implementation=attn_implementation).eval()
    width = min(len(d) for d in documents)
    ids = torch.tensor([d[:width] for d in documents])  # unpacked: one document per row
    with torch.no_grad():
        ours = model(ids).logits
        theirs = hf(input_ids=ids).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_padded_rows_in_transformers_match_our_padding_segment(exported, documents):
    from transformers import AutoModelForMaskedLM

    model, out = exported
    hf = AutoModelForMaskedLM.from_pretrained(out, attn_implementation="sdpa").eval()
    width = max(len(d) for d in documents)
    pad = model.args.pad_token_id
    ids = torch.tensor([d + [pad] * (width - len(d)) for d in documents])
    seq_lens = torch.tensor([[len(d), width - len(d)] for d in documents])
    with torch.no_grad():
        ours = model(ids, seq_lens).logits
        theirs = hf(input_ids=ids, attention_mask=(ids != pad).long()).logits
    for row, doc in enumerate(documents):  # pad positions differ by design and are never used
        torch.testing.assert_close(theirs[row, : len(doc)], ours[row, : len(doc)], atol=1e-5, rtol=1e-5)


def test_export_holds_config_weights_and_tokenizer(exported):
    from transformers import AutoTokenizer

    model, out = exported
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "modernbert" and config["architectures"] == ["ModernBertForMaskedLM"]
    assert config["rope_parameters"]["full_attention"]["rope_theta"] == 160_000.0
    assert config["rope_parameters"]["sliding_attention"]["rope_theta"] == 10_000.0
    assert config["local_attention"] == model.args.local_attention_window
    assert config["layer_types"] == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    assert not any(config[k] for k in ("attention_bias", "mlp_bias", "norm_bias", "decoder_bias", "classifier_bias"))
    assert config["tie_word_embeddings"] is True
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id) == (
        config["cls_token_id"], config["sep_token_id"], config["pad_token_id"], model.args.mask_token_id
    )
    assert len(tokenizer) == model.args.vocab_size
    ids = tokenizer("Stainless steel water bottle, 750 ml")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id


def test_load_exported_restores_the_training_model(exported, documents):
    model, out = exported
    restored = load_exported(out)
    assert restored.args == model.args
    ids = torch.tensor([documents[0]])
    with torch.no_grad():
        torch.testing.assert_close(restored(ids).logits, model(ids).logits, atol=0, rtol=0)
    extended = load_exported(out, global_rope_theta=500_000.0, attention_backend="flex")
    assert extended.args.global_rope_theta == 500_000.0 and extended.args.attention_backend == "flex"


def test_export_refuses_a_state_dict_of_another_shape(exported, tmp_path):
    model, _ = exported
    state = model.state_dict()
    state.pop("head.dense.weight")
    with pytest.raises(ValueError, match="missing"):
        export_hf(state, model.args, tmp_path)
