"""A byte-level BPE tokenizer in the ModernBERT convention, trained with HF `tokenizers`.

ModernBERT (and Ettin) use a byte-level BPE vocabulary of 50,368 entries (a multiple of 64, so the
embedding matrix tiles well on GPUs) with the BERT special tokens and a post-processor that wraps
every text as `[CLS] ... [SEP]`. We keep ModernBERT's relative order of the special tokens but give
them the first ids, so they do not move when the vocabulary size changes:

    [UNK]=0  [CLS]=1  [SEP]=2  [PAD]=3  [MASK]=4

When the corpus is too small for BPE to reach the requested size (BPE stops when no pair occurs
`min_frequency` times), the vocabulary is padded with unused tokens `[unused0]`, `[unused1]`, ...
(ModernBERT pads its vocabulary the same way) so the size is exactly the requested multiple of 64.

Tokenizer folders are read and written by path or URI (`s3://`, `gs://`, ...) through `infra.core.fs`;
HF reads and writes local folders only, so a remote folder goes through `training.staging` (a staged
upload, a cached download).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from infra.core import fs
from infra.core.manifest import InputError
from training.staging import fetch_dir, local_dir, publish_dir

SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
VOCAB_MULTIPLE = 64
MODEL_MAX_LENGTH = 8192  # ModernBERT's context after extension; packing never exceeds its own seq_len


def _check_vocab_size(vocab_size: int) -> None:
    if vocab_size % VOCAB_MULTIPLE:
        raise ValueError(f"vocab_size must be a multiple of {VOCAB_MULTIPLE}, got {vocab_size}")
    minimum = len(pre_tokenizers.ByteLevel.alphabet()) + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size {vocab_size} is below the byte alphabet plus specials ({minimum})")


def build_untrained_tokenizer() -> Tokenizer:
    """The ModernBERT pipeline: NFC, byte-level pre-tokenizer without prefix space, BPE, [CLS]/[SEP]."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _set_post_processor(tokenizer: Tokenizer) -> None:
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )


def pad_vocabulary(tokenizer: Tokenizer, vocab_size: int) -> int:
    """Add `[unusedN]` tokens until the vocabulary is exactly `vocab_size`; returns how many were added."""
    missing = vocab_size - tokenizer.get_vocab_size(with_added_tokens=True)
    if missing < 0:
        raise ValueError(f"tokenizer already has {tokenizer.get_vocab_size()} > {vocab_size} entries")
    if missing:
        tokenizer.add_tokens([AddedToken(f"[unused{i}]", normalized=False, special=False) for i in range(missing)])
    return missing


def wrap_fast_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """The transformers view of a `tokenizers.Tokenizer`, with every special token named."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=MODEL_MAX_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
    )


def train_tokenizer(
    texts: Iterable[str],
    output_dir: str | Path,
    vocab_size: int = 50368,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> str:
    """Train byte-level BPE on `texts` and save it in HF format under `output_dir` (a path or URI).

    `load_tokenizer(output_dir)` loads the result (`AutoTokenizer.from_pretrained` too, for a local
    folder). Returns `output_dir` as a string. No text at all is refused (InputError) and nothing is
    written: a tokenizer of specials and bytes alone would look trained.
    """
    _check_vocab_size(vocab_size)
    tokenizer = build_untrained_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    used = 0

    def counted() -> Iterable[str]:
        nonlocal used
        for text in texts:
            if text:
                used += 1
                yield text

    tokenizer.train_from_iterator(counted(), trainer=trainer)
    if not used:
        raise InputError(f"no text to train the tokenizer on: nothing written to {output_dir}")
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == token_id, f"{token} must have id {token_id}"
    pad_vocabulary(tokenizer, vocab_size)
    _set_post_processor(tokenizer)
    return save_tokenizer(wrap_fast_tokenizer(tokenizer), output_dir)


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, output_dir: str | Path) -> str:
    """`save_pretrained` into a folder path or URI (a remote one is staged locally, then uploaded)."""
    local = local_dir(output_dir)
    local.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(local))
    publish_dir(local, output_dir)
    return str(output_dir)


def load_tokenizer(path_or_hub_name: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer folder (path or URI) written by `train_tokenizer`, or any HF hub name / local HF folder."""
    name = str(path_or_hub_name)
    # a URI is fetched to a local folder; a local folder or a hub name goes to transformers as given
    local = fetch_dir(name) if fs.is_remote(name) or name.startswith("file://") else name
    tokenizer = AutoTokenizer.from_pretrained(str(local))
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{path_or_hub_name}: packing needs a fast (HF tokenizers) tokenizer")
    return tokenizer


def boundary_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Ids of the tokens that frame and pad packed segments: cls, sep, pad (BOS/EOS as fallbacks)."""
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else sep_id
    if cls_id is None or sep_id is None:
        raise ValueError("tokenizer has neither [CLS]/[SEP] nor BOS/EOS tokens to frame documents")
    return {"cls": int(cls_id), "sep": int(sep_id), "pad": int(pad_id)}
