"""The code a Spark cluster needs: this project's engine-agnostic packages zipped for `--py-files`."""

from __future__ import annotations

import zipfile
from pathlib import Path

from infra.core.paths import PROJECT_ROOT

# Spark executors import corpus/ (document logic), spark_jobs/ (drivers) and infra/core/ (config schema,
# filesystem layer, manifest); the rest of infra/ (CLI, sample crawl, submission) and training/ stay home.
SPARK_PACKAGES = ("corpus", "spark_jobs", "infra/core")

SPARK_JOBS = {
    "build": "spark_jobs/build_job.py",
    "extract": "spark_jobs/extract_job.py",
    "filter": "spark_jobs/filter_job.py",
    "dedup": "spark_jobs/dedup_job.py",
    "train-classifier": "spark_jobs/train_classifier_job.py",
}


def spark_main_file(job: str) -> Path:
    """The local path of a spark-submit entry point, by job name; a clear error for unknown jobs."""
    if job not in SPARK_JOBS:
        raise ValueError(f"unknown Spark job {job!r}; choose one of {', '.join(SPARK_JOBS)}")
    return PROJECT_ROOT / SPARK_JOBS[job]


def build_py_files_zip(out_path: str | Path, packages: tuple[str, ...] = SPARK_PACKAGES) -> Path:
    """Zip the packages' .py files (deterministic order, no caches) into `out_path`."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for package in packages:
            # a subpackage (infra/core) needs its parents' __init__.py to import
            parents = [PROJECT_ROOT / p / "__init__.py" for p in Path(package).parents if str(p) != "."]
            for path in [*parents, *sorted((PROJECT_ROOT / package).rglob("*.py"))]:
                if "__pycache__" in path.parts:
                    continue
                info = zipfile.ZipInfo(str(path.relative_to(PROJECT_ROOT)), date_time=(2020, 1, 1, 0, 0, 0))
                zf.writestr(info, path.read_bytes())
    return out_path


def join_uri(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name
