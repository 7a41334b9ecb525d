"""Fault cases of issue 16 on stage outputs: nothing the platform did not write is deleted, and no failed,
interrupted or stale run leaves output that looks complete.

Where the issue describes what the command line does, the test runs `python -m infra.cli` in a subprocess
and checks the exit code, the one-line message and what is left on disk. These refusals happen before any
engine starts, so they take seconds; the Ray cases run in-process on the session's Ray cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.core import fs
from infra.core.manifest import InputError, StageStats, build_manifest, check_upstream, read_manifest, write_manifest
from infra.core.outputs import OutputError, mark_started, staged_output, unmark
from infra.core.paths import PROJECT_ROOT
from infra.sample_crawl.generate import generate_sample_crawl


def rexbert(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "infra.cli", *map(str, args)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def assert_refused(result: subprocess.CompletedProcess, *phrases: str) -> None:
    """Exit code 2 and one `error:` line naming the problem, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert lines and lines[-1].startswith("error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for phrase in phrases:
        assert phrase in lines[-1], lines[-1]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones too) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def finished(folder: Path, stage: str, inputs: list[str] | None = None) -> Path:
    """A finished stage output, written the way a stage writes one."""
    with staged_output(folder, stage, inputs or []) as staging:
        fs.write_text(fs.join(staging, "part-00000-0123456789.parquet"), "rows")
        write_manifest(staging, build_manifest(stage, StageStats(input=1, kept=1), inputs=inputs))
    return folder


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> Path:
    """A small generated crawl: one WARC file and its ground truth."""
    folder = tmp_path_factory.mktemp("crawl") / "crawl"
    generate_sample_crawl(folder, docs=12, seed=4, progress=False)
    return folder


# --- user data deleted --------------------------------------------------------------------------------


def test_extract_into_a_folder_of_user_files_is_refused_and_deletes_nothing(crawl, tmp_path):
    out = tmp_path / "mine"
    (out / "mydata").mkdir(parents=True)
    (out / "important.txt").write_text("keep me")
    (out / "mydata" / "model.bin").write_bytes(b"\x00weights")
    result = rexbert("corpus", "extract", "-i", crawl, "-o", out)
    assert_refused(result, str(out), "is not empty and is not a finished stage output")
    assert snapshot(out) == {"important.txt": b"keep me", "mydata/model.bin": b"\x00weights"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder beside it


def test_extract_with_its_input_folder_as_output_is_refused_and_keeps_the_crawl(crawl, tmp_path):
    before = snapshot(crawl)
    assert any(name.endswith(".warc.gz") for name in before) and "ground-truth.jsonl" in before
    result = rexbert("corpus", "extract", "-i", crawl, "-o", crawl)
    assert_refused(result, "overlaps the input")
    assert snapshot(crawl) == before


def test_extract_into_an_existing_file_is_refused_and_the_file_stays(crawl, tmp_path):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"PAR1 user data")
    result = rexbert("corpus", "extract", "-i", crawl, "-o", target)
    assert_refused(result, "is a file, not a folder")
    assert target.read_bytes() == b"PAR1 user data" and sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_build_into_a_root_that_no_build_wrote_is_refused_before_spark_starts(crawl, tmp_path):
    user_root = tmp_path / "project"
    user_root.mkdir()
    (user_root / "important.txt").write_text("keep me")
    other_stage = finished(tmp_path / "extracted", "extract")
    other_before = snapshot(other_stage)
    for root, phrase in ((user_root, "not a finished stage output"), (other_stage, "is a 'extract' stage output")):
        result = rexbert("corpus", "build", "-i", crawl, "-o", root, "--corpus.filter.ecommerce_filter=false")
        assert_refused(result, str(root), phrase, "not replaced by 'build'")
    assert snapshot(user_root) == {"important.txt": b"keep me"}
    assert snapshot(other_stage) == other_before


def test_export_evaluate_pack_and_train_tokenizer_refuse_a_users_folder_before_any_work(tmp_path):
    from infra.core.config import load_config
    from ray_jobs.evaluate import run_evaluation
    from ray_jobs.tokenize import pack, train_tokenizer_job
    from tests.training.test_attention import tiny_model
    from training.export import export_hf

    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.md").write_text("mine")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "docs.jsonl").write_text(json.dumps({"text": "socks and shoes"}) + "\n")
    model = tiny_model()
    with pytest.raises(OutputError, match="not a finished stage output.*not replaced by 'export'"):
        export_hf(model, model.args, user)
    with pytest.raises(OutputError, match="not replaced by 'evaluate'"):
        run_evaluation([str(tmp_path / "model")], ["fill-mask"], str(user), load_config(None))
    with pytest.raises(OutputError, match="not replaced by 'pack'"):
        pack([("c", corpus, 1.0)], tmp_path / "tokenizer", 64, user)
    with pytest.raises(OutputError, match="not replaced by 'train-tokenizer'"):
        train_tokenizer_job([corpus], user, vocab_size=320)
    assert snapshot(user) == {"notes.md": b"mine"} and sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "mine"]


def test_a_rerun_replaces_its_own_previous_export(tmp_path):
    from tests.training.test_attention import tiny_model
    from training.export import export_hf, load_exported

    model = tiny_model(seed=1)
    export_hf(tiny_model(seed=0), model.args, tmp_path / "export")
    export_hf(model, model.args, tmp_path / "export")
    assert read_manifest(tmp_path / "export")["stage"] == "export"
    restored = load_exported(tmp_path / "export")
    assert all((a == b).all() for a, b in zip(restored.state_dict().values(), model.state_dict().values(),
                                               strict=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


# --- lineage: unfinished and out-of-date inputs ---------------------------------------------------------


def test_dedup_refuses_a_filtered_folder_without_a_manifest(tmp_path):
    filtered = finished(tmp_path / "filtered", "filter")
    unmark(filtered)  # what a failed or interrupted filter run leaves (or a build that is rewriting it)
    result = rexbert("corpus", "dedup", "-i", filtered, "-o", tmp_path / "deduped")
    assert_refused(result, str(filtered), "unfinished 'filter' output")
    assert not (tmp_path / "deduped").exists()


def test_filter_refuses_an_extracted_folder_whose_own_input_changed_since(tmp_path):
    sample = finished(tmp_path / "sample-data", "sample-data")
    extracted = finished(tmp_path / "extracted", "extract", [str(sample)])
    assert read_manifest(extracted)["upstream"][0]["stage"] == "sample-data"
    finished(sample, "sample-data")  # the crawl is generated again: extracted/ no longer matches it
    result = rexbert("corpus", "filter", "-i", extracted, "-o", tmp_path / "filtered",
                     "--corpus.filter.ecommerce_filter=false")
    assert_refused(result, str(extracted), "is out of date", "rerun 'extract'")
    assert not (tmp_path / "filtered").exists()


def test_pack_refuses_an_unfinished_corpus_before_ray_reads_it(tmp_path):
    from ray_jobs.tokenize import pack

    corpus = tmp_path / "corpus"
    mark_started(corpus, "corpus")  # a corpus stage that never finished
    pq.write_table(pa.table({"text": ["socks and shoes"]}), corpus / "part-00000.parquet")
    with pytest.raises(InputError, match=r"corpus is an unfinished 'corpus' output"):
        pack([("c", corpus, 1.0)], tmp_path / "tokenizer", 64, tmp_path / "tokens")
    assert not (tmp_path / "tokens").exists()


def test_an_interrupted_object_store_output_is_unfinished_and_its_rerun_replaces_it(s3_server):
    target = fs.join(s3_server, "faults", "deduped")
    with pytest.raises(RuntimeError), staged_output(target, "dedup") as folder:
        fs.write_text(fs.join(folder, "part-00000.parquet"), "half")
        raise RuntimeError("executor lost")
    assert not fs.exists(fs.join(target, "manifest.json"))
    with pytest.raises(InputError, match="unfinished 'dedup' output"):
        check_upstream([target])
    finished_target = finished(target, "dedup")  # the same stage's rerun may replace it (nothing else may)
    assert [fs.name_of(f) for f in fs.list_files(finished_target)] == ["manifest.json", "part-00000-0123456789.parquet"]
    assert check_upstream([target])[0]["stage"] == "dedup"


# --- half-written output that looks complete: tokenize --------------------------------------------------


@pytest.fixture(scope="module")
def token_inputs(shared_data, tmp_path_factory) -> tuple[Path, Path, Path]:
    """A real-text corpus and two tokenizers of different vocabularies (trained without Ray)."""
    from tests.training.test_tokenizer import wcxb_documents, write_corpus
    from training.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("token-inputs")
    rows = wcxb_documents(shared_data, 30, max_chars=2000)
    corpus = write_corpus(root / "corpus", rows)
    texts = [row["text"] for row in rows]
    tokenizers = [Path(train_tokenizer(texts, root / f"tok-{size}", size)) for size in (384, 320)]
    return corpus, *tokenizers


@pytest.mark.ray
@pytest.mark.shared_data
def test_a_failed_repack_leaves_the_old_token_set_whole(ray_cluster, token_inputs, tmp_path):
    from ray_jobs.tokenize import pack
    from training.tokenizer import load_tokenizer

    corpus, tok_384, tok_320 = token_inputs
    out = tmp_path / "tokens"
    pack([("c", corpus, 1.0)], tok_384, 64, out, rows_per_shard=8)
    before = snapshot(out)
    with pytest.raises(ValueError):  # fails while writing the shards, after the new tokenizer was saved
        pack([("c", corpus, 1.0)], tok_320, 64, out, rows_per_shard=0)
    assert snapshot(out) == before
    assert len(load_tokenizer(out / "tokenizer")) == read_manifest(out)["tokenizer"]["vocab_size"] == 384
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens"]


@pytest.mark.ray
@pytest.mark.shared_data
def test_a_repack_into_fewer_shards_leaves_no_stale_part_file(ray_cluster, token_inputs, tmp_path):
    from ray_jobs.tokenize import pack
    from training.data import PackedShardLoader

    corpus, tok_384, _ = token_inputs
    out = tmp_path / "tokens"
    many = pack([("c", corpus, 1.0)], tok_384, 64, out, rows_per_shard=4, validation_fraction=0.0)
    assert len(many["splits"]["train"]["files"]) > 3
    few = pack([("c", corpus, 1.0)], tok_384, 128, out, rows_per_shard=10_000, validation_fraction=0.0)
    for split in ("train", "validation"):
        on_disk = sorted(f"{split}/{p.name}" for p in (out / split).glob("*.parquet"))
        assert on_disk == few["splits"][split]["files"] and len(on_disk) == 1
    batches = list(PackedShardLoader(str(out), 4, shuffle=False))  # pretraining reads the new shards alone
    assert len(batches) == few["splits"]["train"]["sequences"] // 4
    assert all(batch["input_ids"].shape == (4, 128) for batch in batches)


@pytest.mark.ray
@pytest.mark.shared_data
def test_train_tokenizer_on_a_corpus_without_text_writes_nothing(ray_cluster, token_inputs, tmp_path):
    from ray_jobs.tokenize import train_tokenizer_job

    corpus, _, _ = token_inputs
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "docs.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in ["", "  ", "\n\t"]))
    with pytest.raises(InputError, match=r"no text in .*empty \(3 documents read, 3 empty\): no tokenizer") as err:
        train_tokenizer_job([empty], tmp_path / "tok", vocab_size=320)
    assert "\n" not in str(err.value) and not (tmp_path / "tok").exists()
    train_tokenizer_job([corpus], tmp_path / "tok", vocab_size=320)  # a tokenizer that was there stays
    before = snapshot(tmp_path / "tok")
    with pytest.raises(InputError, match="no text"):
        train_tokenizer_job([empty], tmp_path / "tok", vocab_size=384)
    assert snapshot(tmp_path / "tok") == before


@pytest.mark.ray
@pytest.mark.shared_data
@pytest.mark.parametrize("kind", ["blank-texts", "no-rows"])
def test_pack_of_an_empty_corpus_is_one_line_and_writes_nothing(ray_cluster, token_inputs, tmp_path, kind):
    from ray_jobs.tokenize import pack

    _, tok_384, _ = token_inputs
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = ["", "   "] if kind == "blank-texts" else []
    pq.write_table(pa.table({"doc_id": [f"d{i}" for i in range(len(texts))], "text": texts},
                            schema=pa.schema([("doc_id", pa.string()), ("text", pa.string())])),
                   corpus / "part-00000.parquet")
    with pytest.raises(InputError, match=r"corpus 'c' .* gives no train sequence") as err:
        pack([("c", corpus, 1.0)], tok_384, 64, tmp_path / "tokens")
    assert "\n" not in str(err.value) and not (tmp_path / "tokens").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


# --- interrupted: SIGTERM and SIGINT (Ctrl-C) ---------------------------------------------------------------


@pytest.mark.spark
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_interrupting_corpus_extract_leaves_no_temporary_folder_and_no_manifest(tmp_path, signum):
    """A real `rexbert corpus extract` is stopped with SIGTERM (or SIGINT, as Ctrl-C sends it) while Spark writes
    its staging folder."""
    generate_sample_crawl(tmp_path / "crawl", docs=150, seed=9, progress=False)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "infra.cli", "corpus", "extract", "-i", str(tmp_path / "crawl"),
                                "-o", str(out / "extracted")], cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob(".extracted.tmp-*")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None, "the stage ended before it was interrupted: " + process.stdout.read()[-2000:]
        assert list(out.glob(".extracted.tmp-*")), "the stage never started writing"
        os.kill(process.pid, signum)
        output, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0, output[-2000:]
    assert list(out.iterdir()) == [], output[-2000:]  # no `.extracted.tmp-*`, no extracted/ with a manifest
