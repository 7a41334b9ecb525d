"""Starting from an existing encoder: a transformers ModernBERT checkpoint (built here, random weights, saved
with `save_pretrained`) imported into the trainer's model gives transformers' logits, on single documents
and on rows packing several documents; project model -> export -> import is exact; a phase with
`init_from_hf` trains from the imported weights; what the model cannot represent is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from infra.core.config import PretrainConfig, load_phase
from tests.training.shard_fixtures import demo_tokens  # noqa: F401  (session fixture)
from tests.training.test_attention import pack_rows, real_documents, tiny_model, tokenizer_dir
from training.export import args_from_hf_config, export_hf, hf_config, state_from_hf
from training.hf_import import import_hf, resolve_checkpoint
from training.trainer import Trainer

pytestmark = pytest.mark.shared_data

WINDOW = 16  # documents of 40-60 tokens reach past the local window


def hf_config_kwargs(vocab_size: int, tokenizer=None, **changes) -> dict:
    """A small ModernBERT with what the published checkpoints have: a decoder bias, RoPE 160k/10k."""
    pad, cls, sep = (3, 1, 2) if tokenizer is None else (tokenizer.pad_token_id, tokenizer.cls_token_id,
                                                         tokenizer.sep_token_id)
    ids = {"pad_token_id": pad, "cls_token_id": cls, "sep_token_id": sep, "bos_token_id": cls, "eos_token_id": sep}
    return {"vocab_size": vocab_size, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
            "num_attention_heads": 4, "max_position_embeddings": 512, "local_attention": WINDOW,
            "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention"],
            "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 160_000.0},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
            "decoder_bias": True, **ids, **changes}


def save_hf_checkpoint(out: Path, vocab_size: int, tokenizer_folder: Path | None = None, seed: int = 0,
                       **changes) -> Path:
    """A random-init `ModernBertForMaskedLM`, every weight moved off its init (norms at 1, bias at 0 would
    hide a mapping error), saved with `save_pretrained` (and the tokenizer, when given)."""
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder)) if tokenizer_folder is not None else None
    torch.manual_seed(seed)
    model = ModernBertForMaskedLM(ModernBertConfig(**hf_config_kwargs(vocab_size, tokenizer, **changes)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "decoder.weight":  # tied: moves with the embeddings
                p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(str(out))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def checkpoint(shared_data, tmp_path_factory) -> Path:
    return save_hf_checkpoint(tmp_path_factory.mktemp("hf") / "ckpt", 512, tokenizer_dir(shared_data))


@pytest.fixture(scope="module")
def documents(shared_data) -> list[list[int]]:
    docs = real_documents(shared_data, 8, min_len=40, max_len=60, seed=3)
    assert all(len(d) > 2 * WINDOW for d in docs)
    return docs


def load_transformers(folder: Path, attn_implementation: str = "sdpa"):
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(str(folder), attn_implementation=attn_implementation).eval()


def test_the_checkpoint_config_defines_the_trainer_model(checkpoint):
    model = import_hf(checkpoint)
    args = model.args
    assert (args.vocab_size, args.dim, args.n_layers, args.intermediate, args.n_heads) == (512, 64, 4, 96, 4)
    assert (args.global_attn_every_n_layers, args.local_attention_window) == (3, WINDOW)
    assert (args.global_rope_theta, args.local_rope_theta, args.decoder_bias) == (160_000.0, 10_000.0, True)
    hf = load_transformers(checkpoint)
    assert args.mask_token_id == 4 and (args.pad_token_id, args.cls_token_id) == (hf.config.pad_token_id, 1)
    theirs = hf.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_imported_model_gives_transformers_logits_on_single_documents(checkpoint, documents, attn_implementation):
    ours, hf = import_hf(checkpoint).eval(), load_transformers(checkpoint, attn_implementation)
    width = min(len(d) for d in documents)
    ids = torch.tensor([d[:width] for d in documents])  # one document per row
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


def test_packed_rows_give_transformers_logits_of_each_document_alone(checkpoint, documents):
    """Our packed path (per-document positions and attention) against transformers run on each document
    separately (transformers 5.x ModernBERT has no unpadding path)."""
    ours, hf = import_hf(checkpoint).eval(), load_transformers(checkpoint)
    batch = pack_rows(documents, 160, pad_id=ours.args.pad_token_id)
    assert (batch["seq_lens"] > 0).sum(dim=1).max() >= 3  # several documents in one row
    with torch.no_grad():
        packed = ours(batch["input_ids"], batch["seq_lens"]).logits
        for b, (row, lens, pad) in enumerate(zip(batch["input_ids"], batch["seq_lens"], batch["pad_len"], strict=True)):
            start = 0
            for length in [int(n) for n in lens if n > 0][: -1 if pad else None]:  # the real documents
                alone = hf(input_ids=row[start:start + length][None]).logits[0]
                torch.testing.assert_close(packed[b, start:start + length], alone, atol=1e-5, rtol=1e-5)
                start += length


@pytest.mark.parametrize("decoder_bias", [False, True])
def test_project_model_export_import_round_trip_is_exact(shared_data, documents, tmp_path, decoder_bias):
    model = tiny_model(local_attention_window=WINDOW, global_rope_theta=160_000.0, decoder_bias=decoder_bias)
    out = export_hf(model, model.args, tmp_path / "export", tokenizer_dir(shared_data))
    back = import_hf(out).eval()  # through transformers' config fields, not the verbatim ModelArgs
    assert back.args == model.args
    batch = pack_rows(documents, 160, pad_id=model.args.pad_token_id)
    with torch.no_grad():
        torch.testing.assert_close(back(batch["input_ids"], batch["seq_lens"]).logits,
                                   model(batch["input_ids"], batch["seq_lens"]).logits, atol=0, rtol=0)


@pytest.mark.parametrize(("changes", "message"), [
    ({"attention_bias": True}, "attention_bias=true is not supported"),
    ({"norm_bias": True}, "norm_bias=true is not supported"),
    ({"hidden_activation": "silu"}, "hidden_activation='silu' is not supported"),
    ({"layer_types": ["full_attention", "full_attention", "sliding_attention", "full_attention"]},
     "is not 'global every n-th layer"),
    ({"rope_parameters": {"full_attention": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0},
                          "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}},
     "RoPE type 'linear'"),
])
def test_what_the_model_cannot_represent_is_refused_in_one_line(changes, message):
    from transformers import ModernBertConfig

    config = ModernBertConfig(**hf_config_kwargs(512, **changes)).to_dict()
    with pytest.raises(ValueError, match=message) as error:
        args_from_hf_config(config, "init_from_hf 'x'")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="is not a ModernBERT"):
        args_from_hf_config({**config, "model_type": "bert"})


def test_untied_decoder_weights_are_refused(checkpoint):
    from training.export import read_weights

    args = import_hf(checkpoint).args
    state = read_weights(checkpoint)
    embeddings = state["model.embeddings.tok_embeddings.weight"]
    state["decoder.weight"] = embeddings + 1.0
    with pytest.raises(ValueError, match="not tied"):
        state_from_hf(state, args)
    state["decoder.weight"] = embeddings.clone()  # tied (saved twice): accepted
    assert set(state_from_hf(state, args)) == set(state) - {"decoder.weight"}


def test_hub_name_that_cannot_be_fetched_is_one_line_naming_it(tmp_path):
    name = "rexbert-tests-no-such-org/no-such-model"
    with pytest.raises(ValueError, match=f"init_from_hf '{name}': not a local folder") as error:
        resolve_checkpoint(name)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="has no config.json"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="no such folder"):
        resolve_checkpoint(str(tmp_path / "missing" / "model"))


def hf_phase_config(tmp_path, demo_root, checkpoint_dir: Path, **general) -> PretrainConfig:
    return PretrainConfig.model_validate({
        "run_dir": str(tmp_path / "run"),
        "phases": {name: f"smoke-{name}.yaml" for name in ("general", "context", "decay")},
        "phase_overrides": {"general": {"max_steps": 2, "init_from_hf": str(checkpoint_dir), **general}},
        "data": {"root": str(demo_root / "tokens"), "micro_batch_size": 2},
        "checkpoint": {"interval": 10},
        "metrics": {"log_interval": 1, "tensorboard": False, "progress": False},
    })


def test_phase_with_init_from_hf_trains_from_the_imported_weights(tmp_path, demo_tokens):  # noqa: F811
    checkpoint_dir = save_hf_checkpoint(tmp_path / "hf", 512, demo_tokens / "tokenizer", seed=1)
    config = hf_phase_config(tmp_path, demo_tokens, checkpoint_dir)
    phase = load_phase(config, "general")
    trainer = Trainer(config, phase, tmp_path / "run" / "general", demo_tokens / "tokens" / "general-128")
    assert trainer.model_args.decoder_bias and trainer.model_args.n_layers == 4  # not the `tiny` preset
    assert trainer.model_args.max_seq_len == 128 and trainer.model_args.global_rope_theta == 10_000.0  # the phase's
    hf = load_transformers(checkpoint_dir).state_dict()
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert all(torch.equal(tensor, hf[name]) for name, tensor in start.items())

    summary = trainer.train()
    assert summary["steps"] == 2 and all(torch.isfinite(torch.tensor(summary["losses"])))
    assert summary["init_from"] == str(checkpoint_dir)
    trained = trainer.model.state_dict()
    assert not torch.equal(trained["decoder.bias"], start["decoder.bias"])
    assert not torch.equal(trained["model.layers.1.attn.Wqkv.weight"], start["model.layers.1.attn.Wqkv.weight"])
    exported = load_transformers(Path(trainer.export()))
    assert exported.config.decoder_bias and torch.equal(exported.state_dict()["decoder.bias"], trained["decoder.bias"])
    trainer.close()


def test_checkpoint_with_another_tokenizer_or_vocabulary_is_refused(shared_data, tmp_path, demo_tokens):  # noqa: F811
    data_dir = demo_tokens / "tokens" / "general-128"
    other = save_hf_checkpoint(tmp_path / "other", 512, tokenizer_dir(shared_data))  # same size, other merges
    config = hf_phase_config(tmp_path, demo_tokens, other)
    with pytest.raises(ValueError, match="was not tokenized with the tokenizer of checkpoint") as error:
        Trainer(config, load_phase(config, "general"), tmp_path / "a", data_dir)
    assert "tokenize.tokenizer" in str(error.value) and "\n" not in str(error.value)

    small = save_hf_checkpoint(tmp_path / "small", 448)  # no tokenizer files; too few embedding rows
    config = hf_phase_config(tmp_path, demo_tokens, small)
    with pytest.raises(ValueError, match="embeds only 448 tokens"):
        Trainer(config, load_phase(config, "general"), tmp_path / "b", data_dir)

    same = save_hf_checkpoint(tmp_path / "same", 512, demo_tokens / "tokenizer")
    config = hf_phase_config(tmp_path, demo_tokens, same, init_from="context")
    with pytest.raises(ValueError, match="both init_from and init_from_hf"):
        Trainer(config, load_phase(config, "general"), tmp_path / "c", data_dir, init_from=tmp_path / "ckpt")
    config = hf_phase_config(tmp_path, demo_tokens, same)
    config.model.overrides["n_layers"] = 2
    with pytest.raises(ValueError, match="contradict checkpoint"):
        Trainer(config, load_phase(config, "general"), tmp_path / "d", data_dir)


def test_hf_config_of_a_model_with_decoder_bias_loads_in_transformers(tmp_path):
    """The export side of the new field: transformers builds the bias our model trained."""
    from transformers import ModernBertForMaskedLM

    model = tiny_model(decoder_bias=True)
    state = ModernBertForMaskedLM(hf_config(model.args)).state_dict()
    assert state["decoder.bias"].shape == model.decoder.bias.shape
