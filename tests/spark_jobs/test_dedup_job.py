"""The Spark dedup job on real local Spark: components, duplicates, representatives, accounting."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.minhash import jaccard, make_near_duplicates
from infra.core.config import CorpusConfig
from infra.core.manifest import read_manifest
from spark_jobs.dedup_job import connected_components, run_dedup

pytestmark = pytest.mark.spark


def _union_find(nodes: list[int], edges: list[tuple[int, int]]) -> dict[int, int]:
    parent = {n: n for n in nodes}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return {n: find(n) for n in nodes}


def test_large_small_star_matches_union_find_on_random_graphs(spark):
    rng = random.Random(0)
    nodes = rng.sample(range(-10**12, 10**12), 150)  # signed, unordered ids like xxhash64 nodes
    edges = [tuple(rng.sample(nodes, 2)) for _ in range(100)]
    edges += [(nodes[i], nodes[i + 1]) for i in range(0, 16)]  # a path needs several rounds
    df = spark.createDataFrame(edges, "src long, dst long")
    components, rounds = connected_components(df)
    got = {r["node"]: r["root"] for r in components.collect()}
    expected = _union_find(sorted({n for e in edges for n in e}), edges)
    assert got == expected
    assert rounds >= 2


def _read_stage(folder) -> list[dict]:
    """The Parquet part files of a stage folder (manifest.json sits beside them)."""
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]).to_pylist()


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_dedup_finds_exact_and_near_duplicates_and_keeps_the_rest(spark, tmp_path):
    docs = make_near_duplicates(n_base=30, copies_per_base=3, words_per_doc=80, min_jaccard=0.3, seed=7)
    for d in docs:
        d["quality_score"] = float(d["group"] % 3 == 0 and d["doc_id"].endswith("c02"))  # a better copy wins
        del d["doc_id"]  # derived from url + text by the job
    exact = dict(docs[0], url="https://mirror.test/exact")
    docs += [exact, {"url": "https://example.test/empty", "text": " ... "},
             {"url": "https://example.test/null", "text": None}]
    src = tmp_path / "docs.jsonl"
    _write_jsonl(src, docs)
    cfg = CorpusConfig()

    manifest = run_dedup(spark, str(src), str(tmp_path / "deduped"), cfg)
    counts = manifest["counts"]
    assert counts["input"] == len(docs)
    assert counts["errors"] == {"null_text": 1} and counts["filtered"] == {"no_words": 1}
    assert counts["input"] == counts["kept"] + counts["duplicates"] + 2
    assert read_manifest(tmp_path / "deduped")["counts"] == counts

    rows = _read_stage(tmp_path / "deduped")
    by_url = {r["url"]: r for r in rows}
    assert by_url[exact["url"]]["minhash_cluster"] == by_url[docs[0]["url"]]["minhash_cluster"] is not None
    # Every pair of the same base with Jaccard >= 0.9 ends up in one cluster; different bases never do.
    for group in range(30):
        members = [d for d in docs[:-3] if d["group"] == group]
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if jaccard(a["text"], b["text"]) >= 0.9:
                    assert by_url[a["url"]]["minhash_cluster"] == by_url[b["url"]]["minhash_cluster"] is not None
    clusters: dict = {}
    for r in rows:
        if r["minhash_cluster"] is not None:
            clusters.setdefault(r["minhash_cluster"], set()).add(r["group"])
    assert all(len(groups) == 1 for groups in clusters.values())
    # Exactly one representative per cluster, chosen by quality first; singletons represent themselves.
    for r in rows:
        if r["minhash_cluster"] is None:
            assert r["representative_id"] == r["doc_id"] and not r["is_duplicate"]
    for cid in clusters:
        members = [r for r in rows if r["minhash_cluster"] == cid]
        reps = [r for r in members if not r["is_duplicate"]]
        assert len(reps) == 1 and all(m["representative_id"] == reps[0]["doc_id"] for m in members)
        best = max(members, key=lambda r: (r["quality_score"], [-ord(c) for c in r["doc_id"]]))
        assert reps[0]["doc_id"] == best["doc_id"]


def _filtered_stage(tmp_path, docs) -> str:
    """A `filtered/` stage folder: Parquet beside manifest.json, every 7th row dropped upstream."""
    table = pa.Table.from_pylist(
        [dict(d, filter_reason=("short_doc" if i % 7 == 0 else None)) for i, d in enumerate(docs)]
    )
    (tmp_path / "filtered").mkdir()
    pq.write_table(table, tmp_path / "filtered" / "part-0.parquet")
    (tmp_path / "filtered" / "manifest.json").write_text("{}")  # the reader must skip it
    return str(tmp_path / "filtered")


def test_filtered_stage_input_reads_only_kept_rows(spark, tmp_path):
    docs = make_near_duplicates(n_base=10, copies_per_base=2, min_jaccard=0.9, seed=3)
    filtered = _filtered_stage(tmp_path, docs)
    manifest = run_dedup(spark, filtered, str(tmp_path / "deduped"), CorpusConfig())
    kept_rows = [d for i, d in enumerate(docs) if i % 7]
    assert manifest["dedup"]["rows_filtered_upstream_not_read"] == len(docs) - len(kept_rows)
    assert manifest["counts"]["input"] == len(kept_rows) == manifest["counts"]["kept"] + manifest["counts"][
        "duplicates"]
    rows = _read_stage(tmp_path / "deduped")
    assert sorted(r["doc_id"] for r in rows) == sorted(d["doc_id"] for d in kept_rows)
    clusters: dict = {}
    for r in rows:
        clusters.setdefault(r["minhash_cluster"] or r["doc_id"], []).append(r)
    for members in clusters.values():  # no quality column: the smallest doc_id represents its cluster
        smallest = min(m["doc_id"] for m in members)
        assert all(m["representative_id"] == smallest and m["is_duplicate"] == (m["doc_id"] != smallest)
                   for m in members)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deduped", "filtered"]  # no staging left behind


@pytest.mark.heavy
def test_clusters_and_representatives_do_not_depend_on_partitioning(spark, tmp_path):
    docs = make_near_duplicates(n_base=10, copies_per_base=2, min_jaccard=0.6, seed=3)
    filtered = _filtered_stage(tmp_path, docs)

    def choice():
        return {r["doc_id"]: (r["minhash_cluster"], r["representative_id"], r["is_duplicate"])
                for r in _read_stage(tmp_path / "deduped")}

    first = run_dedup(spark, filtered, str(tmp_path / "deduped"), CorpusConfig.model_validate(
        {"dedup": {"partitions": 3}}))
    first_choice = choice()
    second = run_dedup(spark, [filtered], str(tmp_path / "deduped"), CorpusConfig.model_validate(
        {"dedup": {"partitions": 1}}))  # a rerun replaces the folder
    assert first["counts"]["duplicates"] == second["counts"]["duplicates"] > 0
    assert choice() == first_choice


def test_rows_without_a_doc_id_get_one_of_their_own(spark, tmp_path):
    words = [f"w{i}" for i in range(400)]
    texts = [" ".join(random.Random(seed).sample(words, 60)) for seed in range(3)]
    rows = [{"doc_id": None, "url": f"https://x.example/{i}", "text": t} for i, t in enumerate(texts)]
    rows.append({"doc_id": None, "url": "https://mirror.example/0", "text": texts[0]})  # an exact copy
    rows.append({"doc_id": "given", "url": "https://y.example/", "text": " ".join(words[:80])})
    src = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    manifest = run_dedup(spark, str(src), str(tmp_path / "deduped"), CorpusConfig())
    out = _read_stage(tmp_path / "deduped")
    ids = [r["doc_id"] for r in out]
    assert None not in ids and len(set(ids)) == 5 and "given" in ids
    counts = manifest["counts"]
    assert (counts["input"], counts["duplicates"], counts["kept"]) == (5, 1, 4)
