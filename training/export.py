"""Export a trained `ModernBertMLM` as a transformers `ModernBertForMaskedLM` folder, and load one back.

The model uses transformers' parameter names, so an export is the state dict (without the tied
`decoder.weight`, which transformers re-ties on load) in `model.safetensors`, a `ModernBertConfig`
mirroring `ModelArgs` in `config.json`, and the tokenizer files. `AutoModelForMaskedLM.from_pretrained`
loads the folder; `load_exported` turns it back into our model (to continue training from an export).
The folder may be a URI (`s3://.../export`): it is written locally and uploaded, and downloaded to load.

Both directions live here: `hf_config` / `_write_export` map our model to transformers', and
`args_from_hf_config` / `state_from_hf` / `read_weights` map any ModernBERT checkpoint back (also one
the platform did not write: `training.hf_import` starts a pretraining phase from one).

An export is a stage output (`infra.core.outputs.staged_output`, stage `export`): it is written into a
temporary sibling and renamed into place with its `manifest.json` last, so a failed or interrupted export
leaves the previous one (or nothing), and a folder the platform did not write is never replaced.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, fields
from pathlib import Path

import torch
from torch import nn

from infra.core import fs
from infra.core.manifest import StageStats, build_manifest, write_manifest
from infra.core.outputs import staged_output
from training.model import ModelArgs, ModernBertMLM
from training.staging import fetch_dir

STAGE = "export"  # the manifest's stage and the folder's owner: a new export replaces only an export
ARGS_KEY = "rexbert_model_args"  # our ModelArgs, kept verbatim in config.json for `load_exported`
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def hf_config(args: ModelArgs):
    """A `ModernBertConfig` with the same shape, RoPE thetas, window, global-layer pattern and tokens."""
    from transformers import ModernBertConfig

    layer_types = [
        "full_attention" if i % args.global_attn_every_n_layers == 0 else "sliding_attention"
        for i in range(args.n_layers)
    ]
    config = ModernBertConfig(
        vocab_size=args.vocab_size,
        hidden_size=args.dim,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.n_layers,
        num_attention_heads=args.n_heads,
        hidden_activation="gelu",
        classifier_activation="gelu",
        max_position_embeddings=args.max_seq_len,
        initializer_range=args.initializer_range,
        initializer_cutoff_factor=args.initializer_cutoff_factor,
        norm_eps=args.norm_eps,
        norm_bias=False,
        attention_bias=False,
        mlp_bias=False,
        decoder_bias=args.decoder_bias,
        classifier_bias=False,
        local_attention=args.local_attention_window,
        layer_types=layer_types,
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": float(args.global_rope_theta)},
            "sliding_attention": {"rope_type": "default", "rope_theta": float(args.local_rope_theta)},
        },
        pad_token_id=args.pad_token_id,
        cls_token_id=args.cls_token_id,
        sep_token_id=args.sep_token_id,
        bos_token_id=args.cls_token_id,
        eos_token_id=args.sep_token_id,
        tie_word_embeddings=True,
    )
    config.architectures = ["ModernBertForMaskedLM"]
    return config


def export_hf(
    model_or_state_dict: nn.Module | dict[str, torch.Tensor],
    args: ModelArgs,
    out_dir: str | Path,
    tokenizer_dir: str | Path | None = None,
) -> str:
    """Write `config.json`, `model.safetensors`, the tokenizer files and `manifest.json` into `out_dir`;
    returns it. `out_dir` must be empty, absent or a previous export (else `OutputError`).

    Args:
        model_or_state_dict: our model (unsharded) or a full state dict with our (= HF) names; for an
            FSDP2 model pass `training.parallelize.unwrap_state_dict_keys(model)` from every rank.
        out_dir: a local folder or a URI; a remote export is written to a local temporary folder first
            (safetensors writes local files) and then uploaded.
        tokenizer_dir: folder (path or URI) written by `training.tokenizer.train_tokenizer` (or any HF
            tokenizer folder); None writes the model alone.
    """
    inputs = [str(tokenizer_dir)] if tokenizer_dir is not None else []
    with staged_output(out_dir, STAGE, inputs) as target:
        if fs.is_remote(target):
            with tempfile.TemporaryDirectory(prefix="rexbert-export-") as staged:
                tensors = _write_export(model_or_state_dict, args, Path(staged), tokenizer_dir)
                fs.copy_dir(staged, target)
        else:
            tensors = _write_export(model_or_state_dict, args, fs.local_path(target), tokenizer_dir)
        manifest = build_manifest(STAGE, StageStats(input=tensors, kept=tensors), inputs=inputs,
                                  outputs={"path": str(out_dir), "tensors": tensors},
                                  extra={"model_args": asdict(args)})
        write_manifest(target, manifest)  # last: marks the export complete
    return str(out_dir)


def _write_export(model_or_state_dict: nn.Module | dict[str, torch.Tensor], args: ModelArgs, out_dir: Path,
                  tokenizer_dir: str | Path | None) -> int:
    """The export's files in a local folder; returns how many tensors were written."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module) else model_or_state_dict
    state = {_clean_key(k): v for k, v in state.items()}
    expected = _expected_keys(args)
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(f"state dict does not match the model args: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})

    config = hf_config(args)
    config_dict = config.to_dict()
    config_dict[ARGS_KEY] = asdict(args)
    (out_dir / "config.json").write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")

    if tokenizer_dir is not None:
        copied = [name for name in TOKENIZER_FILES if fs.is_file(fs.join(tokenizer_dir, name))]
        if "tokenizer.json" not in copied:
            raise FileNotFoundError(f"{tokenizer_dir} holds no tokenizer.json")
        for name in copied:
            (out_dir / name).write_bytes(fs.read_bytes(fs.join(tokenizer_dir, name)))
    return len(tensors)


def _clean_key(key: str) -> str:
    """Drop the prefixes that torch.compile and activation-checkpoint wrappers add to names."""
    return key.replace("_orig_mod.", "").replace("_checkpoint_wrapped_module.", "")


def _expected_keys(args: ModelArgs) -> set[str]:
    with torch.device("meta"):
        return set(ModernBertMLM(args).state_dict())


def args_from_config(config: dict, source: str = "the checkpoint") -> ModelArgs:
    """Our ModelArgs from a config.json: ours verbatim (an export of this platform), else read from
    transformers' own fields (`args_from_hf_config`)."""
    if ARGS_KEY in config:
        known = {f.name for f in fields(ModelArgs)}
        return ModelArgs(**{k: v for k, v in config[ARGS_KEY].items() if k in known})
    return args_from_hf_config(config, source)


def args_from_hf_config(config: dict, source: str = "the checkpoint") -> ModelArgs:
    """The inverse of `hf_config`: ModelArgs from any ModernBERT config.json (transformers 4.x keys such as
    `global_attn_every_n_layers` and `global_rope_theta`, or 5.x `layer_types` and `rope_parameters`).

    A ValueError names the first thing our model cannot represent (biases other than the decoder's, another
    activation, RoPE scaling, a layer pattern other than "global every n-th layer").
    """
    from transformers import ModernBertConfig

    if config.get("model_type") != "modernbert":
        raise ValueError(f"{source}: model_type {config.get('model_type')!r} is not a ModernBERT ('modernbert')")
    hf = ModernBertConfig.from_dict({k: v for k, v in config.items() if k != ARGS_KEY})
    for name in ("norm_bias", "attention_bias", "mlp_bias", "classifier_bias"):
        if getattr(hf, name):
            raise ValueError(f"{source}: {name}=true is not supported (the trainer's model has no such biases)")
    for name in ("hidden_activation", "classifier_activation"):
        if getattr(hf, name) != "gelu":
            raise ValueError(f"{source}: {name}={getattr(hf, name)!r} is not supported (only 'gelu')")
    if hf.hidden_size % hf.num_attention_heads:
        raise ValueError(f"{source}: hidden_size {hf.hidden_size} is not a multiple of {hf.num_attention_heads} heads")
    every = _global_every(list(hf.layer_types), source)
    thetas = {}
    for kind in ("full_attention", "sliding_attention"):
        rope = (hf.rope_parameters or {}).get(kind) or {}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"{source}: RoPE type {rope['rope_type']!r} on {kind} layers is not supported "
                             "(only 'default')")
        thetas[kind] = float(rope.get("rope_theta", ModernBertConfig.default_theta[
            "global" if kind == "full_attention" else "local"]))
    defaults = ModelArgs()
    return ModelArgs(
        vocab_size=hf.vocab_size,
        dim=hf.hidden_size,
        n_layers=hf.num_hidden_layers,
        intermediate=hf.intermediate_size,
        n_heads=hf.num_attention_heads,
        global_attn_every_n_layers=every,
        local_attention_window=hf.local_attention,
        global_rope_theta=thetas["full_attention"],
        local_rope_theta=thetas["sliding_attention"],
        norm_eps=hf.norm_eps,
        max_seq_len=hf.max_position_embeddings,
        initializer_range=hf.initializer_range,
        initializer_cutoff_factor=hf.initializer_cutoff_factor,
        pad_token_id=hf.pad_token_id if hf.pad_token_id is not None else defaults.pad_token_id,
        cls_token_id=hf.cls_token_id if hf.cls_token_id is not None else defaults.cls_token_id,
        sep_token_id=hf.sep_token_id if hf.sep_token_id is not None else defaults.sep_token_id,
        decoder_bias=bool(hf.decoder_bias),
    )


def _global_every(layer_types: list[str], source: str) -> int:
    """n such that layer i is global exactly when i % n == 0 (our only pattern), from transformers' list."""
    global_layers = [i for i, kind in enumerate(layer_types) if kind == "full_attention"]
    every = global_layers[1] if len(global_layers) > 1 else max(len(layer_types), 1)
    expected = ["full_attention" if i % every == 0 else "sliding_attention" for i in range(len(layer_types))]
    if layer_types != expected:
        raise ValueError(f"{source}: layer_types {layer_types} is not 'global every n-th layer, starting at 0'")
    return every


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a transformers checkpoint folder: `model.safetensors`, its sharded form (with
    `model.safetensors.index.json`) or a `pytorch_model.bin`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return load_file(str(folder / "model.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(load_file(str(folder / shard)))
        return state
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{folder} holds no model.safetensors, sharded safetensors or pytorch_model.bin")


def state_from_hf(state: dict[str, torch.Tensor], args: ModelArgs, source: str = "the checkpoint"
                  ) -> dict[str, torch.Tensor]:
    """A transformers `ModernBertForMaskedLM` state dict as ours, in fp32: the names are the same, so this
    is `_write_export` backwards (drop the decoder weight, which must be the tied embeddings)."""
    state = {_clean_key(k): v for k, v in state.items()}
    decoder = state.pop("decoder.weight", None)
    embeddings = state.get("model.embeddings.tok_embeddings.weight")
    if decoder is not None and embeddings is not None and not torch.equal(decoder, embeddings):
        raise ValueError(f"{source}: decoder.weight is not tied to the token embeddings (the trainer's model "
                         "ties them)")
    expected = _expected_keys(args)
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(f"{source}: weights do not fit a ModernBertForMaskedLM of its config: missing "
                         f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    return {k: v.to(torch.float32).contiguous() for k, v in state.items()}


def load_exported(path: str | Path, **overrides) -> ModernBertMLM:
    """Our model from an export folder (a path or URI, e.g. to continue training); `overrides` change
    ModelArgs fields such as `attention_backend` or `global_rope_theta` for context extension."""
    from dataclasses import replace

    path = fetch_dir(path)
    args = replace(args_from_config(json.loads((path / "config.json").read_text()), str(path)), **overrides)
    model = ModernBertMLM(args)
    model.load_state_dict(state_from_hf(read_weights(path), args, str(path)), strict=True)
    return model
