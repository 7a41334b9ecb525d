"""Page text for the page tasks, extracted with the corpus code and cached under the output folder.

Extraction is the slow part (tens of ms to seconds per page on 2 cores), so texts are cached in a
JSONL file keyed by page id; a rerun or a second model reuses them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tqdm import tqdm

from training.evaluation.base import TaskDataError

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


def extract_pages(
    pages: list[tuple[str, Path, str | None]],
    cache_file: Path,
    include_product: bool = True,
    desc: str = "extract",
) -> dict[str, dict[str, str]]:
    """Title and text of each (key, html.gz path, url), via `corpus.extract.html.extract_page`, cached."""
    from corpus.extract.html import extract_page

    cache: dict[str, dict[str, str]] = {}
    if cache_file.is_file():
        for line in cache_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                cache[row["key"]] = {"title": row["title"], "text": row["text"]}
    missing = [p for p in pages if p[0] not in cache]
    if missing:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with cache_file.open("a", encoding="utf-8") as out:
            for key, path, url in tqdm(missing, desc=desc, unit="page", leave=False):
                page = extract_page(read_html(path), url, include_product=include_product)
                row = {"key": key, "title": page.title or "", "text": page.text or ""}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                cache[key] = {"title": row["title"], "text": row["text"]}
    return {key: cache[key] for key, _, _ in pages}
