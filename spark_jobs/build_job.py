"""The whole curation chain in one Spark session: extract -> classify + filter -> dedup -> corpus.

Each stage writes its folder with a manifest; this driver writes `corpus/` (kept documents only),
a top-level `manifest.json` with the funnel whose counts add up across stages, and the stats report.
Every folder may be local or on an object store (`s3://`, `gs://`): all I/O goes through infra.core.fs.

A rerun is consistent: the output root must be empty or a previous build's (never a user's folder), every
stage folder in it is checked before Spark starts, and the build's own manifest and those of filtered/,
deduped/ and corpus/ are removed before extract rewrites anything, so a rerun that stops half-way leaves
no stage that looks complete over inputs that changed (`infra.core.outputs.unmark`).

    spark-submit spark_jobs/build_job.py --input crawl/*.warc.gz --output out/ --classifier model.bin
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from pyspark.sql import SparkSession

from infra.core import fs
from infra.core.config import RexbertConfig, load_config, write_resolved_config
from infra.core.manifest import StageStats, build_manifest, check_upstream, write_manifest
from infra.core.outputs import check_output, handle_sigterm, mark_started, unmark
from spark_jobs import dedup_job, extract_job, filter_job
from spark_jobs.dedup_job import run_dedup, write_corpus
from spark_jobs.extract_job import run_extract
from spark_jobs.filter_job import resolve_classifier, run_filter

STAGE = "build"
STAGES = ("extracted", "filtered", "deduped", "corpus")
# The stage that owns each folder (its manifest's `stage`).
STAGE_OWNERS = {"extracted": extract_job.STAGE, "filtered": filter_job.STAGE, "deduped": dedup_job.STAGE,
                "corpus": dedup_job.CORPUS_STAGE}


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


def build_corpus(
    inputs: list[str],
    output: str,
    config: RexbertConfig,
    classifier: str | None = None,
    spark: SparkSession | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """Run every stage into `output` (a local folder or a URI) and return the top-level manifest.

    Args:
        classifier: fastText model (local or a URI) for the e-commerce filter (else `corpus.filter.classifier`).
        spark: reuse a session (the demo builds two corpora in one); else one is made and stopped.
    """
    from spark_jobs.session import stage_session

    start = time.perf_counter()
    root = str(output).rstrip("/")
    paths = {name: fs.join(root, name) for name in STAGES}
    # Cheap checks, before Spark starts and before anything is rewritten.
    check_build_output(root, paths, inputs)
    upstream = check_upstream(list(inputs))
    resolve_classifier(config.corpus, classifier)
    mark_started(root, STAGE)
    invalidate_later_stages(root, paths)
    with stage_session("rexbert-corpus-build", config.spark, output, spark) as spark:
        write_resolved_config(config, root)
        manifests = {"extracted": run_extract(spark, list(inputs), paths["extracted"], config.corpus)}
        manifests["filtered"] = run_filter(spark, paths["extracted"], paths["filtered"], config.corpus, classifier)
        manifests["deduped"] = run_dedup(spark, paths["filtered"], paths["deduped"], config.corpus)
        manifests["corpus"] = write_corpus(spark, paths["deduped"], paths["corpus"])
        chain = chain_funnel(manifests)
        seconds = time.perf_counter() - start
        manifest = build_manifest(
            STAGE,
            chain["total"],
            config=config,
            inputs=list(inputs),
            upstream=upstream,
            outputs=paths,
            seconds=seconds,
            extra={
                "funnel": chain["funnel"],
                "stages": chain["stages"],
                "classifier": manifests["filtered"].get("classifier"),
                "ecommerce_filter": config.corpus.filter.ecommerce_filter,
                "docs_per_s": round(chain["total"].input / max(seconds, 1e-9), 2),
            },
        )
        if report:
            from spark_jobs.corpus_report import write_report

            manifest["report"] = write_report(spark, root, manifest)
        write_manifest(root, manifest)  # last: it marks the whole build complete
    return manifest


def check_build_output(root: str, paths: dict[str, str], inputs: list[str]) -> None:
    """Refuse (OutputError, one line) a root that is a file, an input, or a non-empty folder no build wrote, and
    any stage folder in it that its stage may not replace."""
    check_output(root, STAGE, inputs)
    for name, path in paths.items():
        check_output(path, STAGE_OWNERS[name], inputs)


def invalidate_later_stages(root: str, paths: dict[str, str]) -> None:
    """Unmark the build, then corpus/, deduped/ and filtered/ (last stage first), before extract rewrites
    extracted/: until each is rewritten it is unfinished, and downstream stages refuse it."""
    unmark(root)
    for name in reversed(STAGES[1:]):
        unmark(paths[name])


def main(argv: list[str] | None = None) -> None:
    handle_sigterm()  # a cancelled spark-submit (SIGTERM) removes its staging folder as Ctrl-C does
    parser = argparse.ArgumentParser(description="Build a corpus: extract -> filter -> dedup -> corpus.")
    parser.add_argument("--input", type=fs.absolute, nargs="+", required=True,
                        help="WARC / HTML / JSONL / Parquet paths or URIs.")
    parser.add_argument("--output", type=fs.absolute, required=True, help="Output folder, local or a URI.")
    parser.add_argument("--classifier", type=fs.absolute, default=None)
    parser.add_argument("--config", type=fs.absolute, default=None, help="Run config YAML, local or a URI.")
    args = parser.parse_args(argv)
    manifest = build_corpus(args.input, args.output, load_config(args.config), args.classifier)
    print({"funnel": manifest["funnel"], "counts": manifest["counts"]})


if __name__ == "__main__":
    main()
