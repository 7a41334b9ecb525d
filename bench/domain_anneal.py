"""The paper's domain-anneal ablation at the demo's size on 2 CPU cores (about 30 minutes with the data stages).

Runs `rexbert study domain-anneal` with the demo config (`study.domain_anneal` defaults: a 2.4M-token general phase,
then three arms of 800k tokens x 3 seeds: the e-commerce anneal, the same anneal on general text, and the
compute-matched continuation of the general phase) and copies its results into `bench/results/`:
`domain_anneal.md` / `.json` (mean ± std over seeds, paired tests) and `domain_anneal_arms.png` /
`domain_anneal_loss.png`. The demo's data stages (sample-data, corpus, tokenize) run first when the root lacks them.

    python -m bench.domain_anneal --root /tmp/demo                # the whole study
    python -m bench.domain_anneal --root /tmp/demo --from-hf DIR  # plus the anneal of a transformers checkpoint
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from infra.core.config import load_config
from infra.core.paths import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
DEMO_CONFIG = PROJECT_ROOT / "infra" / "configs" / "demo.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="a demo output root (its data stages are reused)")
    parser.add_argument("--from-hf", default=None, help="a transformers ModernBERT checkpoint to anneal as well")
    args = parser.parse_args()
    overrides = {"run": {"output": str(args.root)}}
    if args.from_hf:
        overrides["study"] = {"domain_anneal": {"init_from_hf": args.from_hf}}
    config = load_config(DEMO_CONFIG, overrides)
    started = time.perf_counter()
    if not (args.root / "tokens" / "general-128" / "manifest.json").is_file():
        from infra.demo import run_demo

        data = config.model_copy(update={"demo": config.demo.model_copy(
            update={"stages": ["sample-data", "corpus", "tokenize"]})})
        results = run_demo(data, args.root)
        failed = {name: r for name, r in results.items() if r.get("status") not in ("ok", "skipped")}
        if failed:
            raise SystemExit(f"the demo's data stages did not finish: {failed}")
    from ray_jobs.study import run_study, study_dir

    results = run_study(config)
    folder = Path(study_dir(config)) / "results"
    RESULTS.mkdir(parents=True, exist_ok=True)
    for source, target in (("results.json", "domain_anneal.json"), ("arms.png", "domain_anneal_arms.png"),
                           ("loss.png", "domain_anneal_loss.png")):
        shutil.copy2(folder / source, RESULTS / target)
    text = (folder / "results.md").read_text().replace("(arms.png)", "(domain_anneal_arms.png)")
    (RESULTS / "domain_anneal.md").write_text(text.replace("(loss.png)", "(domain_anneal_loss.png)"))
    print(f"domain-anneal study: {time.perf_counter() - started:.0f}s; results in {RESULTS}/domain_anneal.md")
    for line in results["verdict"]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
