"""The ModernBERT-convention BPE tokenizer, trained on real page texts (wcxb-dev ground truth); folders by
path or URI."""

from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from infra.core import fs
from training.tokenizer import SPECIAL_TOKENS, load_tokenizer, save_tokenizer, train_tokenizer

pytestmark = pytest.mark.shared_data

ECOM_PAGE_TYPES = {"product", "collection"}


def wcxb_documents(shared_data: Path, limit: int, ecom: bool | None = None, max_chars: int = 4000) -> list[dict]:
    """Corpus rows (doc_id, url, text, source, ecom_score, category) from wcxb-dev main contents."""
    root = shared_data / "pages" / "wcxb-dev"
    with open(root / "labels.csv") as f:
        page_types = {row["file_id"]: row["page_type"] for row in csv.DictReader(f)}
    rows = []
    for path in sorted((root / "ground-truth").glob("*.json")):
        page_type = page_types.get(path.stem, "")
        is_ecom = page_type in ECOM_PAGE_TYPES
        if ecom is not None and is_ecom != ecom:
            continue
        page = json.loads(path.read_text())
        rows.append({
            "doc_id": f"wcxb-{path.stem}",
            "url": page["url"],
            "text": page["ground_truth"]["main_content"][:max_chars],
            "source": "wcxb-dev",
            "ecom_score": 1.0 if is_ecom else 0.0,
            "category": page_type,
        })
        if len(rows) == limit:
            break
    return rows


def write_corpus(folder: Path, rows: list[dict]) -> Path:
    """A corpus folder as the corpus stage writes it: Parquet parts of kept documents."""
    folder.mkdir(parents=True, exist_ok=True)
    half = len(rows) // 2
    for i, part in enumerate((rows[:half], rows[half:])):
        pq.write_table(pa.Table.from_pylist(part), folder / f"part-{i:05d}.parquet")
    return folder


@pytest.fixture(scope="module")
def texts(shared_data) -> list[str]:
    return [row["text"] for row in wcxb_documents(shared_data, 150)]


@pytest.fixture(scope="module")
def tokenizer_dir(texts, tmp_path_factory) -> Path:
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok") / "tokenizer", vocab_size=1024)


def test_autotokenizer_loads_trained_tokenizer_with_special_tokens(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert len(tok) == 1024
    assert tok.convert_ids_to_tokens(list(range(5))) == SPECIAL_TOKENS
    assert (tok.unk_token, tok.cls_token, tok.sep_token, tok.pad_token, tok.mask_token) == tuple(SPECIAL_TOKENS)
    assert (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id) == (1, 2, 3, 4)


def test_post_processor_wraps_text_in_cls_and_sep(tokenizer_dir):
    tok = load_tokenizer(tokenizer_dir)
    ids = tok("Free shipping on orders over $50")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "Free shipping on orders over $50"


def test_byte_level_bpe_round_trips_real_text(tokenizer_dir, texts):
    tok = load_tokenizer(tokenizer_dir)
    for text in texts[:40]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids  # byte-level: nothing is unknown
        assert tok.decode(ids) == unicodedata.normalize("NFC", text)


def test_tiny_corpus_vocab_is_padded_to_the_requested_multiple_of_64(tmp_path):
    out = train_tokenizer(["tiny corpus, tiny vocabulary"] * 3, tmp_path / "tok", vocab_size=1024)
    tok = load_tokenizer(out)
    assert len(tok) == 1024
    assert tok.convert_ids_to_tokens(1023).startswith("[unused")


@pytest.mark.parametrize("vocab_size", [1000, 256])
def test_bad_vocab_size_is_refused(tmp_path, vocab_size):
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["some text"], tmp_path / "tok", vocab_size=vocab_size)


def test_tokenizer_trains_into_and_loads_from_s3_and_file_uris(texts, s3_server, tmp_path):
    uri = fs.join(s3_server, "tokenizers/tok")
    assert train_tokenizer(texts[:30], uri, vocab_size=512) == uri
    assert fs.is_file(fs.join(uri, "tokenizer.json"))
    tok = load_tokenizer(uri)
    assert len(tok) == 512 and tok.mask_token_id == 4
    local = save_tokenizer(tok, f"file://{tmp_path}/copy")  # a loaded tokenizer saved again, by file:// URI
    again = load_tokenizer(local)
    text = texts[0][:500]
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again(text)["input_ids"] == AutoTokenizer.from_pretrained(tmp_path / "copy")(text)["input_ids"]
