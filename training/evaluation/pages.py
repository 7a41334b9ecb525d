"""Page text for the page tasks, extracted with the corpus code and cached under the output folder.

Extraction is the slow part (tens of ms to seconds per page), so it runs in one process per core and the
texts are cached in a JSONL file keyed by page id; a rerun or a second model reuses them.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from training.evaluation.base import TaskDataError

SERIAL_BELOW = 16  # pages: fewer are extracted in this process (starting the workers costs a few seconds)

# The folder, under a demo's run root, where a stage before the evaluation (the demo's shared-text corpus)
# leaves page texts in the task cache layout (`<task>/texts.jsonl`); the demo's evaluation starts from it.
PAGE_CACHE = "cache"


def read_html(path: Path) -> bytes:
    if not path.is_file():
        raise TaskDataError(f"page file not found: {path}")
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as exc:
        raise TaskDataError(f"{path}: not a readable gzip HTML file ({exc})") from None


def _extract_one(job: tuple[Path, str | None, bool]) -> tuple[str, str]:
    """(title, text) of one page; runs in a worker process."""
    from corpus.extract.html import extract_page

    path, url, include_product = job
    page = extract_page(read_html(path), url, include_product=include_product)
    return page.title or "", page.text or ""


def extract_pages(
    pages: list[tuple[str, Path, str | None]],
    cache_file: Path,
    include_product: bool = True,
    desc: str = "extract",
    workers: int | None = None,
) -> dict[str, dict[str, str]]:
    """Title and text of each (key, html.gz path, url), via `corpus.extract.html.extract_page`, cached; the pages
    not cached yet are extracted by `workers` processes (default: one per core), in order."""
    cache: dict[str, dict[str, str]] = {}
    if cache_file.is_file():
        for line in cache_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                cache[row["key"]] = {"title": row["title"], "text": row["text"]}
    missing = [p for p in pages if p[0] not in cache]
    if missing:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        jobs = [(path, url, include_product) for _, path, url in missing]
        workers = min(workers or os.cpu_count() or 1, len(missing))
        pool = None
        if workers > 1 and len(missing) >= SERIAL_BELOW:  # spawn, not fork: the caller may hold Ray or Spark threads
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            results = pool.map(_extract_one, jobs, chunksize=4) if pool else map(_extract_one, jobs)
            with cache_file.open("a", encoding="utf-8") as out:
                for (key, _, _), (title, text) in tqdm(zip(missing, results, strict=True), total=len(missing),
                                                       desc=desc, unit="page", leave=False):
                    out.write(json.dumps({"key": key, "title": title, "text": text}, ensure_ascii=False) + "\n")
                    cache[key] = {"title": title, "text": text}
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
    return {key: cache[key] for key, _, _ in pages}
