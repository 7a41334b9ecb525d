"""MinHash LSH near-duplicate removal on Spark: signatures, bands, connected components, representatives.

    spark-submit spark_jobs/dedup_job.py --input docs.jsonl [more ...] --output out/deduped [--config run.yaml]

1. Read JSONL / Parquet documents on the executors through `infra.core.fs` (any filesystem; a `filtered/`
   folder: only rows whose `filter_reason` is null).
2. Per partition (`mapInArrow`), corpus.minhash turns texts into signatures and LSH band hashes:
   rows (node, band, band_hash), node = xxhash64(doc_id).
3. Documents sharing a band hash become candidates: star edges from each to the bucket's smallest node.
4. Connected components by large-star / small-star rounds (Kiveris et al., 2014) in plain DataFrames,
   lineage cut by a local checkpoint per round, until the edges form stars around each component's min.
5. One representative per component: highest quality column, then smallest doc_id. All others are
   duplicates. Output: every input column + minhash_cluster, is_duplicate, representative_id.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from corpus.minhash import Permutations, band_hashes, signatures
from infra.core import fs
from infra.core.config import CorpusConfig, DedupConfig, load_config
from infra.core.manifest import StageStats, build_manifest, check_upstream, write_manifest
from infra.core.outputs import check_output, handle_sigterm, staged_output
from spark_jobs.output import TABLE_KINDS, read_parquet_dir, read_table_files, write_parquet

STAGE = "dedup"  # the manifest's stage and the output's owner: a rerun replaces only its own folder
CORPUS_STAGE = "corpus"
BAND_SCHEMA = "node long, band int, band_hash long"


# --- reading ------------------------------------------------------------------------------------------


def _read_one(spark: SparkSession, path: str) -> DataFrame:
    """The JSONL / Parquet files of one input (a file, a folder such as a stage folder, or a glob)."""
    files = fs.list_inputs([path], kinds=TABLE_KINDS)
    if not files:
        raise FileNotFoundError(f"no JSONL or Parquet documents in dedup input {path}")
    return read_table_files(spark, files)


def read_documents(spark: SparkSession, inputs: list[str], cfg: DedupConfig) -> tuple[DataFrame, dict]:
    """Union of the inputs with a unique `doc_id` and int64 `_node`; notes for the manifest."""
    frames = [_read_one(spark, p) for p in inputs]
    df = frames[0]
    for other in frames[1:]:
        df = df.unionByName(other, allowMissingColumns=True)
    notes: dict = {}
    if cfg.text_column not in df.columns:
        raise ValueError(f"dedup input has no {cfg.text_column!r} column (columns: {df.columns})")
    if "filter_reason" in df.columns:
        # A filtered/ stage: dropped rows were accounted there; only kept rows take part here.
        notes["input_selection"] = "rows with null filter_reason (kept by the filter stage)"
        notes["rows_filtered_upstream_not_read"] = df.where(F.col("filter_reason").isNotNull()).count()
        df = df.where(F.col("filter_reason").isNull())
    derived = F.substring(F.sha1(F.concat_ws("\n", *[c for c in ("url", cfg.text_column) if c in df.columns])), 1, 16)
    if "doc_id" not in df.columns:
        if "url" not in df.columns:
            raise ValueError("dedup input needs a doc_id or a url column to identify documents")
        notes["doc_id"] = "derived: first 16 hex of sha1(url + newline + text)"
        df = df.withColumn("doc_id", derived)
    # A missing id gets the derived one: null ids would all share one node (and one null representative).
    df = df.withColumn("doc_id", F.coalesce(F.col("doc_id").cast("string"), derived))
    df = df.withColumn("_node", F.xxhash64("doc_id"))
    repeats = df.groupBy("_node").count().where("count > 1").count()
    notes["doc_id_repeats"] = repeats
    if repeats:
        # Same doc_id twice (or a 64-bit id collision): number the copies so every row is its own node.
        w = Window.partitionBy("_node").orderBy("doc_id", cfg.text_column)
        rank = F.row_number().over(w)
        df = df.withColumn("doc_id", F.when(rank > 1, F.concat_ws("~", "doc_id", rank.cast("string")))
                           .otherwise(F.col("doc_id")))
        df = df.withColumn("_node", F.xxhash64("doc_id"))
    if cfg.partitions:
        df = df.repartition(cfg.partitions)
    return df, notes


def quality_column(df: DataFrame, cfg: DedupConfig) -> str | None:
    """The first configured numeric quality column the input has."""
    types = {f.name: f.dataType for f in df.schema.fields}
    return next((c for c in cfg.quality_columns if isinstance(types.get(c), NumericType)), None)


# --- signatures and candidates ------------------------------------------------------------------------


def band_rows_fn(cfg: DedupConfig):
    """A mapInArrow function: batches of (node, text) -> (node, band, band_hash); band -1 = no shingles."""
    ngram, bands, rows, seed = cfg.ngram, cfg.bands, cfg.rows, cfg.seed
    scheme, hash_function = cfg.scheme, cfg.hash_function

    def run(batches):
        perms = Permutations.create(bands * rows, seed, scheme)
        for batch in batches:
            nodes = batch.column(0).to_numpy(zero_copy_only=False)
            sigs, ok = signatures(batch.column(1).to_pylist(), perms, ngram, hash_function)
            hashed = band_hashes(sigs[ok], bands, rows)
            empty = nodes[~ok]
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.concatenate([np.repeat(nodes[ok], bands), empty]), pa.int64()),
                    pa.array(np.concatenate([np.tile(np.arange(bands), ok.sum()), np.full(len(empty), -1)]),
                             pa.int32()),
                    pa.array(np.concatenate([hashed.ravel(), np.zeros(len(empty), np.int64)]), pa.int64()),
                ],
                names=["node", "band", "band_hash"],
            )

    return run


def candidate_edges(band_rows: DataFrame) -> DataFrame:
    """Star edges (src, dst): every member of a band bucket to the bucket's smallest node, not all pairs."""
    w = Window.partitionBy("band", "band_hash")
    return (
        band_rows.where("band >= 0")
        .withColumn("dst", F.min("node").over(w))
        .where(F.col("node") != F.col("dst"))
        .select(F.col("node").alias("src"), "dst")
        .distinct()
    )


# --- connected components -----------------------------------------------------------------------------


def large_star(edges: DataFrame) -> DataFrame:
    """Link each node's larger neighbours to the smallest node of its closed neighbourhood.

    Repeated pairs are left in (small_star removes them) to save one shuffle per round.
    """
    both = edges.select(F.col("src").alias("u"), F.col("dst").alias("v")).union(
        edges.select(F.col("dst").alias("u"), F.col("src").alias("v"))
    )
    smallest = F.least(F.min("v").over(Window.partitionBy("u")), F.col("u"))
    return both.withColumn("m", smallest).where(F.col("v") > F.col("u")).select(
        F.col("v").alias("src"), F.col("m").alias("dst"))


def small_star(edges: DataFrame) -> DataFrame:
    """Link each node and its smaller neighbours to the smallest of them (pairs made distinct)."""
    oriented = edges.select(F.greatest("src", "dst").alias("hi"), F.least("src", "dst").alias("lo"))
    oriented = oriented.withColumn("m", F.min("lo").over(Window.partitionBy("hi")))
    lows = oriented.where(F.col("lo") != F.col("m")).select(F.col("lo").alias("src"), F.col("m").alias("dst"))
    highs = oriented.select(F.col("hi").alias("src"), F.col("m").alias("dst"))
    return lows.union(highs).distinct()


def _is_star_forest(edges: DataFrame) -> bool:
    """Every src has one dst and no dst is itself a src: each component is a star around its minimum.

    One aggregation (one Spark job): per node, its out-degree and whether it is some edge's dst.
    """
    ends = edges.select(F.col("src").alias("n"), F.lit(1).alias("out"), F.lit(0).alias("is_dst")).union(
        edges.select(F.col("dst").alias("n"), F.lit(0).alias("out"), F.lit(1).alias("is_dst")))
    per_node = ends.groupBy("n").agg(F.sum("out").alias("out"), F.max("is_dst").alias("is_dst"))
    bad = per_node.where((F.col("out") > 1) | ((F.col("out") > 0) & (F.col("is_dst") > 0)))
    return bad.count() == 0


def connected_components(edges: DataFrame, max_iterations: int = 50) -> tuple[DataFrame, int]:
    """(node, root) for every node on an edge, root = smallest node of its component; and the rounds run.

    Each round is large-star then small-star (Kiveris et al., "Connected Components in MapReduce and
    Beyond", 2014); a local checkpoint cuts the lineage so round k does not replan rounds 1..k-1.
    """
    current = edges
    for iteration in range(1, max_iterations + 1):
        current = small_star(large_star(current)).localCheckpoint(eager=True)
        if _is_star_forest(current):
            roots = current.select(F.col("dst").alias("node"), F.col("dst").alias("root")).distinct()
            leaves = current.select(F.col("src").alias("node"), F.col("dst").alias("root"))
            return leaves.union(roots), iteration
    raise RuntimeError(f"connected components did not converge in {max_iterations} large/small-star rounds")


def representatives(components: DataFrame, docs: DataFrame, quality: str | None) -> DataFrame:
    """(node, minhash_cluster, representative_id): best quality, then smallest doc_id, per component."""
    q = F.col(quality).cast("double") if quality else F.lit(None).cast("double")
    ranked = components.join(docs.select(F.col("_node").alias("node"), "doc_id", q.alias("_q")), "node")
    order = Window.partitionBy("root").orderBy(F.col("_q").desc_nulls_last(), F.col("doc_id").asc())
    reps = ranked.withColumn("rank", F.row_number().over(order)).where("rank = 1")
    reps = reps.select("root", F.col("doc_id").alias("representative_id"))
    return components.join(reps, "root").select(F.col("node").alias("_node"),
                                                  F.col("root").alias("minhash_cluster"), "representative_id")


# --- the stage ----------------------------------------------------------------------------------------


def run_dedup(spark: SparkSession, input: str | list[str], output: str, config: CorpusConfig) -> dict:
    """Deduplicate documents into the `output` stage folder (Parquet + manifest.json); return the manifest."""
    cfg = config.dedup
    inputs = [input] if isinstance(input, str) else list(input)
    start = time.time()
    check_output(output, STAGE, inputs)  # before any work: never a user's folder, an input or a file
    upstream = check_upstream(inputs)  # an unfinished or out-of-date stage folder is no input
    docs, notes = read_documents(spark, inputs, cfg)
    # Read once: the counts, the signatures, the representatives and the output all scan the input.
    docs = docs.persist(StorageLevel.MEMORY_AND_DISK)
    persisted = [docs]
    try:
        quality = quality_column(docs, cfg)
        totals = docs.agg(F.count("*").alias("rows"), F.count(cfg.text_column).alias("with_text")).first()
        stats = StageStats(input=int(totals["rows"]))
        null_text = stats.input - int(totals["with_text"])
        if null_text:
            stats.error("null_text", null_text)
        docs = docs.where(F.col(cfg.text_column).isNotNull())

        band_rows = docs.select("_node", cfg.text_column).mapInArrow(band_rows_fn(cfg), BAND_SCHEMA)
        band_rows = band_rows.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(band_rows)
        no_words = band_rows.where("band < 0").select(F.col("node").alias("_node"))
        n_no_words = no_words.count()
        if n_no_words:
            stats.drop("no_words", n_no_words)
        edges = candidate_edges(band_rows).localCheckpoint(eager=True)
        n_edges = edges.count()  # cheap: counts the checkpointed blocks
        components, rounds = connected_components(edges, cfg.max_iterations) if n_edges else (None, 0)

        out = docs.join(no_words, "_node", "left_anti")
        if components is not None:
            out = out.join(representatives(components, docs, quality), "_node", "left")
        else:
            out = out.withColumn("minhash_cluster", F.lit(None).cast("long")).withColumn(
                "representative_id", F.lit(None).cast("string"))
        out = out.withColumn("representative_id", F.coalesce("representative_id", "doc_id"))
        out = out.withColumn("is_duplicate", F.col("representative_id") != F.col("doc_id")).drop("_node")

        with staged_output(output, STAGE, inputs) as staging:
            rows_written = sum(write_parquet(out, staging).values())
            # One pass over what was written: rows, duplicates, clusters and the largest cluster.
            per_cluster = read_parquet_dir(spark, staging).groupBy("minhash_cluster").agg(
                F.count("*").alias("n"), F.sum(F.col("is_duplicate").cast("long")).alias("d"))
            row = per_cluster.agg(
                F.sum("n").alias("rows"), F.sum("d").alias("duplicates"),
                F.count("minhash_cluster").alias("clusters"),
                F.max(F.when(F.col("minhash_cluster").isNotNull(), F.col("n"))).alias("largest"),
            ).first()
            if int(row["rows"] or 0) != rows_written:
                raise RuntimeError(f"dedup wrote {rows_written} rows but {row['rows']} were read back")
            stats.duplicates = int(row["duplicates"] or 0)
            stats.kept = rows_written - stats.duplicates
            stats.seconds = time.time() - start
            notes.update({
                "num_perm": cfg.num_perm,
                "theoretical_threshold": round(cfg.theoretical_threshold, 4),
                "s_curve_midpoint": round(cfg.s_curve_midpoint, 4),
                "quality_column": quality,
                "candidate_edges": n_edges,
                "components": int(row["clusters"]),
                "largest_component": int(row["largest"] or 0),
                "cc_rounds": rounds,
                "docs_per_second": round(stats.input / max(stats.seconds, 1e-9), 1),
            })
            manifest = build_manifest(STAGE, stats, config=cfg, inputs=inputs, upstream=upstream,
                                      outputs={"deduped": output}, extra={"dedup": notes})
            write_manifest(staging, manifest)
    finally:
        for frame in persisted:
            frame.unpersist()
    return manifest


# --- the corpus: dedup's kept rows, projected ----------------------------------------------------------

CORPUS_COLUMNS = ["doc_id", "url", "text", "ecom_score", "category", "source"]


def write_corpus(spark: SparkSession, deduped: str, output: str) -> dict[str, Any]:
    """`corpus/`: the non-duplicate documents of `deduped/`, with the columns the tokenizer reads.

    Duplicates are counted by the dedup stage; this stage's input is what dedup kept.
    """
    start = time.perf_counter()
    check_output(output, CORPUS_STAGE, [deduped])
    upstream = check_upstream([deduped])
    kept = read_parquet_dir(spark, deduped).filter(~F.col("is_duplicate")).select(*CORPUS_COLUMNS)
    n_kept = kept.count()
    with staged_output(output, CORPUS_STAGE, [deduped]) as staging:
        written = sum(write_parquet(kept, staging).values())
        if written != n_kept:
            raise RuntimeError(f"corpus wrote {written} rows, expected {n_kept}")
        stats = StageStats(input=n_kept, kept=written, seconds=time.perf_counter() - start)
        manifest = build_manifest(CORPUS_STAGE, stats, inputs=[deduped], upstream=upstream,
                                  outputs={"path": output, "rows": written})
        write_manifest(staging, manifest)
    return manifest



def main(argv: list[str] | None = None) -> int:
    from spark_jobs.session import run_stage_job

    handle_sigterm()  # a cancelled spark-submit (SIGTERM) removes its staging folder as Ctrl-C does
    parser = argparse.ArgumentParser(description="MinHash near-duplicate removal (Spark).")
    parser.add_argument("--input", type=fs.absolute, nargs="+", required=True, help="JSONL / Parquet files or folders.")
    parser.add_argument("--output", type=fs.absolute, required=True,
                        help="Output stage folder (Parquet + manifest.json).")
    parser.add_argument("--config", type=fs.absolute,
                        help="Run config YAML, local or a URI (its corpus: and spark: sections).")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    manifest = run_stage_job("rexbert-dedup", config, args.output,
                             lambda spark: run_dedup(spark, args.input, args.output, config.corpus))
    print({k: manifest["counts"][k] for k in ("input", "kept", "duplicates")}, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
