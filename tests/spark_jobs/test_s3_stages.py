"""The Spark stages on S3 (a real moto S3 server on 127.0.0.1): the same documents and counts as locally.

The crawl is generated locally and uploaded; the S3 build reads it from the bucket and writes every stage
folder there, through pyarrow on the executors (this machine's Spark has no Hadoop S3 connector, so nothing
may go through Hadoop). Then everything is read back from S3 and compared with a local build of the same
crawl.

Executor environment: Spark's Python workers are forked from a daemon that the JVM starts with the
environment of the session's start-up, and the session-wide `spark` fixture may start before `s3_server`
sets the AWS variables. So the `executor_env` fixture hands the variables to the workers explicitly through
`SparkContext.environment` (what `spark.executorEnv.*` fills at start-up; it travels with every Python
function, and Spark starts a worker daemon per distinct environment), and the tests check that an executor
really sees them, instead of starting a second session.
"""

from __future__ import annotations

import os

import pytest

from infra.core import fs
from infra.core.config import load_config
from infra.core.manifest import StageStats, build_manifest, check_manifest, read_manifest, write_manifest
from infra.core.outputs import staged_output
from infra.sample_crawl.generate import generate_sample_crawl
from spark_jobs.build_job import STAGES, build_corpus
from spark_jobs.extract_job import ERRORS_DIR
from spark_jobs.output import read_parquet_dir, write_parquet

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def executor_env(spark, s3_server):
    """The S3 server's AWS variables in every Spark Python worker started from now on (restored after)."""
    env = {key: value for key, value in os.environ.items() if key.startswith("AWS_")}
    environment = spark.sparkContext.environment
    saved = {key: environment.get(key) for key in env}
    environment.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value


def _without_timings(counts: dict) -> dict:
    return {key: value for key, value in counts.items() if key != "seconds"}


def _doc_ids(spark, folder: str) -> list[str]:
    return sorted(row["doc_id"] for row in read_parquet_dir(spark, folder).select("doc_id").collect())


@pytest.fixture(scope="module")
def builds(spark, executor_env, s3_server, tmp_path_factory):
    """The same small crawl built twice, with the e-commerce filter off (no classifier to train): locally,
    and from S3 into S3."""
    tmp = tmp_path_factory.mktemp("s3-stages")
    crawl = tmp / "crawl"
    generate_sample_crawl(crawl, docs=40, seed=11, docs_per_file=20, progress=False)  # 2 files, every defect
    bucket_crawl = fs.join(s3_server, "stages", "crawl")
    fs.copy_dir(crawl, bucket_crawl)
    config = load_config(None, {"corpus": {"filter": {"ecommerce_filter": False}}})
    local_root, s3_root = str(tmp / "local"), fs.join(s3_server, "stages", "out")
    local = build_corpus([str(crawl)], local_root, config, spark=spark, report=False)
    remote = build_corpus([bucket_crawl], s3_root, config, spark=spark)
    return {"local": (local_root, local), "s3": (s3_root, remote)}


def test_executors_see_the_s3_endpoint(spark, executor_env):
    seen = spark.sparkContext.parallelize([0], 1).map(lambda _: os.environ.get("AWS_ENDPOINT_URL_S3")).collect()
    assert seen == [executor_env["AWS_ENDPOINT_URL_S3"]]


def test_manifests_read_back_from_s3_add_up_and_match_the_local_build(builds):
    s3_root, returned = builds["s3"][0], builds["s3"][1]
    local_root = builds["local"][0]
    top = read_manifest(s3_root)
    assert top["counts"] == returned["counts"]
    total = check_manifest(top, "s3 build")  # input = kept + filtered + duplicates + errors
    assert total.input > total.kept > 0 and total.errors, "every defect of the crawl is counted"
    assert _without_timings(top["counts"]) == _without_timings(read_manifest(local_root)["counts"])
    assert [step["documents"] for step in top["funnel"]] == [
        step["documents"] for step in read_manifest(local_root)["funnel"]]
    for stage in STAGES:
        remote, local = read_manifest(fs.join(s3_root, stage)), read_manifest(fs.join(local_root, stage))
        check_manifest(remote, stage)
        assert _without_timings(remote["counts"]) == _without_timings(local["counts"]), stage
    assert fs.is_file(fs.join(s3_root, "config.resolved.yaml"))
    assert fs.is_file(fs.join(s3_root, "report", "index.html")) and top["report"].startswith("s3://")


def test_s3_stage_folders_hold_the_same_documents_as_local_ones(spark, builds):
    (s3_root, remote), (local_root, _) = builds["s3"], builds["local"]
    for stage in STAGES:
        assert _doc_ids(spark, fs.join(s3_root, stage)) == _doc_ids(spark, fs.join(local_root, stage)), stage
    assert len(_doc_ids(spark, fs.join(s3_root, "corpus"))) == remote["counts"]["kept"]
    errors = read_parquet_dir(spark, fs.join(s3_root, "extracted", ERRORS_DIR)).count()
    assert errors == sum(read_manifest(fs.join(s3_root, "extracted"))["counts"]["errors"].values())
    leftovers = [f for f in fs.list_files(s3_root, hidden=True) if ".tmp-" in f or ".old-" in f]
    assert leftovers == []


def test_a_rerun_on_s3_replaces_the_folder_whole(spark, executor_env, s3_server):
    target = fs.join(s3_server, "stages", "rerun")
    df = spark.range(30).selectExpr("cast(id as string) as doc_id")
    for partitions in (3, 1):  # fewer part files the second time: none of the first run's may be left
        with staged_output(target, "ids", []) as folder:
            files = write_parquet(df.repartition(partitions), folder)
            write_manifest(folder, build_manifest("ids", StageStats(input=30, kept=30)))
        parts = [f for f in fs.list_files(target) if f.endswith(".parquet")]
        assert sorted(parts) == sorted(files) and len(files) == partitions
    assert read_parquet_dir(spark, target).count() == 30
