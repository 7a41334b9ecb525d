"""The whole curation chain in one Spark session: extract -> classify + filter -> dedup -> corpus.

Each stage writes its folder with a manifest; this driver writes `corpus/` (kept documents only),
a top-level `manifest.json` with the funnel whose counts add up across stages, and the stats report.

    spark-submit spark_jobs/build_job.py --input crawl/*.warc.gz --output out/ --classifier model.bin
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from infra.core.manifest import MANIFEST_NAME, StageStats, build_manifest
from spark_jobs.filter_job import run_filter
from spark_jobs.output import atomic_output, is_remote, read_parquet_dir, write_stage_manifest

CORPUS_COLUMNS = ["doc_id", "url", "text", "ecom_score", "category", "source"]
STAGES = ("extracted", "filtered", "deduped", "corpus")


def write_corpus(spark: SparkSession, deduped: str, output: str) -> dict[str, Any]:
    """`corpus/`: the non-duplicate documents of `deduped/`, with the columns the tokenizer reads.

    Duplicates are counted by the dedup stage; this stage's input is what dedup kept.
    """
    start = time.perf_counter()
    kept = read_parquet_dir(spark, deduped).filter(~F.col("is_duplicate")).select(*CORPUS_COLUMNS)
    n_kept = kept.count()
    stats = StageStats(input=n_kept, kept=n_kept)
    with atomic_output(output) as staging:
        kept.write.mode("overwrite").parquet(staging)
        written = read_parquet_dir(spark, staging).count()
        if written != stats.kept:
            raise RuntimeError(f"corpus wrote {written} rows, expected {stats.kept}")
        stats.seconds = time.perf_counter() - start
        manifest = build_manifest("corpus", stats, inputs=[deduped], outputs={"path": output, "rows": written})
        write_stage_manifest(spark, staging, manifest)
    return manifest


def chain_funnel(stage_manifests: dict[str, dict]) -> dict[str, Any]:
    """Totals across stages (each stage's input must be the previous stage's kept) and the funnel."""
    stats = {name: StageStats.from_dict(m["counts"]) for name, m in stage_manifests.items()}
    previous = None
    for name in STAGES:
        if previous is not None and stats[name].input != stats[previous].kept:
            raise RuntimeError(
                f"stage {name} read {stats[name].input} documents but {previous} kept {stats[previous].kept}"
            )
        previous = name
    total = StageStats(input=stats["extracted"].input, kept=stats["corpus"].kept)
    for name, s in stats.items():
        total.duplicates += s.duplicates
        for reason, n in s.filtered.items():
            total.drop(f"{name}:{reason}", n)
        for kind, n in s.errors.items():
            total.error(f"{name}:{kind}", n)
        total.seconds += s.seconds
    total.check("corpus build")
    funnel = [{"step": "input", "documents": stats["extracted"].input}]
    funnel += [{"step": name, "documents": stats[name].kept} for name in STAGES]
    return {"total": total, "funnel": funnel, "stages": {k: v.to_dict() for k, v in stats.items()}}


def _dump_config(config: Any, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    (out_dir / "config.resolved.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def build_corpus(
    inputs: list[str],
    output: str,
    config: Any,
    classifier: str | None = None,
    spark: SparkSession | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """Run every stage into `output` and return the top-level manifest.

    Args:
        config: an `infra.core.config.RexbertConfig` (duck-typed: `.corpus`, `.spark`, `.run`).
        classifier: fastText model for the e-commerce filter (else `corpus.filter.classifier`).
        spark: reuse a session (the demo builds two corpora in one); else one is made and stopped.
    """
    from spark_jobs.dedup_job import run_dedup
    from spark_jobs.extract_job import run_extract
    from spark_jobs.session import spark_session_from_config

    start = time.perf_counter()
    own_session = spark is None and SparkSession.getActiveSession() is None
    if spark is None:  # an active session (a notebook, a test) is reused and left running
        spark = spark_session_from_config("rexbert-corpus-build", config.spark, output)
    root = output.rstrip("/")
    try:
        if not is_remote(root):
            (Path(root) / MANIFEST_NAME).unlink(missing_ok=True)  # a rerun that fails must not look complete
            _dump_config(config, Path(root))
        paths = {name: f"{root}/{name}" for name in STAGES}
        manifests = {"extracted": run_extract(spark, list(inputs), paths["extracted"], config.corpus)}
        manifests["filtered"] = run_filter(spark, paths["extracted"], paths["filtered"], config.corpus, classifier)
        manifests["deduped"] = run_dedup(spark, paths["filtered"], paths["deduped"], config.corpus)
        manifests["corpus"] = write_corpus(spark, paths["deduped"], paths["corpus"])
        chain = chain_funnel(manifests)
        manifest = build_manifest(
            "build",
            chain["total"],
            config=config,
            inputs=list(inputs),
            outputs=paths,
            extra={
                "funnel": chain["funnel"],
                "stages": chain["stages"],
                "classifier": manifests["filtered"].get("classifier"),
                "ecommerce_filter": config.corpus.filter.ecommerce_filter,
                "seconds": round(time.perf_counter() - start, 2),
                "docs_per_s": round(chain["total"].input / max(time.perf_counter() - start, 1e-9), 2),
            },
        )
        if report and not is_remote(root):
            from spark_jobs.corpus_report import write_report

            manifest["report"] = str(write_report(spark, root, manifest))
        write_stage_manifest(spark, root, manifest)  # last: it marks the whole build complete
    finally:
        if own_session:
            spark.stop()
    return manifest


def load_job_config(path: str | None, overrides: dict[str, Any] | None = None):
    """The run config for spark-submit entry points (YAML sections, no infra import on the cluster side)."""
    from types import SimpleNamespace

    from infra.core.config import CorpusConfig, SparkConfig

    data = yaml.safe_load(Path(path).read_text()) if path else {}
    data = data or {}
    for key, value in (overrides or {}).items():
        data.setdefault(key, {}).update(value)
    run = SimpleNamespace(**{"seed": 0, "name": "local", **(data.get("run") or {})})
    return SimpleNamespace(
        corpus=CorpusConfig.model_validate(data.get("corpus") or {}),
        spark=SparkConfig.model_validate(data.get("spark") or {}),
        run=run,
        model_dump=lambda mode="json": data,
    )


def run_demo(config: Any, root: Path, spark: SparkSession | None = None) -> dict[str, Any]:
    """The demo's curation stage: train a classifier on a generated crawl, then build `ecom/` and `general/`.

    `ecom/` keeps pages at or above `corpus.filter.ecommerce_threshold`; `general/` runs the same quality
    filters and dedup with the e-commerce filter off (general web text for phase-1 pretraining).
    """
    from spark_jobs.session import spark_session_from_config
    from spark_jobs.train_classifier_job import train_demo_classifier

    start = time.perf_counter()
    root = Path(root)
    own_session = spark is None and SparkSession.getActiveSession() is None
    spark = spark or spark_session_from_config("rexbert-demo-corpus", config.spark, root)
    try:
        classifier = train_demo_classifier(spark, config, root / "classifier")
        inputs = sorted(str(p) for p in (root / "sample-data").glob("*.warc.gz"))
        if not inputs:
            raise FileNotFoundError(f"no sample crawl in {root / 'sample-data'}: generate it first")
        ecom = build_corpus(inputs, str(root / "ecom"), config, classifier["model"], spark=spark)
        general_config = config.model_copy(deep=True)
        general_config.corpus.filter.ecommerce_filter = False
        general = build_corpus(inputs, str(root / "general"), general_config, classifier["model"], spark=spark)
    finally:
        if own_session:
            spark.stop()
    return {
        "classifier": classifier,
        "ecom": {"funnel": ecom["funnel"], "counts": ecom["counts"], "path": str(root / "ecom")},
        "general": {"funnel": general["funnel"], "counts": general["counts"], "path": str(root / "general")},
        "seconds": round(time.perf_counter() - start, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a corpus: extract -> filter -> dedup -> corpus.")
    parser.add_argument("--input", nargs="+", required=True, help="WARC / HTML / JSONL / Parquet paths.")
    parser.add_argument("--output", required=True)
    parser.add_argument("--classifier", default=None)
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    manifest = build_corpus(args.input, args.output, load_job_config(args.config), args.classifier)
    print({"funnel": manifest["funnel"], "counts": manifest["counts"]})


if __name__ == "__main__":
    main()
