"""The extract stage: readers (WARC, HTML, JSONL, Parquet), trafilatura + product data, language id."""
