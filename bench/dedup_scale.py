"""The Spark dedup job at 10k / 100k (/ 1M) generated documents: time, peak memory, precision / recall.

Documents are generated first, streamed to Parquet in chunks: groups of a base document and two copies
whose Jaccard to the base is drawn from [0.3, 1] (`corpus.minhash.make_near_duplicates`, 60 words).
Peak memory is the largest sampled RSS sum of this process tree (driver Python, the Spark JVM and its
Python workers), read from /proc every 0.2 s. On the smallest size every within-group pair's exact
word 5-gram Jaccard is computed and compared with the job's clusters (a pair is predicted duplicate
when both documents share a minhash_cluster): precision and recall per Jaccard threshold, and the
observed rate per Jaccard bin against the LSH S-curve 1 - (1 - s^8)^14.

    python -m bench.dedup_scale                          # 10k and 100k (several minutes on 2 cores)
    nice python -m bench.dedup_scale --sizes 1000000     # the 1M run (long)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from corpus.minhash import jaccard, lsh_probability, make_near_duplicates, shingles
from infra.core.config import CorpusConfig
from infra.core.paths import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
CHUNK = 20_000
THRESHOLDS = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def generate_parquet(folder: Path, n_docs: int) -> None:
    """n_docs generated documents in Parquet part files, groups of 3 (a base and two edited copies).

    Written beside `folder` and renamed at the end, so an interrupted run never leaves a partial set.
    """
    staging = folder.with_name(folder.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    for chunk, start in enumerate(tqdm(range(0, n_docs, CHUNK), desc=f"generate {n_docs}", unit="chunk")):
        n = min(CHUNK, n_docs - start)
        docs = make_near_duplicates(-(-n // 3), 2, words_per_doc=60, min_jaccard=0.3, seed=chunk)[:n]
        for d in docs:
            d["doc_id"] = f"k{chunk:04d}-{d['doc_id']}"
            d["url"] = f"https://example.test/{d['doc_id']}"
            d["group"] = chunk * 1_000_000 + d["group"]
        pq.write_table(pa.Table.from_pylist(docs), staging / f"part-{chunk:05d}.parquet", compression="zstd")
    staging.rename(folder)


class TreeRss:
    """Samples the summed RSS of this process and all its descendants (the JVM, Python workers)."""

    def __init__(self, every: float = 0.2) -> None:
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def tree_rss() -> int:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        tree, frontier = {os.getpid()}, [os.getpid()]
        children = defaultdict(list)
        for pid, ppid in parents.items():
            children[ppid].append(pid)
        while frontier:
            for child in children[frontier.pop()]:
                tree.add(child)
                frontier.append(child)
        return sum(rss.get(pid, 0) for pid in tree)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.tree_rss())

    def __enter__(self) -> TreeRss:
        self.peak = self.tree_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def precision_recall(deduped: Path, source: Path, threshold_default: float) -> dict:
    """Pairs within a generated group: exact Jaccard vs 'same minhash_cluster', per threshold."""
    out = pq.read_table([str(p) for p in sorted(deduped.glob("*.parquet"))], columns=["doc_id", "minhash_cluster"])
    cluster = dict(zip(out.column("doc_id").to_pylist(), out.column("minhash_cluster").to_pylist(), strict=True))
    docs = pq.read_table(source, columns=["doc_id", "text", "group"]).to_pylist()
    groups = defaultdict(list)
    for d in docs:
        groups[d["group"]].append(d)
    pairs = []  # (jaccard, predicted)
    for members in groups.values():
        sets = [set(shingles(m["text"])) for m in members]
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                ci, cj = cluster[members[i]["doc_id"]], cluster[members[j]["doc_id"]]
                pairs.append((jaccard(sets[i], sets[j]), ci is not None and ci == cj))
    group_of = {d["doc_id"]: d["group"] for d in docs}
    by_cluster = defaultdict(set)
    for doc_id, c in cluster.items():
        if c is not None:
            by_cluster[c].add(group_of[doc_id])
    mixed = sum(1 for gs in by_cluster.values() if len(gs) > 1)  # clusters joining unrelated documents
    sims = np.array([p[0] for p in pairs])
    pred = np.array([p[1] for p in pairs])
    table = []
    for t in sorted(set(THRESHOLDS + [threshold_default])):
        true = sims >= t
        tp = int((pred & true).sum())
        table.append({"threshold": t, "true_pairs": int(true.sum()), "predicted_pairs": int(pred.sum()),
                      "precision": round(tp / max(1, pred.sum()), 4), "recall": round(tp / max(1, true.sum()), 4)})
    bins = np.linspace(0.0, 1.0, 21)
    curve = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        sel = (sims >= lo) & ((sims < hi) if hi < 1 else (sims <= hi))
        if sel.sum():
            curve.append({"jaccard_bin": [round(lo, 2), round(hi, 2)], "pairs": int(sel.sum()),
                          "observed": round(float(pred[sel].mean()), 4),
                          "lsh_theory": round(float(lsh_probability(sims[sel], 14, 8).mean()), 4)})
    return {"pairs": len(pairs), "cross_group_clusters": mixed, "table": table, "s_curve": curve}


def plot_curve(curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mid = [sum(c["jaccard_bin"]) / 2 for c in curve]
    s = np.linspace(0, 1, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(s, lsh_probability(s, 14, 8), label="LSH theory 1-(1-s^8)^14")
    ax.plot(mid, [c["observed"] for c in curve], "o-", label="pipeline: same minhash_cluster")
    ax.axvline((1 / 14) ** (1 / 8), ls="--", c="gray", label="(1/b)^(1/r) = 0.719")
    ax.set_xlabel("exact word 5-gram Jaccard")
    ax.set_ylabel("share of pairs marked duplicates")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workdir", default="/tmp/rexbert-dedup-scale")
    parser.add_argument("--driver-memory", default="3g")
    args = parser.parse_args()
    from spark_jobs.dedup_job import run_dedup
    from spark_jobs.session import spark_session

    RESULTS.mkdir(parents=True, exist_ok=True)
    result_path = RESULTS / "dedup_scale.json"
    results = json.loads(result_path.read_text()) if result_path.is_file() else {"runs": {}}
    config = CorpusConfig()
    work = Path(args.workdir)
    with spark_session("dedup-scale", master="local[2]", driver_memory=args.driver_memory,
                       shuffle_partitions=8) as spark:
        for n in sorted(args.sizes):
            source = work / f"docs-{n}"
            if not source.is_dir():
                generate_parquet(source, n)
            with TreeRss() as rss:
                start = time.perf_counter()
                manifest = run_dedup(spark, str(source), str(work / f"deduped-{n}"), config)
                seconds = time.perf_counter() - start
            run = {"docs": n, "seconds": round(seconds, 1), "docs_per_s": round(n / seconds, 1),
                   "peak_rss_gib": round(rss.peak / 2**30, 2), "counts": manifest["counts"],
                   "dedup": manifest["dedup"], "machine": f"{os.cpu_count()} cores, local[2], shared"}
            if n == min(args.sizes) and n <= 100_000:  # exact Jaccard of every group pair, in Python
                run["precision_recall"] = precision_recall(work / f"deduped-{n}", source, config.dedup.threshold)
                plot_curve(run["precision_recall"]["s_curve"], RESULTS / "dedup_scale_scurve.png")
            results["runs"][str(n)] = run
            results["config"] = config.dedup.model_dump(mode="json") | {
                "theoretical_threshold": config.dedup.theoretical_threshold,
                "s_curve_midpoint": config.dedup.s_curve_midpoint}
            result_path.write_text(json.dumps(results, indent=2))
            print({k: run[k] for k in ("docs", "seconds", "docs_per_s", "peak_rss_gib")})
    write_markdown(results)


def write_markdown(results: dict) -> None:
    cfg = results["config"]
    lines = ["# Spark MinHash dedup at scale (generated documents, 60 words, groups of 3)\n",
             f"14 bands x 8 rows, word 5-grams; (1/b)^(1/r) = {cfg['theoretical_threshold']:.3f}, "
             f"50% point of the S-curve = {cfg['s_curve_midpoint']:.3f}.\n",
             "| docs | seconds | docs/s | peak RSS (GiB, process tree) | duplicates | components | CC rounds |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run in sorted(results["runs"].values(), key=lambda r: r["docs"]):
        lines.append(f"| {run['docs']} | {run['seconds']} | {run['docs_per_s']} | {run['peak_rss_gib']} | "
                     f"{run['counts']['duplicates']} | {run['dedup']['components']} | {run['dedup']['cc_rounds']} |")
    for size in (10_000, 100_000, 1_000_000):
        if str(size) not in results["runs"]:
            lines.append(f"| {size} | not run | | | | | |")
    for run in results["runs"].values():
        if "precision_recall" in run:
            pr = run["precision_recall"]
            lines += [f"\nPrecision / recall of duplicate pairs at {run['docs']} docs ({pr['pairs']} within-group "
                      f"pairs, exact Jaccard; clusters joining unrelated documents: {pr['cross_group_clusters']}):\n",
                      "| Jaccard >= | true pairs | predicted | precision | recall |",
                      "| ---: | ---: | ---: | ---: | ---: |"]
            lines += [f"| {r['threshold']} | {r['true_pairs']} | {r['predicted_pairs']} | {r['precision']} | "
                      f"{r['recall']} |" for r in pr["table"]]
            lines.append("\nObserved share of pairs clustered per Jaccard bin vs the LSH S-curve: "
                         "![S-curve](dedup_scale_scurve.png)")
    (RESULTS / "dedup_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown-only"]:
        write_markdown(json.loads((RESULTS / "dedup_scale.json").read_text()))
    else:
        main()
