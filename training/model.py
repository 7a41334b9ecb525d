"""ModernBERT-style masked-language-model encoder over packed sequences (the whole model in one file).

Architecture as ModernBERT (Warner et al., 2024) and Ettin: pre-norm LayerNorm without bias, no biases
anywhere, GeGLU MLP, RoPE (global and local layers with their own theta), local sliding-window attention
with a global layer every 3rd layer (layer i is global when i % 3 == 0), an embedding norm, a final norm,
an MLM head (dense, GELU, norm) and a decoder tied to the token embeddings (with a bias of its own
only when `decoder_bias` is set, as in the published ModernBERT and Ettin checkpoints).

Parameter names are those of transformers' `ModernBertForMaskedLM` (`model.embeddings.tok_embeddings`,
`model.layers.N.attn.Wqkv`, ..., `head.dense`, `head.norm`), so an export is a state-dict save plus a
`ModernBertConfig` (see `training/export.py`). The decoder has no weight of its own: it is the token
embedding matrix (HF ties `decoder.weight` to it on load), which keeps the tie intact through meta-device
construction, `to_empty`, FSDP2 and distributed checkpoints.

Inputs are packed rows: `input_ids [B, L]` with `seq_lens [B, S]` (zero-padded segment lengths summing to
L per row). Attention never crosses a segment boundary and position ids restart in every segment
(`training/attention.py`). This file never imports torch.distributed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from training.attention import (
    GLOBAL,
    LOCAL,
    AttentionInputs,
    attend,
    build_attention_inputs,
)

IGNORE_INDEX = -100


@dataclass
class ModelArgs:
    """Shape and recipe of the encoder; defaults are ModernBERT-base with the Ettin vocabulary."""

    vocab_size: int = 50368
    dim: int = 768
    n_layers: int = 22
    intermediate: int = 1152  # GeGLU width: Wi projects to 2 * intermediate
    n_heads: int = 12
    global_attn_every_n_layers: int = 3  # layer i is global when i % n == 0
    local_attention_window: int = 128  # total window: a local token sees +-window/2 neighbours
    global_rope_theta: float = 10_000.0  # 160k after context extension
    local_rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    max_seq_len: int = 8192  # only recorded in the export (max_position_embeddings); RoPE needs no table
    initializer_range: float = 0.02
    initializer_cutoff_factor: float = 2.0
    # Special tokens of the project's tokenizer (training/tokenizer.py: [UNK]=0 [CLS]=1 [SEP]=2 [PAD]=3
    # [MASK]=4); set from the tokenizer in use when it differs.
    pad_token_id: int = 3
    cls_token_id: int = 1
    sep_token_id: int = 2
    mask_token_id: int = 4
    # The decoder's own bias (transformers' `decoder.bias`): off for models trained here, on for models
    # started from a published ModernBERT checkpoint, which has one (training/hf_import.py).
    decoder_bias: bool = False
    attention_backend: Literal["sdpa", "flex"] = "sdpa"  # sdpa: CPU/any device, flex: CUDA fast path

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def layer_type(self, layer_id: int) -> str:
        return GLOBAL if layer_id % self.global_attn_every_n_layers == 0 else LOCAL

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} is not a multiple of n_heads={self.n_heads}")
        if self.attention_backend not in ("sdpa", "flex"):
            raise ValueError(f"attention_backend must be 'sdpa' or 'flex', got {self.attention_backend!r}")


# Ettin shapes (layers / dim / intermediate / heads) with a 50,368-token vocabulary; `tiny` is for tests.
PRESETS: dict[str, ModelArgs] = {
    "tiny": ModelArgs(vocab_size=512, dim=64, n_layers=4, intermediate=96, n_heads=4, max_seq_len=1024),
    "micro": ModelArgs(dim=256, n_layers=7, intermediate=384, n_heads=4),
    "mini": ModelArgs(dim=512, n_layers=19, intermediate=768, n_heads=8),
    "base": ModelArgs(dim=768, n_layers=22, intermediate=1152, n_heads=12),
    "large": ModelArgs(dim=1024, n_layers=28, intermediate=2624, n_heads=16),
}


def model_args(preset: str, **overrides) -> ModelArgs:
    """A copy of a preset with some fields changed (token ids from the tokenizer, RoPE theta per phase)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[preset], **overrides)


class MaskedLMOutput(NamedTuple):
    loss: torch.Tensor | None  # mean cross-entropy over masked positions
    logits: torch.Tensor | None  # [n_masked, V] with labels (if asked), else [B, L, V]
    num_masked: torch.Tensor | None  # number of labelled positions in the batch


class RotaryEmbedding(nn.Module):
    """cos/sin for position ids that restart per document, computed on the fly: any length works, and
    there is no buffer to lose when the model is built on the meta device and loaded from a checkpoint."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta

    def inv_freq(self, device: torch.device | None = None) -> torch.Tensor:
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=device) / self.head_dim
        return 1.0 / (self.theta**exponents)

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq(position_ids.device)  # (B, L, hs/2), fp32
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, nh, L, hs); cos/sin (B, L, hs). Rotation in fp32, result in x's dtype (as transformers)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.head_dim = args.head_dim
        self.backend = args.attention_backend
        self.Wqkv = nn.Linear(args.dim, 3 * args.dim, bias=False)  # fused q, k, v
        self.Wo = nn.Linear(args.dim, args.dim, bias=False)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask) -> torch.Tensor:
        B, L, D = x.shape
        qkv = self.Wqkv(x).view(B, L, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.transpose(1, 3).unbind(dim=2)  # each (B, nh, L, hs)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        y = attend(q, k, v, mask, self.backend)  # (B, nh, L, hs)
        return self.Wo(y.transpose(1, 2).reshape(B, L, D))


class MLP(nn.Module):
    """GeGLU: Wi projects to 2 * intermediate; the first half goes through GELU and gates the second."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.Wi = nn.Linear(args.dim, 2 * args.intermediate, bias=False)
        self.Wo = nn.Linear(args.intermediate, args.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp, gate = self.Wi(x).chunk(2, dim=-1)
        return self.Wo(F.gelu(inp) * gate)


class Block(nn.Module):
    def __init__(self, args: ModelArgs, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        self.attention_type = args.layer_type(layer_id)
        # ModernBERT: the first layer reads the (already normed) embeddings, so it has no attn_norm.
        self.attn_norm = nn.LayerNorm(args.dim, eps=args.norm_eps, bias=False) if layer_id else nn.Identity()
        self.attn = Attention(args)
        self.mlp_norm = nn.LayerNorm(args.dim, eps=args.norm_eps, bias=False)
        self.mlp = MLP(args)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), rope, mask)
        return x + self.mlp(self.mlp_norm(x))


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.norm = nn.LayerNorm(args.dim, eps=args.norm_eps, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tok_embeddings(input_ids))


class Encoder(nn.Module):
    """`ModernBertModel`: embeddings, blocks, final norm; `layers` is a ModuleDict so ids stay stable."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embeddings = Embeddings(args)
        self.layers = nn.ModuleDict({str(i): Block(args, i) for i in range(args.n_layers)})
        self.final_norm = nn.LayerNorm(args.dim, eps=args.norm_eps, bias=False)
        self.rotary = nn.ModuleDict(
            {GLOBAL: RotaryEmbedding(args.head_dim, args.global_rope_theta),
             LOCAL: RotaryEmbedding(args.head_dim, args.local_rope_theta)}
        )

    def forward(self, input_ids: torch.Tensor, attn: AttentionInputs) -> torch.Tensor:
        h = self.embeddings(input_ids)  # (B, L, D)
        rope = {kind: rotary(attn.position_ids) for kind, rotary in self.rotary.items()}
        for block in self.layers.values():
            h = block(h, rope[block.attention_type], attn.masks[block.attention_type])
        return self.final_norm(h)


class PredictionHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.dim, args.dim, bias=False)
        self.norm = nn.LayerNorm(args.dim, eps=args.norm_eps, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(x)))


class DecoderBias(nn.Module):
    """The decoder's bias alone (its weight is the token embeddings), named `decoder.bias` as in transformers."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))


class ModernBertMLM(nn.Module):
    """The masked-language model: `model` (encoder), `head`, and a decoder tied to the token embeddings."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.model = Encoder(args)
        self.head = PredictionHead(args)
        self.decoder = DecoderBias(args.vocab_size) if args.decoder_bias else None

    def forward(
        self,
        input_ids: torch.Tensor,
        seq_lens: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        attn: AttentionInputs | None = None,
        return_logits: bool = False,
        num_masked: int | None = None,
    ) -> MaskedLMOutput:
        """Args:
            input_ids: (B, L) packed token ids.
            seq_lens: (B, S) zero-padded segment lengths summing to L per row; None means one segment
                per row. Ignored when `attn` (prebuilt by `build_attention_inputs`) is given.
            labels: (B, L) target ids at masked positions, IGNORE_INDEX (-100) elsewhere. When given,
                only masked positions go through head and decoder (sparse prediction, as ModernBERT).
            return_logits: with labels, also return the (n_masked, V) logits.
            num_masked: the number of labelled positions, when the caller knows it on the host (the
                masking ran on the CPU); saves a device-to-host sync per step. Must be exact.
        """
        if attn is None:
            attn = build_attention_inputs(
                seq_lens, input_ids.shape[1], self.args.local_attention_window, self.args.attention_backend,
                batch_size=input_ids.shape[0], device=input_ids.device,
            )
        h = self.model(input_ids, attn)  # (B, L, D)
        if labels is None:
            return MaskedLMOutput(None, self.decode(h), None)
        labels = labels.reshape(-1)
        masked = labels != IGNORE_INDEX
        if num_masked is None:
            idx = masked.nonzero().squeeze(1)  # a host sync: the count decides the shape
        else:
            # Masked positions first, in order (stable sort), without asking the device for the count.
            idx = torch.argsort((~masked).int(), stable=True)[:num_masked]
        logits = self.decode(h.reshape(-1, h.shape[-1]).index_select(0, idx))  # (n_masked, V)
        loss = F.cross_entropy(logits.float(), labels.index_select(0, idx))
        return MaskedLMOutput(loss, logits if return_logits else None, masked.sum())

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Head then the tied decoder (with its bias, if any): logits over the vocabulary."""
        bias = self.decoder.bias if self.decoder is not None else None
        return F.linear(self.head(h), self.model.embeddings.tok_embeddings.weight, bias)

    @torch.no_grad()
    def init_weights(self) -> None:
        """ModernBERT init (truncated normal; 'out' projections scaled by 1/sqrt(2 n_layers)); norms to 1.

        Call after `to_empty` when the model was built on the meta device.
        """
        std_in = self.args.initializer_range
        std_out = std_in / math.sqrt(2.0 * self.args.n_layers)
        cutoff = self.args.initializer_cutoff_factor

        def trunc(weight: torch.Tensor, std: float) -> None:
            nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-cutoff * std, b=cutoff * std)

        trunc(self.model.embeddings.tok_embeddings.weight, std_in)
        for block in self.model.layers.values():
            trunc(block.attn.Wqkv.weight, std_in)
            trunc(block.attn.Wo.weight, std_out)
            trunc(block.mlp.Wi.weight, std_in)
            trunc(block.mlp.Wo.weight, std_out)
        trunc(self.head.dense.weight, std_out)
        if self.decoder is not None:
            nn.init.zeros_(self.decoder.bias)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)

    def num_params(self, exclude_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embedding:
            n -= self.model.embeddings.tok_embeddings.weight.numel()
        return n

    def flops_per_token(self, seq_len: int, masked_fraction: float | None = None) -> float:
        """Training FLOPs per token (forward + backward), for MFU; see `flops_per_token`."""
        return flops_per_token(self.args, seq_len, masked_fraction)


def count_params(args: ModelArgs) -> int:
    """Parameter count of a preset without allocating it (built on the meta device)."""
    with torch.device("meta"):
        return ModernBertMLM(args).num_params()


def _head_and_body_params(args: ModelArgs) -> tuple[int, int]:
    """(body, head) parameter counts: body = blocks and norms; head = head.dense and the tied decoder."""
    with torch.device("meta"):
        model = ModernBertMLM(args)
    n_body = model.num_params(exclude_embedding=True) - model.head.dense.weight.numel()
    if model.decoder is not None:  # a bias is an addition, not a matmul
        n_body -= model.decoder.bias.numel()
    n_head = model.head.dense.weight.numel() + model.model.embeddings.tok_embeddings.weight.numel()
    return n_body, n_head


def matmul_flops_per_token(args: ModelArgs, masked_fraction: float | None = None) -> float:
    """Training FLOPs per token of every matmul but attention's scores (forward + backward): 6N for the body,
    and for head + tied decoder 6N scaled by the share of tokens that go through them (sparse prediction)."""
    n_body, n_head = _head_and_body_params(args)
    fraction = 1.0 if masked_fraction is None else masked_fraction
    return 6.0 * n_body + 6.0 * n_head * fraction


def flops_per_token(args: ModelArgs, seq_len: int, masked_fraction: float | None = None) -> float:
    """6N for the matmuls plus the attention scores, as nanoGPT / torchtitan: the dense upper bound.

    Attention costs 12 * dim * (keys attended) per layer and token (QK^T and AV, forward and backward):
    all `seq_len` keys on global layers, at most window + 1 on local layers. Document masking only lowers
    the work actually needed, so this is an upper bound; the trainer's MFU counts what a batch computes
    (`attention_flops`). The embedding lookup costs nothing, but the tied decoder is a real matmul: with
    sparse prediction (`masked_fraction` of tokens through head and decoder) those FLOPs are scaled.
    """
    local_keys = min(seq_len, args.local_attention_window + 1)
    attn = sum(
        12 * args.dim * (seq_len if args.layer_type(i) == GLOBAL else local_keys) for i in range(args.n_layers)
    )
    return matmul_flops_per_token(args, masked_fraction) + attn


def window_pairs(lengths: torch.Tensor, half: int) -> torch.Tensor:
    """(query, key) pairs inside documents of these lengths with |q - k| <= half: n + 2 * sum_{d<=m} (n - d),
    m = min(half, n - 1); n^2 when the window covers the document."""
    n = lengths.long()
    m = torch.clamp(torch.minimum(n - 1, torch.full_like(n, half)), min=0)
    return torch.where(n > 0, n + 2 * (m * n - m * (m + 1) // 2), torch.zeros_like(n))


def attention_flops(args: ModelArgs, seq_lens: torch.Tensor, pad_len: torch.Tensor | None = None) -> float:
    """Training FLOPs (forward + backward) of attention's scores for one packed batch, counting only the
    (query, key) pairs the masks keep: on global layers sum(len_i^2) over documents (not L^2 per row), on
    local layers the pairs within the window inside each document. A row's padding segment (`pad_len`,
    its last segment) is left out: it is not useful work. 12 * dim FLOPs per pair and layer."""
    lengths = seq_lens.long()
    half = args.local_attention_window // 2
    global_pairs = int((lengths * lengths).sum())
    local_pairs = int(window_pairs(lengths, half).sum())
    if pad_len is not None:
        pad = pad_len.long()
        global_pairs -= int((pad * pad).sum())
        local_pairs -= int(window_pairs(pad, half).sum())
    n_global = sum(args.layer_type(i) == GLOBAL for i in range(args.n_layers))
    return 12.0 * args.dim * (n_global * global_pairs + (args.n_layers - n_global) * local_pairs)


__all__ = [
    "IGNORE_INDEX",
    "PRESETS",
    "attention_flops",
    "matmul_flops_per_token",
    "MaskedLMOutput",
    "ModelArgs",
    "ModernBertMLM",
    "count_params",
    "flops_per_token",
    "model_args",
]
