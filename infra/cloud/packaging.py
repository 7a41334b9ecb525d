"""What a Spark cluster needs to run the corpus stages: the code and the Python environment.

- The code: this project's engine-agnostic packages zipped for `--py-files` (`build_py_files_zip`).
- The environment: the executors' Python libraries, pinned as in pyproject.toml (`spark_executor_requirements`,
  the one list every cluster path uses: the packed archive, the EMR bootstrap, the Dataproc init action),
  packed with venv-pack into an archive for `--archives ENV#environment` (`build_env_archive`), cached by
  content: the same pins, Python and platform give the same cached file.

A packed venv holds compiled wheels and links to its interpreter, so it runs where the Python (version and
path) and the platform match: this machine's standalone cluster, or a cluster whose image was packed for.
For Dataproc and EMR, pack inside the cluster image's OS, or use a custom container image instead.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from infra.core.paths import PROJECT_ROOT

# The distributions the executors import (corpus/, spark_jobs/, infra/core/); their pins come from pyproject.toml.
# pyspark itself is not among them: Spark puts its own pyspark.zip and py4j on the executors' PYTHONPATH.
SPARK_EXECUTOR_DISTRIBUTIONS = (
    "trafilatura", "extruct", "fasttext-numpy2-wheel", "py3langid", "datatrove", "spacy", "xxhash",
    "warcio", "fastwarc", "pyarrow", "numpy", "pydantic", "pyyaml", "tqdm",
)
ENV_CACHE = Path(os.environ.get("REXBERT_CACHE", Path.home() / ".cache" / "rexbert")) / "spark-env"

# Spark executors import corpus/ (document logic), spark_jobs/ (drivers) and infra/core/ (config schema,
# filesystem layer, manifest); the rest of infra/ (CLI, sample crawl, submission) and training/ stay home, but
# for the phase YAMLs the config schema reads (`infra.core.config.read_phase`, through `training`'s loader).
SPARK_PACKAGES = ("corpus", "spark_jobs", "infra/core")
SPARK_DATA_FILES = ("training/__init__.py", "training/phases/*.yaml", "corpus/extract/block_model.json")

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


def build_py_files_zip(out_path: str | Path, packages: tuple[str, ...] = SPARK_PACKAGES,
                       data_files: tuple[str, ...] = SPARK_DATA_FILES) -> Path:
    """Zip the packages' .py files and the data files (deterministic order, no caches) into `out_path`."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for package in packages:
            # a subpackage (infra/core) needs its parents' __init__.py to import
            parents = [PROJECT_ROOT / p / "__init__.py" for p in Path(package).parents if str(p) != "."]
            for path in [*parents, *sorted((PROJECT_ROOT / package).rglob("*.py"))]:
                if "__pycache__" not in path.parts:
                    _add(zf, path)
        for pattern in data_files:
            for path in sorted(PROJECT_ROOT.glob(pattern)):
                _add(zf, path)
    return out_path


def _add(zf: zipfile.ZipFile, path: Path) -> None:
    info = zipfile.ZipInfo(str(path.relative_to(PROJECT_ROOT)), date_time=(2020, 1, 1, 0, 0, 0))
    zf.writestr(info, path.read_bytes())


def join_uri(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name


def _distribution_name(requirement: str) -> str:
    return re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0].strip().lower()


def spark_executor_requirements(pyproject: str | Path = PROJECT_ROOT / "pyproject.toml") -> list[str]:
    """The executors' pinned requirements (`name==version`), read from pyproject.toml's dependencies."""
    dependencies = tomllib.loads(Path(pyproject).read_text())["project"]["dependencies"]
    pinned = {_distribution_name(dep): dep for dep in dependencies}
    missing = [name for name in SPARK_EXECUTOR_DISTRIBUTIONS if name not in pinned]
    if missing:
        raise ValueError(f"pyproject.toml pins no {', '.join(missing)} (needed on Spark executors)")
    return [pinned[name] for name in SPARK_EXECUTOR_DISTRIBUTIONS]


def env_archive_key(requirements: list[str], python: str = sys.executable) -> str:
    """The cache key of a packed environment: its pins, the interpreter's version and path, the platform."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                             check=True).stdout.strip()
    text = "\n".join([*sorted(requirements), version, str(Path(python).resolve()), platform.machine()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def env_archive_path(cache_dir: str | Path = ENV_CACHE, python: str = sys.executable,
                     requirements: list[str] | None = None) -> Path:
    """Where `build_env_archive` keeps (or would keep) the archive for these pins: what a dry run names."""
    requirements = requirements or spark_executor_requirements()
    return Path(cache_dir) / f"rexbert-spark-env-{env_archive_key(requirements, python)}.tar.gz"


def build_env_archive(cache_dir: str | Path = ENV_CACHE, python: str = sys.executable,
                      requirements: list[str] | None = None, log=print) -> Path:
    """The executors' environment as a venv-pack archive, built once per content key and then reused.

    It is built in a temporary folder (a fresh venv, `pip install` of the pins, `venv-pack`) and renamed into
    the cache only when complete, so an interrupted build never leaves a partial archive under the final name.
    """
    requirements = requirements or spark_executor_requirements()
    cache_dir = Path(cache_dir)
    target = env_archive_path(cache_dir, python, requirements)
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    venv_pack = shutil.which("venv-pack", path=str(Path(sys.executable).parent)) or shutil.which("venv-pack")
    if venv_pack is None:
        raise RuntimeError("packing the executors' environment needs venv-pack (`pip install venv-pack`)")
    with tempfile.TemporaryDirectory(prefix="rexbert-env-", dir=cache_dir) as tmp:
        env = Path(tmp) / "env"
        log(f"building the Spark executors' environment ({len(requirements)} pinned packages) in {env}")
        subprocess.run([python, "-m", "venv", str(env)], check=True)
        (Path(tmp) / "requirements.txt").write_text("\n".join(requirements) + "\n")
        pip = [str(env / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        partial = Path(tmp) / target.name
        for step in ([*pip, "install", "-U", "pip"], [*pip, "install", "-r", str(Path(tmp) / "requirements.txt")],
                     [venv_pack, "-p", str(env), "-o", str(partial)]):
            done = subprocess.run(step, capture_output=True, text=True)  # pip's chatter is not for the console
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
                raise RuntimeError(f"building the executors' environment failed at `{shlex.join(step)}`:\n{tail}")
        partial.replace(target)
    log(f"packed {target} ({target.stat().st_size / 2**20:.0f} MiB)")
    return target
