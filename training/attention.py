"""Attention over packed sequences: document masks, sliding windows and position ids from `seq_lens`.

A packed row of length L holds several documents back to back; `seq_lens [B, S]` gives their lengths
(zero-padded to S segments, summing to L per row). Tokens attend only inside their own segment, and local
layers further restrict that to |i - j| <= window / 2 (ModernBERT's 128-token window is +-64). Position
ids restart at 0 in every segment, so a packed document sees exactly what it would see alone.

Padding: when a row is not full, its last segment is a run of [PAD] tokens (the packer's `pad_len`).
It is treated as one more segment: pad tokens attend only to each other, never to (or from) a real
document, and they are never labelled, so they change neither the real tokens' outputs nor the loss.

Two paths produce the same result:
- `sdpa`: boolean masks (B, 1, L, L) for `F.scaled_dot_product_attention`, on any device (the CPU path);
- `flex`: FlexAttention `BlockMask`s, whose fully-masked blocks are skipped (the CUDA fast path).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

GLOBAL = "global"
LOCAL = "local"

_compiled_flex = None


@dataclass
class AttentionInputs:
    """What every layer needs besides its hidden states: position ids and one mask per layer type."""

    position_ids: torch.Tensor  # (B, L), restarting at 0 in each segment
    masks: dict  # {GLOBAL: mask, LOCAL: mask}; a bool tensor (B, 1, L, L) or a flex BlockMask


def validate_seq_lens(seq_lens: torch.Tensor, seq_len: int) -> None:
    """Fail clearly on a batch whose segment lengths do not tile the row (would silently mis-mask)."""
    if seq_lens.dim() != 2:
        raise ValueError(f"seq_lens must be (batch, segments), got shape {tuple(seq_lens.shape)}")
    if (seq_lens < 0).any():
        raise ValueError("seq_lens has negative segment lengths")
    sums = seq_lens.sum(-1)
    if (sums != seq_len).any():
        raise ValueError(f"seq_lens must sum to the row length {seq_len}; got row sums {sums.tolist()}")


def document_ids(seq_lens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """(B, L) index of the segment each token belongs to."""
    ends = seq_lens.long().cumsum(-1)  # (B, S), non-decreasing; zero padding repeats the total
    pos = torch.arange(seq_len, device=seq_lens.device).expand(seq_lens.shape[0], seq_len).contiguous()
    return torch.searchsorted(ends, pos, right=True)


def position_ids(seq_lens: torch.Tensor, doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) position of each token inside its own segment."""
    starts = seq_lens.long().cumsum(-1) - seq_lens.long()  # (B, S)
    pos = torch.arange(doc_ids.shape[1], device=doc_ids.device).expand_as(doc_ids)
    return pos - starts.gather(1, doc_ids)


def sdpa_masks(doc_ids: torch.Tensor, window: int) -> dict[str, torch.Tensor]:
    """Boolean masks (True = may attend) of shape (B, 1, L, L) for global and local layers."""
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]  # (B, L, L)
    idx = torch.arange(doc_ids.shape[1], device=doc_ids.device)
    near = (idx[:, None] - idx[None, :]).abs() <= window // 2  # (L, L)
    return {GLOBAL: same_doc.unsqueeze(1), LOCAL: (same_doc & near).unsqueeze(1)}


def flex_block_masks(doc_ids: torch.Tensor, window: int, block_size: int = 128) -> dict:
    """FlexAttention block masks: same document (global), same document and within the window (local).

    Blocks that no query of a tile may attend are skipped by the kernel, so packed documents and the
    128-token window save real work instead of only hiding it.
    """
    B, L = doc_ids.shape
    half = window // 2

    def document(b, h, q_idx, kv_idx):
        return doc_ids[b, q_idx] == doc_ids[b, kv_idx]

    def document_window(b, h, q_idx, kv_idx):
        return (doc_ids[b, q_idx] == doc_ids[b, kv_idx]) & ((q_idx - kv_idx).abs() <= half)

    compile_mask = doc_ids.is_cuda  # compiled mask building is much faster; on CPU keep it eager
    return {
        kind: create_block_mask(
            mod, B, None, L, L, device=doc_ids.device, BLOCK_SIZE=block_size, _compile=compile_mask
        )
        for kind, mod in ((GLOBAL, document), (LOCAL, document_window))
    }


def build_attention_inputs(
    seq_lens: torch.Tensor | None,
    seq_len: int,
    window: int,
    backend: str = "sdpa",
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    block_size: int = 128,
) -> AttentionInputs:
    """Position ids and per-layer-type masks for a packed batch.

    `seq_lens=None` means one segment per row (needs `batch_size`). Segment lengths are checked when
    they live on the CPU (a check on the GPU would stall the pipeline; the loader checks there).
    """
    if seq_lens is None:
        if batch_size is None:
            raise ValueError("batch_size is needed when seq_lens is None")
        seq_lens = torch.full((batch_size, 1), seq_len, dtype=torch.long, device=device)
    if seq_lens.device.type == "cpu":
        validate_seq_lens(seq_lens, seq_len)
    if device is not None:
        seq_lens = seq_lens.to(device, non_blocking=True)
    doc_ids = document_ids(seq_lens, seq_len)
    if backend == "sdpa":
        masks = sdpa_masks(doc_ids, window)
    elif backend == "flex":
        masks = flex_block_masks(doc_ids, window, block_size)
    else:
        raise ValueError(f"unknown attention backend {backend!r}; use 'sdpa' or 'flex'")
    return AttentionInputs(position_ids(seq_lens, doc_ids), masks)


class AttentionCache:
    """Attention inputs per document layout, built once and reused whenever the layout comes back.

    The key is the batch's `seq_lens` as read on the host (the loader's CPU tensor), so looking it up costs
    no device work. Layouts do repeat: rows of one full-length document (long documents split into rows)
    are common, more so at 8192. Entries are dropped least recently used past `max_entries` or past
    `max_bytes` of mask memory (dense SDPA masks are (B, 1, L, L) booleans; flex block masks are small).
    """

    def __init__(self, seq_len: int, window: int, backend: str, device: torch.device | str,
                 block_size: int = 128, max_entries: int = 64, max_bytes: int = 512 * 2**20):
        self.seq_len, self.window, self.backend = seq_len, window, backend
        self.device, self.block_size = torch.device(device), block_size
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.entries: OrderedDict[tuple, tuple[AttentionInputs, int]] = OrderedDict()
        self.builds = 0  # how many layouts were built (the rest were reused)

    def get(self, seq_lens: torch.Tensor) -> AttentionInputs:
        """Inputs for a batch whose (B, S) CPU `seq_lens` describe its layout."""
        if seq_lens.device.type != "cpu":
            raise ValueError("AttentionCache keys on the host's seq_lens; pass them before moving to the device")
        key = (tuple(seq_lens.shape), seq_lens.to(torch.int32).numpy().tobytes())
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
            return found[0]
        built = build_attention_inputs(seq_lens, self.seq_len, self.window, self.backend, device=self.device,
                                       block_size=self.block_size)
        self.builds += 1
        self.entries[key] = (built, _nbytes(built))
        while len(self.entries) > 1 and (len(self.entries) > self.max_entries or
                                         sum(size for _, size in self.entries.values()) > self.max_bytes):
            self.entries.popitem(last=False)
        return built


def _nbytes(inputs: AttentionInputs) -> int:
    """Device memory an entry holds: its position ids and its masks' tensors (a BlockMask's block indices)."""
    tensors = [inputs.position_ids]
    for mask in inputs.masks.values():
        tensors += [mask] if torch.is_tensor(mask) else [t for t in mask.as_tuple() if torch.is_tensor(t)]
    return sum(t.numel() * t.element_size() for t in tensors)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask, backend: str) -> torch.Tensor:
    """Scaled dot-product attention, q/k/v (B, nh, L, hs), with a bool mask (sdpa) or a BlockMask (flex)."""
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if q.is_cuda and not torch.compiler.is_compiling():
        # Eager flex_attention materialises the full score matrix; the fused kernel needs compilation.
        global _compiled_flex
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        return _compiled_flex(q, k, v, block_mask=mask)
    return flex_attention(q, k, v, block_mask=mask)
