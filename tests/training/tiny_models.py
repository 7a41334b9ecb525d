"""Tiny encoder checkpoints trained on the spot from local text, for tests and smoke runs.

No downloads: a small byte-level BPE tokenizer (`training.tokenizer.train_tokenizer`) and a
`ModernBertForMaskedLM` of a few hundred thousand parameters, optionally given a few hundred MLM steps
on e-commerce text so that two checkpoints differ in what they know.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from training.evaluation.product_matching import PREFIX


def ecommerce_texts(shared: Path, limit: int = 2000) -> list[str]:
    """Offer titles from the WDC training pairs (both categories): short e-commerce text."""
    texts = []
    for category in ("computers", "cameras"):
        for line in (shared / "eval" / "wdc-products" / category / "train.txt.small").read_text().splitlines():
            for field in line.split("\t")[:2]:
                texts.append(field.replace(PREFIX, "").strip())
    return texts[:limit]


def general_texts(shared: Path, limit: int = 200, chars: int = 3000) -> list[str]:
    """Reference main content of wcxb-dev pages of every type, cut to `chars` (for the tokenizer)."""
    texts = []
    for path in sorted((shared / "pages" / "wcxb-dev" / "ground-truth").glob("*.json"))[:limit]:
        texts.append((json.loads(path.read_text())["ground_truth"]["main_content"] or "")[:chars])
    return texts


def build_tiny_encoder(tokenizer_dir: Path, out_dir: Path, seed: int = 0, mlm_texts: list[str] | None = None,
                       mlm_steps: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Save a tiny ModernBertForMaskedLM (+ the tokenizer) under out_dir, MLM-trained when texts are given."""
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertForMaskedLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 3 // 2, num_hidden_layers=layers,
        num_attention_heads=2, max_position_embeddings=512, local_attention=64, global_attn_every_n_layers=2,
        pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
    )
    model = ModernBertForMaskedLM(config)
    if mlm_texts and mlm_steps:
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
        rng = random.Random(seed)
        model.train()
        for _ in range(mlm_steps):
            enc = tokenizer(rng.sample(mlm_texts, 16), truncation=True, max_length=64, padding=True,
                            return_tensors="pt", return_special_tokens_mask=True)
            maskable = (enc["special_tokens_mask"] == 0) & (enc["attention_mask"] == 1)
            chosen = (torch.rand(maskable.shape) < 0.3) & maskable
            labels = enc["input_ids"].masked_fill(~chosen, -100)
            inputs = enc["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
            loss = model(input_ids=inputs, attention_mask=enc["attention_mask"], labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def build_tiny_pair(shared: Path, root: Path, mlm_steps: int = 150) -> tuple[Path, Path]:
    """Two tiny checkpoints sharing one tokenizer: `general` (random init) and `ecom` (MLM on offers)."""
    from training.tokenizer import train_tokenizer

    tokenizer_dir = train_tokenizer(general_texts(shared) + ecommerce_texts(shared, 500), root / "tokenizer",
                                    vocab_size=1024)
    general = build_tiny_encoder(tokenizer_dir, root / "general", seed=0)
    ecom = build_tiny_encoder(tokenizer_dir, root / "ecom", seed=0, mlm_texts=ecommerce_texts(shared),
                              mlm_steps=mlm_steps)
    return general, ecom
