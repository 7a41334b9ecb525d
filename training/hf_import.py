"""Start a pretraining phase from an existing transformers ModernBERT checkpoint (a phase's `init_from_hf`).

The checkpoint is a local folder, a URI (downloaded once per machine, `training.staging`) or a hub name
(`answerdotai/ModernBERT-base`, fetched with `huggingface_hub` where the network allows; a name that
cannot be fetched is a one-line error naming it). Its `config.json` defines the trainer's model: shape,
local window, global-layer pattern and decoder bias come from it (`training.export.args_from_hf_config`, the
inverse of the export's config), so any ModernBERT checkpoint the model can represent works and anything
else is refused in one line. Its weights are loaded with the inverse of the export's name mapping
(`training.export.state_from_hf`): the names are transformers' own, so the imported model gives the same
logits as `ModernBertForMaskedLM` on the same input.

The phase's shards must have been tokenized with the checkpoint's tokenizer: set `tokenize.tokenizer` to the
checkpoint (folder or hub name) before `rexbert tokenize`. `check_token_set` compares the token set's
tokenizer with the checkpoint's (vocabulary and size) and refuses a mismatch, because token ids that mean
other strings would silently waste the pretrained embeddings. The model's vocabulary is the checkpoint's
embedding matrix, which may be larger than the tokenizer (ModernBERT pads it to a multiple of 64).

The phase's RoPE thetas and sequence length still apply (as for a phase started from a previous phase:
context extension changes them); a theta other than the checkpoint's is logged as a warning.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from infra.core import fs
from training.export import TOKENIZER_FILES, args_from_hf_config, read_weights, state_from_hf
from training.model import ModelArgs, ModernBertMLM
from training.staging import fetch_dir

logger = logging.getLogger(__name__)

# What a hub download fetches: the config, the weights (safetensors only) and the tokenizer.
HUB_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json", *TOKENIZER_FILES]
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def resolve_checkpoint(name: str | Path) -> Path:
    """A local folder holding the checkpoint `name` (a folder, a URI or a hub name); ValueError otherwise."""
    text = str(name)
    if fs.is_remote(text) or text.startswith("file://"):
        folder = fetch_dir(text)
    elif Path(text).expanduser().exists():
        folder = Path(text).expanduser()
    elif HUB_NAME.fullmatch(text):
        folder = _download(text)
    else:
        raise ValueError(f"init_from_hf {text!r}: no such folder, and not a hub model name")
    if not (folder / "config.json").is_file():
        raise ValueError(f"init_from_hf {text!r}: {folder} has no config.json (not a transformers checkpoint)")
    return folder


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except Exception as error:  # offline, unknown or gated repository: one line that names it
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ValueError(f"init_from_hf {repo_id!r}: not a local folder and not fetchable from the Hugging Face "
                         f"hub ({type(error).__name__}: {reason})") from None


def checkpoint_args(folder: Path, name: str | Path) -> ModelArgs:
    """The trainer's ModelArgs as the checkpoint's config.json defines them (ValueError: not representable)."""
    return args_from_hf_config(json.loads((folder / "config.json").read_text()), f"init_from_hf {str(name)!r}")


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()


def check_token_set(folder: Path, name: str | Path, args: ModelArgs, tokenizer, manifest: dict[str, Any],
                    data_dir: str) -> None:
    """The shards in `data_dir` were tokenized with the checkpoint's tokenizer (one-line ValueError if not).

    `tokenizer` is the token set's own (its `tokenizer/` folder) and `manifest` its manifest, which records
    the vocabulary size the shards were made with.
    """
    from training.tokenizer import load_tokenizer

    size = int((manifest.get("tokenizer") or {}).get("vocab_size", len(tokenizer)))
    hint = f"set tokenize.tokenizer to {str(name)!r} and tokenize again"
    if size > args.vocab_size:
        raise ValueError(f"token set {data_dir} has a {size}-token vocabulary, checkpoint {str(name)!r} embeds "
                         f"only {args.vocab_size} tokens: {hint}")
    if not _has_tokenizer(folder):
        logger.warning("checkpoint %s has no tokenizer files: only the vocabulary size was checked", name)
        return
    theirs = load_tokenizer(folder)
    if size != len(theirs) or tokenizer.get_vocab() != theirs.get_vocab():
        mine, other = tokenizer.get_vocab(), theirs.get_vocab()
        differ = sum(other.get(token) != index for token, index in mine.items())
        raise ValueError(f"token set {data_dir} was not tokenized with the tokenizer of checkpoint {str(name)!r} "
                         f"({size} vs {len(theirs)} tokens, {differ} ids differ): {hint}")


def hf_state(folder: Path, args: ModelArgs, name: str | Path) -> dict:
    """The checkpoint's weights under our names, in fp32, checked against `args` (the full, unsharded dict)."""
    return state_from_hf(read_weights(folder), args, f"init_from_hf {str(name)!r}")


def load_hf_weights(model: nn.Module, folder: Path, args: ModelArgs, name: str | Path) -> None:
    """Overwrite every parameter of `model` (plain or FSDP2-sharded: each rank keeps its shard) with the
    checkpoint's."""
    from training.parallelize import load_full_state_dict

    load_full_state_dict(model, hf_state(folder, args, name))


def import_hf(name: str | Path, **overrides) -> ModernBertMLM:
    """Our model with a checkpoint's weights, on the CPU (for tools and tests; the trainer builds its own).

    The [MASK] id comes from the checkpoint's tokenizer when it has one; `overrides` change ModelArgs
    fields such as `attention_backend`.
    """
    folder = resolve_checkpoint(name)
    args = checkpoint_args(folder, name)
    if _has_tokenizer(folder):
        from training.tokenizer import load_tokenizer

        mask = load_tokenizer(folder).mask_token_id
        args = replace(args, mask_token_id=mask if mask is not None else args.mask_token_id)
    args = replace(args, **overrides)
    model = ModernBertMLM(args)
    model.load_state_dict(hf_state(folder, args, name), strict=True)
    return model
