"""The Ray Data tokenize jobs end to end on real page texts: run_demo / run_tokenize, shards, manifest,
loaders, CLI, and the same over `file://` and `s3://` (a real S3 endpoint on 127.0.0.1)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from infra.core import fs
from infra.core.config import TokenSetConfig, load_config
from infra.core.manifest import check_manifest, read_manifest
from infra.core.paths import PROJECT_ROOT
from ray_jobs.loader import RayPackedBatches, iter_rank_batches, stream_dataset
from ray_jobs.tokenize import document_split, pack, run_demo, run_tokenize
from tests.training.test_tokenizer import wcxb_documents, write_corpus
from training.data import PackedShardLoader, read_shard, shard_files
from training.tokenizer import load_tokenizer

DEMO_CONFIG = PROJECT_ROOT / "infra" / "configs" / "demo.yaml"
TEST_MIXTURES = {"general-128": {"general": 1.0}, "context-256": {"general": 0.7, "ecom": 0.3},
                 "decay-256": {"ecom": 0.8, "general": 0.2}}

pytestmark = [pytest.mark.ray, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def demo(ray_cluster, shared_data, tmp_path_factory) -> tuple[Path, dict, dict[str, str], dict]:
    """run_demo with the demo's config (its token sets) over a general corpus (non-shop pages, plus an
    empty and a 1-token document) and an e-commerce corpus (product and collection pages)."""
    root = tmp_path_factory.mktemp("demo")
    general = wcxb_documents(shared_data, 40, ecom=False, max_chars=3000)
    general += [dict(general[0], doc_id="empty", text="  \n"), dict(general[0], doc_id="tiny", text="ok")]
    write_corpus(root / "general" / "corpus", general)
    write_corpus(root / "ecom" / "corpus", wcxb_documents(shared_data, 24, ecom=True, max_chars=3000))
    config = load_config(DEMO_CONFIG, overrides={"tokenize": {"vocab_size": 512, "validation_fraction": 0.2}})
    # demo.yaml's token sets (names and lengths) over this test's two corpora, with no token budget (no repeats)
    config.tokenize.corpora = {"general": "general/corpus", "ecom": "ecom/corpus"}
    config.tokenize.sets = {name: TokenSetConfig(seq_len=s.seq_len, mixture=TEST_MIXTURES[name])
                            for name, s in config.tokenize.sets.items()}
    assert config.run.output != str(root)  # run_demo's root is the output root
    result = run_demo(config, root)
    texts = {row["doc_id"]: row["text"] for row in general + wcxb_documents(shared_data, 24, ecom=True, max_chars=3000)}
    return root, result, texts, None


def read_split(token_set: Path, split: str) -> pa.Table:
    return pa.concat_tables(pq.read_table(f) for f in sorted((token_set / split).glob("part-*.parquet")))


def test_run_demo_writes_tokenizer_and_the_token_sets_of_the_demo_config(demo):
    root, result, texts, _ = demo
    assert result["tokenizer"] == str(root / "tokenizer")
    assert set(result["tokens"]) == {"general-128", "context-256", "decay-256"}  # demo.yaml's tokenize.sets
    tok = load_tokenizer(root / "tokenizer")
    assert len(tok) == 512
    tokenizer_manifest = read_manifest(root / "tokenizer")
    assert tokenizer_manifest["stage"] == "train-tokenizer"
    empty = sum(1 for text in texts.values() if not text.strip())
    assert check_manifest(tokenizer_manifest).filtered == {"empty_text": empty}
    assert tokenizer_manifest["counts"]["input"] == len(texts)
    for name, seq_len in {"general-128": 128, "context-256": 256, "decay-256": 256}.items():
        assert result["tokens"][name]["path"] == str(root / "tokens" / name)
        assert result["tokens"][name]["seq_len"] == seq_len
        manifest = read_manifest(root / "tokens" / name)
        assert manifest["stage"] == "pack" and manifest["seq_len"] == seq_len
        assert manifest["config"]["run"]["output"] == str(root)
        assert (root / "tokens" / name / "config.resolved.yaml").is_file()
        assert len(load_tokenizer(root / "tokens" / name / "tokenizer")) == 512


@pytest.mark.parametrize("name, seq_len", [("general-128", 128), ("context-256", 256), ("decay-256", 256)])
def test_shards_have_exact_lengths_and_consistent_boundaries(demo, name, seq_len):
    root, _, _, _ = demo
    for split in ("train", "validation"):
        table = read_split(root / "tokens" / name, split)
        assert table.column("seq_index").to_pylist() == list(range(table.num_rows))
        for ids, lens, pad_len, doc_ids in zip(*(table.column(c).to_pylist() for c in
                                                 ("input_ids", "seq_lens", "pad_len", "doc_ids")), strict=True):
            assert len(ids) == seq_len and sum(lens) == seq_len and len(doc_ids) == len(lens)
            start = 0
            for length, doc_id in zip(lens, doc_ids, strict=True):
                segment = ids[start : start + length]
                if doc_id:
                    assert segment[0] == 1 and segment[-1] == 2
                else:  # the padding segment: last, all [PAD], pad_len long
                    assert set(segment) == {3} and length == pad_len and start + length == seq_len
                start += length


def test_manifest_counts_add_up_and_equal_the_shards(demo):
    root, _, _, _ = demo
    manifest = json.loads((root / "tokens" / "context-256" / "manifest.json").read_text())
    general = manifest["sources"]["general"]
    assert general["documents_skipped"] == {"empty_text": 1, "too_short": 1}
    counts = check_manifest(manifest)  # the one schema: input = kept + filtered
    assert counts.input == sum(s["documents_in"] for s in manifest["sources"].values())
    assert counts.kept == sum(s["documents_packed"] for s in manifest["sources"].values())
    assert counts.filtered == sum((Counter(s["documents_skipped"]) for s in manifest["sources"].values()), Counter())
    for source in manifest["sources"].values():
        assert source["documents_in"] == source["documents_packed"] + sum(source["documents_skipped"].values())
        packed = source["packed"]
        assert source["documents_packed"] == packed["train"]["documents"] + packed["validation"]["documents"]
    for split, counts in manifest["splits"].items():
        table = read_split(root / "tokens" / "context-256", split)
        assert counts["sequences"] == table.num_rows
        pad = np.array(table.column("pad_len").to_pylist())
        sources = np.array(table.column("source").to_pylist())
        for name, c in counts["tokens_per_source"].items():
            mine = sources == name
            assert c["sequences"] == mine.sum()
            assert c["pad"] == pad[mine].sum() and c["real"] == 256 * mine.sum() - pad[mine].sum()
            assert manifest["sources"][name]["mixture"][split]["selected_sequences"] == mine.sum()


def test_mixture_shares_follow_the_weights(demo):
    root, _, _, _ = demo
    for name, weights in {"context-256": {"general": 0.7, "ecom": 0.3},
                          "decay-256": {"ecom": 0.8, "general": 0.2}}.items():
        sources = Counter(read_split(root / "tokens" / name, "train").column("source").to_pylist())
        total = sum(sources.values())
        for source, weight in weights.items():
            assert abs(sources[source] - weight * total) <= 1


def test_packed_documents_decode_back_to_their_normalised_text(demo):
    root, _, texts, _ = demo
    tok = load_tokenizer(root / "tokenizer")
    # the mixture shuffles sequences; packing order (packed_index) puts a document's chunks back in order
    table = read_split(root / "tokens" / "general-128", "train").sort_by("packed_index")
    assert table.column("packed_index").to_pylist() == list(range(table.num_rows))  # one source, no repeats
    tokens: dict[str, list[int]] = defaultdict(list)
    for ids, lens, doc_ids in zip(*(table.column(c).to_pylist() for c in ("input_ids", "seq_lens", "doc_ids")),
                                  strict=True):
        start = 0
        for length, doc_id in zip(lens, doc_ids, strict=True):
            if doc_id:
                tokens[doc_id] += ids[start + 1 : start + length - 1]  # chunks in order, frame removed
            start += length
    split_docs = json.loads((root / "tokens" / "general-128" / "manifest.json").read_text())
    assert split_docs["sources"]["general"]["split_documents"] > 0
    for doc_id, ids in tokens.items():
        expected = tok(texts[doc_id], add_special_tokens=False)["input_ids"]
        assert ids == expected  # long documents rejoin into the original token stream
        assert tok.decode(ids) == tok.decode(tok(texts[doc_id])["input_ids"], skip_special_tokens=True)


def test_validation_split_is_by_doc_id_and_disjoint(demo):
    root, _, _, _ = demo
    docs = {s: {d for row in read_split(root / "tokens" / "general-128", s).column("doc_ids").to_pylist()
                for d in row if d} for s in ("train", "validation")}
    assert docs["validation"] and not docs["train"] & docs["validation"]
    assert all(document_split(d, 0.2) == "validation" for d in docs["validation"])


def test_same_seed_same_shards_other_seed_other_order_and_upsampling_is_recorded(demo, tmp_path):
    root, _, _, _ = demo
    corpora = [("general", root / "general" / "corpus", 0.5), ("ecom", root / "ecom" / "corpus", 0.5)]
    args = dict(tokenizer=root / "tokenizer", seq_len=128, validation_fraction=0.2)
    pack(corpora, output=tmp_path / "a", seed=7, **args)
    pack(corpora, output=tmp_path / "b", seed=7, **args)
    pack(corpora, output=tmp_path / "c", seed=8, **args)
    a, b, c = (read_split(tmp_path / x, "train") for x in "abc")
    assert a.equals(b) and not a.equals(c)
    big = pack(corpora, output=tmp_path / "big", seed=7, num_sequences=2000, **args)
    ecom = big["sources"]["ecom"]["mixture"]["train"]
    assert ecom["selected_sequences"] == 1000 and ecom["repeats"] > 1


def test_ray_loader_matches_plain_loader_per_rank_and_resumes_by_skip_count(demo):
    root, _, _, _ = demo
    path = root / "tokens" / "context-256"
    plain = {rank: [b["seq_index"].tolist() for b in PackedShardLoader(str(path), 4, rank, 2, seed=3)]
             for rank in range(2)}
    ds = stream_dataset(path, seed=3, global_batch=8, start_batch=0, batches=len(plain[0])).materialize()
    for rank in range(2):  # one run, read by both ranks
        ray_batches = list(iter_rank_batches(ds, 4, rank, 2))
        assert [b["seq_index"].tolist() for b in ray_batches] == plain[rank]
        first = ray_batches[0]
        assert first["input_ids"].shape == (4, 256) and (first["seq_lens"].sum(1) == 256).all()
    skipped = stream_dataset(path, seed=3, global_batch=8, start_batch=3, batches=len(plain[1]) - 3)
    assert [b["seq_index"].tolist() for b in iter_rank_batches(skipped, 4, 1, 2)] == plain[1][3:]


def test_both_loaders_give_the_same_batches_in_every_epoch_and_resume_across_an_epoch_boundary(demo):
    """Three epochs over a split whose size is not a multiple of the global batch (a ragged last batch every
    epoch), read in windows of about 16 sequences: the Ray stream drops each epoch's ragged rest as the plain
    loader does, so every batch of every epoch agrees per rank, and a Ray Train source resumed from a checkpoint
    state lands on the same batch as the plain loader."""
    root, _, _, _ = demo
    path = root / "tokens" / "context-256"
    batch, world, buffer = 3, 2, 16 * 256
    plain = {rank: PackedShardLoader(str(path), batch, rank, world, seed=5, shuffle_tokens=buffer)
             for rank in range(world)}
    assert len(plain[0].index) % (batch * world), "the test needs a ragged last global batch"
    per_rank = {rank: [[b["seq_index"].tolist() for b in loader] for _ in range(3)] for rank, loader in plain.items()}
    epoch_batches = len(per_rank[0][0])
    ds = stream_dataset(path, seed=5, global_batch=batch * world, start_batch=0, batches=3 * epoch_batches,
                        shuffle_tokens=buffer).materialize()
    for rank in range(world):
        ray_batches = [b["seq_index"].tolist() for b in iter_rank_batches(ds, batch, rank, world)]
        assert ray_batches == [b for epoch in per_rank[rank] for b in epoch]
    assert per_rank[0][0] != per_rank[0][1]  # each epoch reshuffled
    # Resume just before the end of epoch 0: the next batches run on into epoch 1 in both loaders.
    done = epoch_batches - 1
    source = RayPackedBatches(str(path), batch, 1, world, seed=5, shuffle=True, plan_batches=3 * epoch_batches,
                              shuffle_tokens=buffer)
    source.load_state_dict({"consumed": done, "global_batch": batch * world})
    ray_next = [b["seq_index"].tolist() for _, b in zip(range(3), source, strict=False)]
    loader = PackedShardLoader(str(path), batch, 1, world, seed=5, shuffle_tokens=buffer)
    loader.load_state_dict({**loader.state_dict(), "epoch": 0, "batches_consumed": done})
    stream = loader.forever()
    assert ray_next == [next(stream)["seq_index"].tolist() for _ in range(3)]
    assert source.state_dict()["consumed"] == done + 3


def write_jsonl_corpus(folder: Path, texts: list[str]) -> Path:
    folder.mkdir()
    (folder / "notes.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts))
    return folder


def test_cli_packs_a_jsonl_corpus_without_doc_ids_with_a_parquet_one(demo, tmp_path):
    from infra.cli import app

    root, _, texts, _ = demo
    jsonl = write_jsonl_corpus(tmp_path / "notes", list(texts.values())[:10])
    result = CliRunner().invoke(app, [
        "tokenize", "pack", "--corpus", str(jsonl), "--corpus", str(root / "ecom" / "corpus"),
        "--weight", "0.5", "--weight", "0.5", "--tokenizer", str(root / "tokenizer"),
        "--seq-len", "64", "--output", str(tmp_path / "out"), "--tokenize.validation_fraction=0",
    ])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert set(manifest["sources"]) == {"notes", "ecom"} and manifest["splits"]["validation"]["sequences"] == 0
    assert manifest["sources"]["notes"]["documents_packed"] == 10
    assert manifest["splits"]["train"]["tokens_per_source"]["notes"]["sequences"] > 0


@pytest.mark.heavy
def test_cli_trains_a_tokenizer(demo, tmp_path):
    from infra.cli import app

    root, _, texts, _ = demo
    jsonl = write_jsonl_corpus(tmp_path / "notes", list(texts.values())[:10])
    result = CliRunner().invoke(app, [
        "tokenize", "train-tokenizer", "--corpus", str(jsonl), "--corpus", str(root / "ecom" / "corpus"),
        "--output", str(tmp_path / "tok"), "--vocab-size", "384",
    ])
    assert result.exit_code == 0, result.output
    assert len(load_tokenizer(tmp_path / "tok")) == 384
    manifest = json.loads((tmp_path / "tok" / "manifest.json").read_text())
    assert manifest["counts"]["input"] == 10 + 24 and manifest["padding_tokens"] >= 0


def test_gzipped_jsonl_corpora_are_read_and_bad_lines_named(tmp_path):
    """`corpus_inputs` lists `.jsonl.gz` files: tokenizer training and packing (one `read_fragment`) read them, and a
    line that is not JSON, or a broken gzip stream, is one error naming the file."""
    import gzip

    from infra.core.manifest import InputError, StageStats
    from ray_jobs.tokenize import iter_corpus_texts

    folder = tmp_path / "gz"
    folder.mkdir()
    with gzip.open(folder / "part.jsonl.gz", "wt", encoding="utf-8") as out:
        out.write('{"text": "a packed offer"}\n\n{"text": "  "}\n{"doc_id": "x", "text": "another one"}\n')
    stats = StageStats()
    assert list(iter_corpus_texts([folder], stats)) == ["a packed offer", "another one"]
    assert (stats.input, stats.kept, dict(stats.filtered)) == (3, 2, {"empty_text": 1})

    with gzip.open(folder / "part.jsonl.gz", "wt", encoding="utf-8") as out:
        out.write('{"text": "fine"}\n{not json\n')
    with pytest.raises(InputError, match=r"part\.jsonl\.gz:2: not a UTF-8 JSON line"):
        list(iter_corpus_texts([folder], StageStats()))
    (folder / "part.jsonl.gz").write_bytes(gzip.compress(b'{"text": "fine"}\n' * 50)[:-12])
    with pytest.raises(InputError, match=r"part\.jsonl\.gz: unreadable after"):
        list(iter_corpus_texts([folder], StageStats()))


def test_run_tokenize_reads_and_writes_file_uris_as_configured(ray_cluster, shared_data, tmp_path):
    """Corpora, tokenizer and token sets all named by file:// URIs; the sets come from the config alone."""
    docs = wcxb_documents(shared_data, 12, ecom=True, max_chars=2000)
    write_corpus(tmp_path / "in" / "shop", docs)
    out = f"file://{tmp_path}/out"
    config = load_config(overrides={
        "run": {"output": out},
        "tokenize": {"vocab_size": 384, "validation_fraction": 0.0, "tokenizer": "tok",
                     "corpora": {"shop": f"file://{tmp_path}/in/shop"},
                     "sets": {"shop-64": {"seq_len": 64, "mixture": {"shop": 1.0}}}},
    })
    result = run_tokenize(config)
    assert result["tokenizer"] == f"{out}/tok" and list(result["tokens"]) == ["shop-64"]
    token_set = result["tokens"]["shop-64"]
    assert token_set["path"] == f"{out}/tokens/shop-64" and token_set["seq_len"] == 64
    assert read_manifest(f"{out}/tok")["counts"]["input"] == len(docs)
    manifest = read_manifest(token_set["path"])
    assert manifest["stage"] == "pack" and check_manifest(manifest).input == len(docs)
    assert manifest["inputs"] == [f"file://{tmp_path}/in/shop"]
    # lineage: the set was packed with the tokenizer this run trained (the corpus is a plain user folder)
    lineage = [(e["stage"], e["path"]) for e in manifest["upstream"]]
    assert lineage == [("train-tokenizer", str(tmp_path / "out" / "tok"))]
    assert (tmp_path / "out" / "tokens" / "shop-64" / "config.resolved.yaml").is_file()
    batches = list(PackedShardLoader(token_set["path"], batch_size=2, shuffle=False))
    assert len(batches) == token_set["train_sequences"] // 2 and all(b["input_ids"].shape == (2, 64) for b in batches)
    assert len(load_tokenizer(f"{out}/tokens/shop-64/tokenizer")) == 384


def test_run_tokenize_refuses_a_set_mixing_an_unknown_corpus(tmp_path):
    config = load_config(overrides={"run": {"output": str(tmp_path)},
                                    "tokenize": {"sets": {"x-64": {"seq_len": 64, "mixture": {"nowhere": 1.0}}}}})
    with pytest.raises(ValueError, match="nowhere"):
        run_tokenize(config)


def test_pack_reads_a_corpus_from_s3_and_writes_the_same_shards_there(demo, s3_server, tmp_path):
    """Ray Data reads the corpus from the bucket; shards, tokenizer and manifest are written to it, and
    both loaders read them back. The shards equal those of the same pack on local folders."""
    root, _, _, _ = demo
    bucket = fs.join(s3_server, "tokenize")
    fs.copy_dir(root / "ecom" / "corpus", fs.join(bucket, "ecom/corpus"))
    args = dict(seq_len=128, validation_fraction=0.2, rows_per_shard=16)
    local = pack([("ecom", root / "ecom" / "corpus", 1.0)], root / "tokenizer", output=tmp_path / "local", **args)
    remote_out = fs.join(bucket, "tokens/ecom-128")
    remote = pack([("ecom", fs.join(bucket, "ecom/corpus"), 1.0)], root / "tokenizer", output=remote_out, **args)
    assert read_manifest(remote_out)["counts"] == remote["counts"]
    assert remote["counts"]["input"] == local["counts"]["input"] == 24
    assert remote["splits"] == local["splits"]
    for split in ("train", "validation"):
        files = shard_files(remote_out, split)
        assert all(f.startswith("s3://") for f in files) and len(files) == len(shard_files(tmp_path / "local", split))
        for remote_file, local_file in zip(files, shard_files(tmp_path / "local", split), strict=True):
            assert read_shard(remote_file).equals(read_shard(local_file))
    assert len(load_tokenizer(fs.join(remote_out, "tokenizer"))) == 512
    plain = [b["seq_index"].tolist() for b in PackedShardLoader(remote_out, 4, seed=2)]
    assert plain == [b["seq_index"].tolist() for b in PackedShardLoader(str(tmp_path / "local"), 4, seed=2)]
    ds = stream_dataset(remote_out, seed=2, global_batch=4, start_batch=0, batches=len(plain))
    assert [b["seq_index"].tolist() for b in iter_rank_batches(ds, 4)] == plain
