"""`rexbert tokenize`: train the BPE tokenizer and pack corpora into training shards (Ray Data)."""

from __future__ import annotations

import gzip
import json

import typer

from infra.commands.common import (
    OVERRIDES,
    ConfigOption,
    check_inputs,
    check_stage_output,
    check_writable,
    resolve_config,
)
from infra.core import fs

app = typer.Typer(help="Train the tokenizer and pack corpora into mixed training shards (Ray Data).",
                  no_args_is_help=True)
CORPUS = typer.Option(..., "--corpus", help="Corpus folder (Parquet with `text`, or JSONL); repeatable.")


def source_name(path: str) -> str:
    """`demo/ecom/corpus` -> 'ecom'; any other folder or file (path or URI) -> its stem."""
    name, parent = fs.name_of(path), fs.name_of(fs.parent_of(path))
    if name == "corpus" and parent and parent != name:
        return parent
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


def _has_documents(kind: str, file: str) -> bool:
    """Whether one corpus file holds a row: a Parquet footer's row count, or a JSONL file's first line."""
    if kind == "parquet":
        import pyarrow.parquet as pq

        with fs.open_input(file) as handle:
            return pq.ParquetFile(handle).metadata.num_rows > 0
    with fs.open_input(file) as raw:
        handle = gzip.GzipFile(fileobj=raw) if file.endswith(".gz") else raw
        for _ in range(64):  # up to 4 MiB of blank lines
            chunk = handle.read(1 << 16)
            if not chunk:
                return False
            if chunk.strip():
                return True
    return True


def check_corpora(corpora: list[str]) -> None:
    """Every corpus exists and holds documents: one line naming the first that does not, before Ray starts
    (Ray Data would otherwise start a cluster, read nothing, and fail deep inside packing)."""
    from ray_jobs.tokenize import corpus_inputs

    check_inputs(corpora, what="corpus")
    for uri in corpora:
        kind, files = corpus_inputs(uri)
        if not any(_has_documents(kind, file) for file in files):
            raise ValueError(f"corpus {uri} is empty: its {len(files)} {kind} file(s) hold no documents")


@app.command("run", context_settings=OVERRIDES)
def run_cmd(ctx: typer.Context, config: str | None = ConfigOption) -> None:
    """The run's whole tokenize stage from its config: the tokenizer (tokenize.tokenizer) trained on
    tokenize.corpora, then every set of tokenize.sets packed into <run.output>/tokens/<name>."""
    from ray_jobs.runtime import ray_runtime
    from ray_jobs.tokenize import run_tokenize

    cfg = resolve_config(ctx, config)
    corpora = {name: fs.under(cfg.run.output, path) for name, path in cfg.tokenize.corpora.items()}
    check_inputs(corpora.values(), what="corpus")  # the tokenizer trains on all of them
    mixed = {name for token_set in cfg.tokenize.sets.values() for name in token_set.mixture}
    check_corpora([path for name, path in corpora.items() if name in mixed])  # the ones packed need documents
    check_writable(cfg.run.output)
    with ray_runtime(cfg.ray):
        result = run_tokenize(cfg)
    typer.echo(f"tokenizer: {result['tokenizer']}")
    for name, token_set in result["tokens"].items():
        typer.echo(f"{name}: {token_set['train_sequences']} train / {token_set['validation_sequences']} validation "
                   f"sequences of {token_set['seq_len']} tokens in {token_set['path']}")


@app.command("train-tokenizer", context_settings=OVERRIDES)
def train_tokenizer_cmd(
    ctx: typer.Context,
    corpus: list[str] = CORPUS,
    output: str = typer.Option(..., "--output", "-o", help="Tokenizer folder to write (HF format)."),
    vocab_size: int | None = typer.Option(None, help="Vocabulary size, a multiple of 64 (default 50368)."),
    config: str | None = ConfigOption,
) -> None:
    """Byte-level BPE in the ModernBERT convention, trained on the corpora's texts (read in this process: no Ray)."""
    from ray_jobs.tokenize import TOKENIZER_STAGE, train_tokenizer_job

    cfg = resolve_config(ctx, config, **{"tokenize.vocab_size": vocab_size})
    check_corpora(corpus)
    check_stage_output(output, TOKENIZER_STAGE, corpus)
    out = train_tokenizer_job(corpus, output, cfg.tokenize.vocab_size, cfg.tokenize.min_frequency, config=cfg)
    typer.echo(f"tokenizer: {out} (vocab {cfg.tokenize.vocab_size})")


@app.command("pack", context_settings=OVERRIDES)
def pack_cmd(
    ctx: typer.Context,
    corpus: list[str] = CORPUS,
    weight: list[float] = typer.Option([], "--weight", help="Mixture weight per --corpus, in order (default equal)."),
    name: list[str] = typer.Option([], "--name", help="Source name per --corpus (default: its folder name)."),
    tokenizer: str = typer.Option(..., "--tokenizer", help="Tokenizer folder or HF hub name."),
    seq_len: int | None = typer.Option(None, "--seq-len", help="Sequence length (default tokenize.seq_len)."),
    output: str = typer.Option(..., "--output", "-o", help="Token-set folder: train/ validation/ manifest.json."),
    seed: int | None = typer.Option(None, help="Mixture seed (default run.seed)."),
    num_sequences: int | None = typer.Option(None, help="Train sequences in the mix (default: no repetition)."),
    config: str | None = ConfigOption,
) -> None:
    """Tokenize, pack into sequences of exactly --seq-len tokens, mix by weight, write Parquet shards."""
    from ray_jobs.runtime import ray_runtime
    from ray_jobs.tokenize import PACK_STAGE, pack

    weights = weight or [1.0] * len(corpus)
    names = name or [source_name(c) for c in corpus]
    if len(weights) != len(corpus) or len(names) != len(corpus):
        raise typer.BadParameter("give one --weight (and --name, if any) per --corpus")
    cfg = resolve_config(ctx, config, **{"tokenize.seq_len": seq_len, "run.seed": seed,
                                         "tokenize.num_sequences": num_sequences})
    check_corpora(corpus)
    if fs.is_remote(tokenizer) or tokenizer.startswith(("/", ".", "~")) or fs.exists(tokenizer):
        check_inputs([tokenizer], what="tokenizer")  # a folder; anything else is a Hugging Face hub name
        check_stage_output(output, PACK_STAGE, [*corpus, tokenizer])
    else:
        check_stage_output(output, PACK_STAGE, corpus)
    t = cfg.tokenize
    with ray_runtime(cfg.ray):
        manifest = pack(
            list(zip(names, corpus, weights, strict=True)), tokenizer, t.seq_len, output, seed=cfg.run.seed,
            validation_fraction=t.validation_fraction, num_sequences=t.num_sequences,
            token_budget=t.token_budget, batch_size=t.batch_size, rows_per_shard=t.rows_per_shard, config=cfg,
        )
    summary = {split: {"sequences": s["sequences"], "tokens_real": s["tokens_real"]}
               for split, s in manifest["splits"].items()}
    typer.echo(json.dumps(summary))
    typer.echo(f"manifest: {fs.join(output, 'manifest.json')}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="tokenize")
