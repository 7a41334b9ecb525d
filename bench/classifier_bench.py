"""E-commerce classifier on wcxb-dev: cross-validation with folds by domain, per feature set and page type.

Positives: product and collection pages; negatives: article, documentation, forum, service. wcxb's `listing`
mixes shop category pages with news front pages and directories, so it is neither: it is left out of training
and of precision / recall, scored by the model of its own fold, and reported as the share called e-commerce.
Each page is extracted once with `corpus.extract.html.extract_page` (trafilatura and product data: the block
model is trained on these pages, see `run`); folds are `domain_fold` (a stable hash of
the domain, so no domain is on both sides); every model is trained on the other folds only.

Feature sets, side by side in the same run (all at the shipped TrainParams):
  text      extracted text words only (the plain fastText baseline)
  page      text + URL + title + product fields + text signal tokens (prices, cart words, ...)
  page+html page + the raw page's structural signals (`corpus.extract.html.html_signals`), kept in `extracted/`:
            what the filter stage scores

Nested selection (`shipped`): the settings tuned while building the classifier (opening text words, copies of
each e-commerce page) are chosen again for every outer fold by an inner cross-validation on that fold's
training folds alone (best mean F1 at the shipped threshold), so the outer figures never saw the choice made
on them. The shipped defaults are what the same inner search picks on all folds.

    python -m bench.classifier_bench          # 75 models: 774 s measured on 2 busy shared cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from itertools import product
from pathlib import Path

from corpus.filter.classify import (
    MAX_TEXT_WORDS,
    NEGATIVE_TYPES,
    POSITIVE_TYPES,
    PageExample,
    TrainParams,
    cross_validate,
    load_labeled_pages,
)
from infra.core.config import load_config
from infra.core.paths import PROJECT_ROOT, shared_data_dir

RESULTS = PROJECT_ROOT / "bench" / "results"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
GOAL, MUST = (0.95, 0.95), (0.93, 0.90)  # issue 10: precision / recall on unseen domains at the shipped threshold
GRID = {"text_words": (100, 300), "positive_share": (0.4, 0.6)}  # the old defaults: 100 words, 2 copies (0.4)


def feature_sets(examples: list[PageExample]) -> dict[str, list[PageExample]]:
    return {
        # The text alone: no URL, title, product or signal tokens (`text_only` makes PageExample.features skip them).
        "text": [replace(e, url=None, title=None, product=None, html_signals=None, text_only=True) for e in examples],
        "page": [replace(e, html_signals=None) for e in examples],
        "page+html": examples,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def summarize(folds: list[dict], threshold: float) -> dict:
    """Mean and spread over folds of precision / recall / F1, and per page type the share called e-commerce
    (recall for product and collection, the false-positive rate for the others)."""
    at = [f[threshold] for f in folds]
    out = {k: spread([m[k] for m in at]) for k in ("precision", "recall", "f1")}
    types = sorted({t for m in at for t in m["by_page_type"]})
    out["by_page_type"] = {}
    for page_type in types:
        rows = [m["by_page_type"][page_type] for m in at if page_type in m["by_page_type"]]
        n, called = sum(r["n"] for r in rows), sum(r["predicted_ecom"] for r in rows)
        shares = [r["predicted_ecom"] / r["n"] for r in rows if r["n"]]
        out["by_page_type"][page_type] = {"n": n, "called_ecom": called, "share": round(called / n, 4),
                                          "fold_min": round(min(shares), 4), "fold_max": round(max(shares), 4)}
    return out


def report(folds: list[dict], threshold: float) -> dict:
    return {
        "at_threshold": {str(t): summarize(folds, t) for t in THRESHOLDS},
        "per_fold": [{k: f[threshold][k] for k in ("n", "positives", "precision", "recall", "f1")} for f in folds],
    }


def with_settings(examples: list[PageExample], text_words: int) -> list[PageExample]:
    return [replace(e, text_words=text_words) for e in examples]


def inner_choice(examples: list[PageExample], threshold: float, k: int, work: Path) -> tuple[dict, dict]:
    """The GRID setting with the best mean F1 at `threshold` over a k-fold CV of `examples` alone."""
    scores = {}
    for text_words, weight in product(GRID["text_words"], GRID["positive_share"]):
        folds = cross_validate(with_settings(examples, text_words), work, k, TrainParams(positive_share=weight),
                               (threshold,), salt="inner")
        scores[(text_words, weight)] = statistics.mean(f[threshold]["f1"] for f in folds)
    best = max(scores, key=lambda key: (round(scores[key], 4), key))
    return {"text_words": best[0], "positive_share": best[1]}, {f"{a}/{b}": round(v, 4) for (a, b), v in scores.items()}


def nested(examples: list[PageExample], listings: list[PageExample], threshold: float, k: int, inner_k: int,
           work: Path) -> dict:
    """Outer k folds by domain; settings for each chosen by `inner_choice` on its training folds only."""
    from corpus.filter.classify import EcomClassifier, domain_fold, evaluate, train_fasttext

    folds, choices = [], []
    for fold in range(k):
        train = [e for e in examples if domain_fold(e, k) != fold]
        test = [e for e in examples if domain_fold(e, k) == fold]
        extra = [e for e in listings if domain_fold(e, k) == fold]
        choice, inner = inner_choice(train, threshold, inner_k, work)
        choices.append({"fold": fold, **choice, "inner_f1": inner})
        print(f"outer fold {fold}: chose {choice} (inner F1 {inner})", flush=True)
        model = EcomClassifier(train_fasttext(with_settings(train, choice["text_words"]), work / "outer.bin",
                                              TrainParams(positive_share=choice["positive_share"])))
        result = {}
        test_words, extra_words = with_settings(test, choice["text_words"]), with_settings(extra, choice["text_words"])
        scores, extra_scores = model.score_examples(test_words), model.score_examples(extra_words)
        for t in THRESHOLDS:
            metrics = evaluate(model, test_words, t, scores)
            row = metrics["by_page_type"].setdefault("listing", {"n": 0, "predicted_ecom": 0})
            row["n"] += len(extra)
            row["predicted_ecom"] += sum(s >= t for s in extra_scores)
            result[t] = metrics
        folds.append(result)
    return {"choices": choices, "folds": folds}


def run(pages: Path, k: int, inner_k: int, work: Path, limit: int | None = None) -> dict:
    started = time.perf_counter()
    threshold = load_config(None).corpus.filter.ecommerce_threshold
    # trafilatura's text (with product data merged), not the block model's: that model is trained on these very
    # pages' ground truth, and its text on them would be better than on any unseen page the filter scores.
    everything = load_labeled_pages(pages, POSITIVE_TYPES, (*NEGATIVE_TYPES, "listing"), limit=limit, progress=True,
                                    extract_options={"block_model": False})
    examples = [e for e in everything if e.page_type != "listing"]
    listings = [replace(e, label=False) for e in everything if e.page_type == "listing"]
    result: dict = {
        "pages": len(examples),
        "positives": sum(e.label for e in examples),
        "listing_pages": len(listings),
        "domains": len({e.domain for e in examples}),
        "folds": k,
        "inner_folds": inner_k,
        "shipped_threshold": threshold,
        "train_params": {k_: v for k_, v in vars(TrainParams()).items()},
        "text_words": MAX_TEXT_WORDS,
        "grid": {k_: list(v) for k_, v in GRID.items()},
        "by_feature_set": {},
    }
    sets, listing_sets = feature_sets(examples), feature_sets(listings)
    for name in ("text", "page"):
        folds = cross_validate(sets[name], work, k, TrainParams(), THRESHOLDS, scored=listing_sets[name])
        result["by_feature_set"][name] = report(folds, threshold)
        print(name, result["by_feature_set"][name]["at_threshold"][str(threshold)], flush=True)
    # Every grid setting on all folds (not nested: for reference); the best is what ships, as the inner search
    # picks it on all labelled pages.
    result["grid_all_folds"] = {}
    for text_words, share in product(GRID["text_words"], GRID["positive_share"]):
        folds = cross_validate(with_settings(examples, text_words), work, k, TrainParams(positive_share=share),
                               THRESHOLDS, scored=with_settings(listings, text_words))
        result["grid_all_folds"][f"{text_words}/{share}"] = report(folds, threshold)
        print(text_words, share, result["grid_all_folds"][f"{text_words}/{share}"]["at_threshold"][str(threshold)],
              flush=True)
    shipped = f"{MAX_TEXT_WORDS}/{TrainParams().positive_share}"
    result["by_feature_set"]["page+html"] = result["grid_all_folds"][shipped]
    result["shipped_setting"] = shipped
    grid = result["grid_all_folds"]
    result["best_setting_all_folds"] = max(grid, key=lambda key: grid[key]["at_threshold"][str(threshold)]["f1"]["mean"]
                                           + 1e-9 * list(grid).index(key))
    outer = nested(examples, listings, threshold, k, inner_k, work)
    result["nested"] = {"choices": outer["choices"], **report(outer["folds"], threshold)}
    print("nested", result["nested"]["at_threshold"][str(threshold)], flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _pm(m: dict) -> str:
    return f"{m['mean']:.3f} ± {m['std']:.3f} ({m['min']:.2f}–{m['max']:.2f})"


def to_markdown(result: dict) -> str:
    t = str(result["shipped_threshold"])
    lines = [
        "# E-commerce classifier (fastText) on wcxb-dev, cross-validated by domain",
        "",
        f"{result['pages']} pages on {result['domains']} domains ({result['positives']} e-commerce: product, "
        f"collection; the rest article, documentation, forum, service), {result['folds']} folds by domain; every "
        f"figure is a fold's model on the fold's unseen domains: mean ± std over folds (min–max). Shipped threshold "
        f"{t} (`corpus.filter.ecommerce_threshold`). Reproduce: `python -m bench.classifier_bench` "
        f"({result['seconds']:.0f} s).",
        "",
        f"`listing` ({result['listing_pages']} pages) mixes shop category pages with news front pages and "
        "directories: it is neither trained on nor counted in precision / recall; its row below is the share the "
        "classifier calls e-commerce.",
        "",
        f"## At the shipped threshold ({t})",
        "",
        "| model | precision | recall | F1 |",
        "| --- | --- | --- | --- |",
    ]
    rows = [(f"features `{n}`", r["at_threshold"][t]) for n, r in result["by_feature_set"].items()]
    rows.append(("settings chosen per fold by inner CV (nested)", result["nested"]["at_threshold"][t]))
    for name, m in rows:
        lines.append(f"| {name} | {_pm(m['precision'])} | {_pm(m['recall'])} | {_pm(m['f1'])} |")
    nested_m, shipped_m = result["nested"]["at_threshold"][t], result["by_feature_set"]["page+html"]["at_threshold"][t]
    verdicts = []
    for name, (p_min, r_min) in (("goal", GOAL), ("must", MUST)):
        met = nested_m["precision"]["mean"] >= p_min and nested_m["recall"]["mean"] >= r_min
        verdicts.append(f"{name} {p_min} / {r_min}: {'met' if met else 'not met'}")
    lines += [
        "",
        f"`page+html` is what ships (`{result['shipped_setting']}`: text words / positive share); its settings were "
        "picked looking at all folds, so the nested row is the unbiased estimate. Against the issue's targets "
        f"(mean precision / recall on unseen domains at {t}), nested: precision {nested_m['precision']['mean']:.3f}, "
        f"recall {nested_m['recall']['mean']:.3f}; {'; '.join(verdicts)}. Shipped settings on all folds: "
        f"{shipped_m['precision']['mean']:.3f} / {shipped_m['recall']['mean']:.3f}.",
    ]
    lines += [
        "",
        f"## Share called e-commerce per page type (threshold {t}, summed over folds)",
        "",
        "| page type | " + " | ".join(f"`{n}`" for n in result["by_feature_set"]) + " | nested |",
        "| --- |" + " --- |" * (len(result["by_feature_set"]) + 1),
    ]
    shipped = result["by_feature_set"]["page+html"]["at_threshold"][t]["by_page_type"]
    for page_type in shipped:
        cells = []
        for r in [*result["by_feature_set"].values(), result["nested"]]:
            row = r["at_threshold"][t]["by_page_type"].get(page_type)
            cells.append(f"{row['share']:.3f} ({row['called_ecom']}/{row['n']})" if row else "–")
        kind = "recall" if page_type in POSITIVE_TYPES else "not counted" if page_type == "listing" else "false pos."
        lines.append(f"| {page_type} ({kind}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Operating points (mean over folds)",
        "",
        "| model | threshold | precision | recall | F1 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in [*result["by_feature_set"].items(), ("nested", result["nested"])]:
        for threshold, m in r["at_threshold"].items():
            lines.append(f"| {name} | {threshold} | {m['precision']['mean']:.3f} | {m['recall']['mean']:.3f} | "
                         f"{m['f1']['mean']:.3f} |")
    lines += [
        "",
        "## Nested selection",
        "",
        f"Grid: opening text words {result['grid']['text_words']} × positive share "
        f"{result['grid']['positive_share']} (TrainParams.positive_share: the e-commerce share of training lines, "
        "reached by repeating e-commerce pages), chosen per outer fold by the best "
        f"mean F1 of a {result['inner_folds']}-fold CV on its training folds.",
        "",
        "| outer fold | text words | positive share | inner F1 per setting (words/share) |",
        "| --- | --- | --- | --- |",
    ]
    for c in result["nested"]["choices"]:
        lines.append(f"| {c['fold']} | {c['text_words']} | {c['positive_share']} | {c['inner_f1']} |")
    lines += [
        "",
        f"Each setting on all {result['folds']} folds (not nested, for reference; threshold {t}). Shipped: "
        f"`{result['shipped_setting']}`; best here: `{result['best_setting_all_folds']}`.",
        "",
        "| text words / positive share | precision | recall | F1 |",
        "| --- | --- | --- | --- |",
    ]
    for name, r in result["grid_all_folds"].items():
        m = r["at_threshold"][t]
        lines.append(f"| {name} | {_pm(m['precision'])} | {_pm(m['recall'])} | {_pm(m['f1'])} |")
    lines += [
        "",
        "`text`: extracted words only; `page`: + URL, title, product fields and text signal tokens; `page+html`: "
        "+ the raw page's structural signals (`corpus.extract.html.html_signals`: product markup, ItemList size, "
        "cart buttons, article markup, counts of shop and forum words in the HTML), kept in `extracted/`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=Path, default=shared_data_dir() / "pages" / "wcxb-dev")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--inner-folds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="A random subset of the pages (a quick check).")
    parser.add_argument("--output", type=Path, default=RESULTS / "classifier.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        result = run(args.pages, args.folds, args.inner_folds, Path(work), args.limit)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
