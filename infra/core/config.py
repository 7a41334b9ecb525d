"""The one run config: every section's schema, the one loader and the one resolved-config writer.

A run config has one section per concern, as torchtitan's `job_config.py` has:

    run        where a run writes and how it is seeded
    spark      how the Spark stages run (master, memory, conf)
    ray        which Ray cluster the Ray stages use
    corpus     extract, filter (classify + quality), dedup
    tokenize   tokenizer training and packed token sets
    pretrain   model, data, mlm, optim, parallelism, checkpoint, metrics, and the phases
    evaluate   downstream tasks, search spaces, seeds
    demo       what `rexbert demo` runs
    study      what `rexbert study ...` compares (the domain-anneal ablation)

Every field has a default (the embedded local configuration); a YAML file (a local path or a `file://`,
`s3://`, `gs://`, `hdfs://` URI) overrides some of them, and `--section.key=value` overrides single
fields. `load_config` validates once, with errors that name the field; `write_resolved_config` writes
`config.resolved.yaml` next to a stage's output. Phases named by file are read into the config, so a
resolved config is self-contained: any stage re-run with it does the same work.

    rexbert pretrain --config my-run.yaml --pretrain.model.preset=mini --ray.address=auto

Every entry point (the CLI, spark-submit entry points, Ray workers) loads configs with `load_config`.

Credentials (`spark.conf` keys such as `spark.hadoop.fs.s3a.secret.key`) are best given as `env:NAME`: the
Spark session reads the variable when it is built, and nothing else ever sees the value. Whatever is given,
every file and line that shows a config goes through `redact` (here, and in `build_manifest`).
"""

from __future__ import annotations

import os
import pkgutil
import re
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infra.core import fs

RESOLVED_CONFIG_NAME = "config.resolved.yaml"
PHASES_DIR = Path(__file__).resolve().parents[2] / "training" / "phases"  # also shipped in the Spark code zip


# --- run -----------------------------------------------------------------------------------------------------------


class RunConfig(BaseModel):
    """Where a run writes and how it is seeded."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("local", description="Run name, used in output folders and job names.")
    output: str = Field("demo-output", description="Root folder (local, s3:// or gs://) for all stages.")
    seed: int = Field(0, description="Seed for everything random in the run.")


# --- spark ---------------------------------------------------------------------------------------------------------


# The master URLs Spark accepts (https://spark.apache.org/docs/latest/submitting-applications.html#master-urls).
_HOST_PORT = r"[A-Za-z0-9_.\-]+:\d+"
SPARK_MASTER = re.compile(
    r"local(\[(\*|[1-9]\d*)(,[1-9]\d*)?\])?"  # local, local[4], local[*], local[4,2] (with task retries)
    r"|local-cluster\[\d+,\d+,\d+\]"  # Spark's own test cluster
    rf"|spark://{_HOST_PORT}(,{_HOST_PORT})*"  # standalone, several masters with ZooKeeper
    r"|yarn"
    r"|k8s://(https?://)?[A-Za-z0-9_.\-]+(:\d+)?/?"
    r"|mesos://(zk://)?[A-Za-z0-9_.\-]+(:\d+)?(/\S*)?"
)
# Addresses `ray.init` joins: 'auto' (a cluster started on this node), Ray Client, or the GCS host:port.
RAY_ADDRESS = re.compile(rf"auto|local|ray://[A-Za-z0-9_.\-]+(:\d+)?/?|{_HOST_PORT}")


def check_spark_master(master: str) -> str:
    """`master` when it is a master URL Spark accepts; else ValueError. An empty or mistyped master would be
    taken for a cluster's (and a local session would then bind every interface)."""
    if not isinstance(master, str) or not SPARK_MASTER.fullmatch(master.strip()):
        raise ValueError(f"{master!r} is not a Spark master URL: use local, local[N], local[*], spark://HOST:PORT, "
                         "yarn, k8s://HOST:PORT or mesos://HOST:PORT")
    return master.strip()


def check_ray_address(address: str | None) -> str | None:
    """`address` when it is one `ray.init` joins ('auto', 'ray://HOST:PORT', 'HOST:PORT') or None (a local
    cluster); else ValueError: an empty address must not silently start a local cluster instead."""
    if address is None:
        return None
    if not isinstance(address, str) or not RAY_ADDRESS.fullmatch(address.strip()):
        raise ValueError(f"{address!r} is not a Ray address: use auto, ray://HOST:PORT or HOST:PORT "
                         "(or leave it unset for a local cluster)")
    return address.strip()


class SparkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    master: str = Field(
        "local[*]", description="Master of runs not started by spark-submit (the CLI, `python job.py`); under "
        "spark-submit (`rexbert submit spark`, Dataproc, EMR) the master is always spark-submit's.",
    )
    driver_memory: str = Field("2g", description="spark.driver.memory for local runs.")
    shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions.")
    event_log_dir: str | None = Field(
        None, description="Event log folder for the history server: a local folder or a gs://, s3://, hdfs:// URI "
        "(default: <output>/spark-events for local runs; on a cluster, the cluster's own setting).",
    )
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark conf key/values.")

    @field_validator("master")
    @classmethod
    def _check_master(cls, master: str) -> str:
        return check_spark_master(master)

    def event_logs_for(self, output_root: str | Path | None) -> str | None:
        """Where a local run's event logs go: `event_log_dir`, else `<output_root>/spark-events` for a local
        output root (None for an object store, where only an explicit `event_log_dir` is used)."""
        if self.event_log_dir is not None:
            return self.event_log_dir
        if output_root is None or fs.is_remote(output_root):
            return None
        return str(fs.local_path(output_root).absolute() / "spark-events")


# --- ray -----------------------------------------------------------------------------------------------------------


class RayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, description="Ray address ('auto', 'ray://host:10001'); None starts one.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local cluster (None: all).")
    dashboard_port: int = Field(8265, description="Dashboard port of the local cluster (on 127.0.0.1).")
    metrics_export_port: int = Field(8080, description="Prometheus metrics port of the local node (Grafana).")

    @field_validator("address")
    @classmethod
    def _check_address(cls, address: str | None) -> str | None:
        return check_ray_address(address)


# --- corpus: extract, filter, dedup --------------------------------------------------------------------------------


class ExtractConfig(BaseModel):
    """Settings of the extract stage (readers, trafilatura + product data, language id)."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float | None = Field(
        10.0, gt=0, description="Per-page extraction time limit in seconds; a slower page is error kind `timeout`."
    )
    min_text_chars: int = Field(
        50, ge=0, description="Extracted texts shorter than this are filtered as `too_short` (empty: `empty_text`)."
    )
    max_html_bytes: int | None = Field(
        5_000_000, gt=0, description="Larger HTML payloads are filtered as `too_large` (None: no limit)."
    )
    favor: Literal["auto", "balanced", "precision", "recall"] = Field(
        "auto",
        description="trafilatura mode: auto = defaults plus e-commerce repairs (fallback text on commerce pages).",
    )
    fallback_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description="On commerce pages, use the page's visible text when trafilatura keeps fewer words than "
        "3x this share of it (or this share of the whole page text); 0 turns the fallback off.",
    )
    include_product: bool = Field(
        True, description="Read schema.org Product data (JSON-LD, microdata) and merge missing fields into the text."
    )
    block_model: bool = Field(
        True, description="Extract commerce pages with the shipped main-content block model "
        "(corpus/extract/block_model.json); off: trafilatura and its repairs on every page.",
    )
    prefilter: Literal["none", "commerce_evidence"] = Field(
        "none",
        description="Before extraction: `commerce_evidence` drops pages whose raw HTML shows no sign of selling "
        "(no cart or buy button, product markup, SKU, nor two 'price's) as `no_commerce_evidence`, sparing them "
        "trafilatura; for e-commerce corpora only (measured in bench/results/corpus_chain_real.md).",
    )
    on_undecodable: Literal["error", "replace"] = Field(
        "error",
        description="A payload that fails to decode in its declared charset: count it as error `undecodable`, "
        "or decode it with replacement characters.",
    )
    langid_model: str | None = Field(
        None, description="Path to a fastText language-id model (lid.176.bin); None uses py3langid's bundled model."
    )
    text_column: str = Field("text", description="Text column of JSONL / Parquet inputs (already-extracted text).")
    url_column: str = Field("url", description="URL column of JSONL / Parquet inputs (optional there).")
    domain_column: str = Field("domain", description="Domain-label column of JSONL / Parquet inputs (optional).")
    partitions: int | None = Field(
        None, ge=1, description="Spark partitions for HTML / WARC work (None: Spark's default parallelism)."
    )


class GopherQualityConfig(BaseModel):
    """datatrove's GopherQualityFilter (Rae et al. 2021, MassiveText); None turns a threshold off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the Gopher quality filter.")
    min_doc_words: int | None = Field(50, description="Fewer words than this: gopher_short_doc.")
    max_doc_words: int | None = Field(100000, description="More words than this: gopher_long_doc.")
    min_avg_word_length: int | None = Field(3, description="Mean word length below: gopher_below_avg_threshold.")
    max_avg_word_length: int | None = Field(10, description="Mean word length above: gopher_above_avg_threshold.")
    max_symbol_word_ratio: float | None = Field(0.1, description="'#' and '...' per word above: too_many_hashes.")
    max_bullet_lines_ratio: float | None = Field(0.9, description="Share of lines starting with a bullet.")
    max_ellipsis_lines_ratio: float | None = Field(0.3, description="Share of lines ending with an ellipsis.")
    max_non_alpha_words_ratio: float | None = Field(0.8, description="Minimum share of words with a letter.")
    min_stop_words: int | None = Field(2, description="Minimum count of English stop words.")


class GopherRepetitionConfig(BaseModel):
    """datatrove's GopherRepetitionFilter with its defaults (Rae et al. 2021, table A1)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the Gopher repetition filter.")
    dup_line_frac: float | None = Field(0.3, description="Share of duplicated lines above which to drop.")
    dup_para_frac: float | None = Field(0.3, description="Share of duplicated paragraphs above which to drop.")
    dup_line_char_frac: float | None = Field(0.2, description="Share of characters in duplicated lines.")
    dup_para_char_frac: float | None = Field(0.2, description="Share of characters in duplicated paragraphs.")


class C4QualityConfig(BaseModel):
    """datatrove's C4QualityFilter; defaults as FineWeb used it (terminal punctuation filter off)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the C4 quality filter.")
    filter_no_terminal_punct: bool = Field(
        False, description="Drop lines without terminal punctuation (C4 default True; off for product specs)."
    )
    min_num_sentences: int = Field(-1, description="Minimum sentences per document (-1 off; C4 used 5).")
    min_words_per_line: int = Field(-1, description="Drop lines with fewer words (-1 off; C4 used 3).")
    max_word_length: int = Field(1000, description="Drop lines with a longer word (-1 off).")
    filter_lorem_ipsum: bool = Field(True, description="Drop documents containing 'lorem ipsum'.")
    filter_javascript: bool = Field(True, description="Drop lines mentioning javascript.")
    filter_curly_bracket: bool = Field(True, description="Drop documents with a curly bracket.")
    filter_policy: bool = Field(True, description="Drop cookie / terms-of-use boilerplate lines.")
    keep_cleaned_text: bool = Field(True, description="Keep C4's line-cleaned text (as datatrove does).")


class FineWebQualityConfig(BaseModel):
    """datatrove's FineWebQualityFilter (Penedo et al. 2024)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the FineWeb quality filter.")
    line_punct_thr: float = Field(0.12, description="Minimum share of lines ending in punctuation.")
    line_punct_exclude_zero: bool = Field(False, description="Do not drop documents with no such line at all.")
    short_line_thr: float = Field(0.67, description="Maximum share of short lines.")
    short_line_length: int = Field(30, description="A line this short or shorter is short.")
    char_duplicates_ratio: float = Field(0.01, description="Maximum share of characters in duplicated lines.")
    new_line_ratio: float = Field(0.3, description="Maximum newlines per word (list-like pages).")


class CommerceRulesConfig(BaseModel):
    """How the quality rules read a commerce page (`corpus.filter.quality.CommerceRules`; the defaults were chosen
    by cross-validation over wcxb-dev and zyte-products domains, bench/results/quality_rules.md). A page is read
    with them when the classifier accepts it or its raw HTML shows product markup, a grid or a cart button.
    None turns a check off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Off: commerce pages get datatrove's rules unchanged, like any page.")
    min_valid_word_ratio: float | None = Field(
        0.8, description="Least share of words holding a letter or reading as a number, price or unit.")
    min_stop_words: int | None = Field(1, description="Least count of distinct English stop words in the text.")
    stop_words: Literal["gopher", "function_words"] = Field(
        "function_words", description="Which stop words count: Gopher's eight, or those plus short function words "
        "(for, in, on, about, ...) that shop English keeps.")
    structured_line_words: int = Field(
        8, ge=1, description="A line this short that holds a digit or currency sign is a spec/price line.")
    max_structured_dup_frac: float | None = Field(
        None, description="Most share of structured lines repeating an earlier one.")
    repetition_scale: float = Field(
        5.0, gt=0, description="Gopher's n-gram repetition thresholds times this (capped at 1) on the prose.")
    line_dup_scale: float = Field(
        2.0, gt=0, description="Gopher's duplicated line and paragraph limits times this (capped at 1).")
    fineweb: bool = Field(False, description="Run FineWeb's line rules on the prose (they drop grids).")
    min_doc_words: int | None = Field(20, description="Gopher's shortest document, on commerce pages.")
    drop_code_lines: bool = Field(
        True, description="Remove lines holding { or } instead of C4's dropping the whole page.")
    max_ellipsis_lines_ratio: float | None = Field(
        0.5, description="Most share of prose lines ending in an ellipsis (Gopher: 0.3).")


class FilterConfig(BaseModel):
    """Settings of the classify + filter stage. Checks run in this order; the first failure is the reason."""

    model_config = ConfigDict(extra="forbid")

    languages: list[str] | None = Field(
        default_factory=lambda: ["en"], description="Languages kept (ISO 639-1); None keeps every language."
    )
    min_lang_score: float | None = Field(None, description="Minimum language-id confidence; None: no minimum.")
    ecommerce_filter: bool = Field(
        True, description="Drop pages below the e-commerce threshold (off: general web text for phase 1)."
    )
    ecommerce_threshold: float = Field(0.5, ge=0, le=1, description="Minimum ecom_score to keep a page.")
    classifier: str | None = Field(
        None, description="fastText e-commerce model (.bin); None: the filter job's --classifier argument."
    )
    category_labels: str | None = Field(
        None,
        description="JSONL or CSV of (url or doc_id, category) labels, e.g. from an LLM; rules fill the rest.",
    )
    min_chars: int | None = Field(1, description="Fewer characters of text than this: empty_text.")
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4_quality: C4QualityConfig = Field(default_factory=C4QualityConfig)
    fineweb_quality: FineWebQualityConfig = Field(default_factory=FineWebQualityConfig)
    commerce: CommerceRulesConfig = Field(default_factory=CommerceRulesConfig)


HashFunction = Literal["words32", "words64", "xxh32", "sha1_32", "xxh64", "sha1_64"]
Scheme = Literal["affine32", "affine64", "legacy"]


class DedupConfig(BaseModel):
    """Settings of the dedup stage. Defaults follow FineWeb: word 5-grams, 14 bands x 8 rows (112 hashes)."""

    model_config = ConfigDict(extra="forbid")

    ngram: int = Field(5, ge=1, description="Words per shingle (word n-grams over the normalised text).")
    bands: int = Field(14, ge=1, description="LSH bands; two documents are candidates when one band matches.")
    rows: int = Field(8, ge=1, description="MinHash values per band; num_perm = bands * rows.")
    seed: int = Field(1, description="Seed of the permutations, generated exactly as datasketch.MinHash(seed=...).")
    hash_function: HashFunction = Field(
        "words32",
        description="Shingle hash: words32/words64 (xxh3 per word, folded per n-gram, vectorised: fastest), "
        "xxh32/xxh64 (xxhash of the shingle bytes), sha1_32/sha1_64 (datasketch's sha1_hash32/sha1_hash64).",
    )
    scheme: Scheme = Field(
        "affine32", description="datasketch permutation scheme: affine32 (its default), affine64 or legacy."
    )
    threshold: float = Field(
        0.75, gt=0.0, le=1.0, description="Jaccard at which duplicate pairs are scored (precision/recall reports)."
    )
    quality_columns: list[str] = Field(
        default_factory=lambda: ["quality_score", "ecom_score"],
        description="Numeric columns ranking a component's documents (first present wins; higher is better).",
    )
    text_column: str = Field("text", description="Column holding the document text.")
    max_iterations: int = Field(50, ge=1, description="Cap on large-star/small-star rounds (error if not converged).")
    partitions: int | None = Field(
        None, ge=1, description="Repartition the input to this many partitions before signatures (None: keep)."
    )

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    @property
    def theoretical_threshold(self) -> float:
        """The usual LSH threshold (1/b)^(1/r) (0.719 for 14x8), where the S-curve 1 - (1 - s^r)^b is steepest
        (it catches a pair there with probability ~1 - 1/e = 0.65)."""
        return (1.0 / self.bands) ** (1.0 / self.rows)

    @property
    def s_curve_midpoint(self) -> float:
        """Jaccard caught with probability exactly 1/2: (1 - 2^(-1/b))^(1/r) (0.685 for 14x8)."""
        return (1.0 - 0.5 ** (1.0 / self.bands)) ** (1.0 / self.rows)

    @model_validator(mode="after")
    def _hash_fits_scheme(self) -> DedupConfig:
        if self.hash_function.endswith("64") and self.scheme != "affine64":
            raise ValueError(f"hash_function {self.hash_function!r} gives 64-bit values: use scheme 'affine64'")
        return self


class CorpusConfig(BaseModel):
    """Settings for `rexbert corpus build` and its stages."""

    model_config = ConfigDict(extra="forbid")

    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)


# --- tokenize ------------------------------------------------------------------------------------------------------


class TokenSetConfig(BaseModel):
    """One packed token set (a folder under `<run.output>/tokens/`): its length and source mixture."""

    model_config = ConfigDict(extra="forbid")

    seq_len: int = Field(..., ge=8, description="Packed sequence length in tokens.")
    mixture: dict[str, float] = Field(..., description="Source name (a key of tokenize.corpora) -> weight.")
    token_budget: int | None = Field(
        None, ge=1, description="Train tokens of this set (sources repeat when they hold fewer than their share); "
        "None: tokenize.token_budget.")


class TokenizeConfig(BaseModel):
    """Settings for `rexbert tokenize` (tokenizer training and packing on Ray Data)."""

    model_config = ConfigDict(extra="forbid")

    corpora: dict[str, str] = Field(
        default_factory=lambda: {"general": "general/corpus", "ecom": "ecom/corpus"},
        description="Source name -> corpus folder (relative to run.output unless absolute or a URI).",
    )
    tokenizer: str = Field("tokenizer", description="Tokenizer folder (relative to run.output unless absolute).")
    sets: dict[str, TokenSetConfig] = Field(
        default_factory=lambda: {
            "general-1024": TokenSetConfig(seq_len=1024, mixture={"general": 1.0}),
            "context-8192": TokenSetConfig(seq_len=8192, mixture={"general": 1.0}),
            "decay-8192": TokenSetConfig(seq_len=8192, mixture={"ecom": 0.8, "general": 0.2}),
        },
        description="Token sets `rexbert tokenize` builds under <run.output>/tokens/ (the phases' `data`).",
    )

    vocab_size: int = Field(50368, ge=64, description="Tokenizer vocabulary, padded to a multiple of 64.")
    min_frequency: int = Field(2, ge=1, description="BPE merges need a pair seen at least this often.")
    seq_len: int = Field(128, ge=8, description="Packed sequence length in tokens.")
    validation_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Share of documents (by doc_id hash) held out for validation."
    )
    batch_size: int = Field(256, ge=1, description="Documents per Ray Data tokenization batch.")
    rows_per_shard: int = Field(4096, ge=1, description="Packed sequences per Parquet part file.")
    num_sequences: int | None = Field(
        None, ge=1, description="Train sequences in a mixture (None: as many as fit without repetition)."
    )
    token_budget: int | None = Field(
        None, ge=1, description="Train tokens in a mixture (sets num_sequences = ceil(budget / seq_len)).",
    )


# --- pretrain: sections, phases ------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    preset: Literal["tiny", "micro", "mini", "base", "large"] = Field(
        "tiny", description="Model preset (Ettin shapes): tiny (tests), micro 17M, mini 68M, base 150M, large 400M."
    )
    attention: Literal["auto", "sdpa", "flex"] = Field(
        "auto", description="Attention backend over packed sequences: auto = flex on CUDA, sdpa on CPU."
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="ModelArgs fields replacing the preset's (e.g. {n_layers: 2})."
    )


class DataSection(_Section):
    root: str | None = Field(
        None, description="Folder holding the phases' shard folders (None: <run.output>/tokens)."
    )
    micro_batch_size: int = Field(8, ge=1, description="Sequences per rank per forward pass.")
    loader: Literal["ray-data", "shards"] = Field(
        "ray-data", description="How Ray Train workers read the packed shards: a Ray Data stream per worker "
        "(`ray_jobs.loader`), or each worker reading the shard files itself (`training.data.PackedShardLoader`). "
        "Both give the same batches; with tiny steps on few cores, Ray Data's per-batch cost can show.")
    shuffle: bool = Field(True, description="Visit the sequences in a new seeded order every epoch.")
    shuffle_tokens: int = Field(
        2**22, ge=1, description="Tokens read and shuffled together (a window of row groups): the loaders' memory.")


class MlmSection(_Section):
    mask_rate: float = Field(0.30, gt=0, lt=1, description="Share of maskable tokens chosen (ModernBERT: 30%).")
    mask_token_share: float = Field(0.8, ge=0, le=1, description="Chosen tokens replaced by [MASK].")
    random_token_share: float = Field(0.1, ge=0, le=1, description="Chosen tokens replaced by a random token.")


class OptimSection(_Section):
    name: Literal["stableadamw", "adamw"] = Field("stableadamw", description="StableAdamW (torch-optimi) or AdamW.")
    lr: float = Field(8e-4, gt=0, description="Peak learning rate (ModernBERT base: 8e-4).")
    betas: tuple[float, float] = Field((0.9, 0.98), description="Adam betas.")
    eps: float = Field(1e-6, gt=0, description="Adam epsilon.")
    weight_decay: float = Field(1e-5, ge=0, description="Decoupled weight decay (not on norms, biases, embeddings).")
    decouple_lr: bool = Field(True, description="StableAdamW: weight decay independent of the LR (ModernBERT).")
    grad_clip: float | None = Field(1.0, gt=0, description="Max global gradient norm (None: no clipping).")


class ScheduleSection(_Section):
    warmup_tokens: int = Field(3_000_000_000, ge=0, description="Linear LR warmup length in tokens.")
    decay_fraction: float = Field(0.0, ge=0, le=1, description="Share of the phase budget spent decaying at the end.")
    decay_shape: Literal["1-sqrt", "linear", "cosine"] = Field("1-sqrt", description="Shape of the final decay.")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="LR at the end of decay, as a share of the peak.")
    batch_warmup_tokens: int = Field(0, ge=0, description="Tokens over which the batch size grows (0: off).")
    start_batch_size: int | None = Field(
        None, ge=1, description="Global batch (sequences) at the start of batch-size warmup (None: off)."
    )


class ParallelismSection(_Section):
    fsdp: Literal["auto", "on", "off"] = Field("auto", description="FSDP2 fully_shard: auto = on when world > 1.")
    compile: bool = Field(False, description="torch.compile each block (CUDA only; ignored on CPU).")
    activation_checkpointing: Literal["none", "full"] = Field("none", description="Recompute blocks in backward.")
    mixed_precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto = bf16 on CUDA, fp32 on CPU.")


class CheckpointSection(_Section):
    interval: int = Field(500, ge=1, description="Save every N optimizer steps (and always at the end).")
    keep_latest_k: int = Field(3, ge=1, description="Checkpoints kept per phase; older ones are deleted.")
    max_failures: int = Field(3, ge=0, description="Ray Train restarts from the last checkpoint after a failure.")


class MetricsSection(_Section):
    log_interval: int = Field(10, ge=1, description="Log metrics every N steps.")
    tensorboard: bool = Field(True, description="Write TensorBoard event files under <phase dir>/tb.")
    progress: bool = Field(True, description="Show a tqdm progress bar on rank 0.")


class FaultInjectionSection(_Section):
    """For the fault-tolerance test: one worker dies once, Ray Train must restart it."""

    step: int | None = Field(None, ge=1, description="Kill a worker after this step (None: never).")
    rank: int = Field(1, ge=0, description="Rank that dies.")
    marker: str | None = Field(None, description="File created before dying, so the restart runs through.")


class PhaseConfig(_Section):
    """One training phase, as read from `training/phases/<name>.yaml`."""

    name: str = Field(..., description="Phase name; also the output folder under the run directory.")
    description: str = Field("", description="What the phase is for (free text).")
    source: str | None = Field(None, description="The phase file this phase was read from (None: inline).")
    init_from: str | None = Field(None, description="Phase whose final checkpoint seeds the weights (None: init).")
    init_from_hf: str | None = Field(
        None, description="transformers ModernBERT checkpoint (local folder, URI, or hub name where the network "
        "allows) whose config defines the model (instead of pretrain.model.preset) and whose weights seed it; the "
        "shards must be tokenized with its tokenizer (tokenize.tokenizer). Not together with init_from.")
    seq_len: int = Field(..., ge=8, description="Packed sequence length (must match the shards).")
    rope_theta_global: float = Field(10_000.0, gt=0, description="RoPE base of global-attention layers.")
    rope_theta_local: float = Field(10_000.0, gt=0, description="RoPE base of sliding-window layers.")
    data: str = Field(..., description="Packed shard folder (DIR/train, DIR/validation, DIR/manifest.json), "
                      "relative to pretrain.data.root unless absolute.")
    mixture: dict[str, float] | None = Field(
        None, description="Source weights the shards must hold (the tokenize step mixes them; checked against "
        "the shard manifest; None: not checked).")
    tokens: int = Field(..., ge=1, description="Token budget of the phase (sequence slots, pad included).")
    max_steps: int | None = Field(None, ge=1, description="Stop earlier than the budget (None: budget only).")
    global_batch_size: int = Field(..., ge=1, description="Sequences per optimizer step after batch warmup.")
    mask_rate: float | None = Field(None, gt=0, lt=1, description="Masking rate (None: pretrain.mlm.mask_rate).")
    lr: float | None = Field(None, gt=0, description="Peak LR (None: pretrain.optim.lr).")
    schedule: ScheduleSection = Field(default_factory=ScheduleSection, description="LR and batch-size schedule.")


def read_phase_entries(phases: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Phases given by file name (or as models) become inline mappings, each with its `overrides[name]` merged in."""
    read = {}
    for name, phase in phases.items():
        if isinstance(phase, str):
            phase = {**read_phase(phase), "source": phase}
        elif isinstance(phase, BaseModel):
            phase = phase.model_dump(mode="json")
        read[name] = _deep_merge(phase, overrides.get(name, {})) if isinstance(phase, dict) else phase
    return read


class PretrainConfig(_Section):
    """Settings for `rexbert pretrain` (paper: three phases, ModernBERT recipe)."""

    run_dir: str | None = Field(None, description="Run folder (None: <run.output>/runs/<run.name>).")
    model: ModelSection = Field(default_factory=ModelSection, description="Model preset and backend.")
    data: DataSection = Field(default_factory=DataSection, description="Where the shards are, batch shape.")
    mlm: MlmSection = Field(default_factory=MlmSection, description="Masked-language-model corruption.")
    optim: OptimSection = Field(default_factory=OptimSection, description="Optimizer.")
    parallelism: ParallelismSection = Field(default_factory=ParallelismSection, description="FSDP2 and friends.")
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection, description="DCP checkpoints.")
    metrics: MetricsSection = Field(default_factory=MetricsSection, description="Logging.")
    fault_injection: FaultInjectionSection = Field(
        default_factory=FaultInjectionSection, description="Testing only: kill one worker once."
    )
    phases: dict[str, PhaseConfig] = Field(
        default_factory=lambda: {"general": "general.yaml", "context": "context.yaml", "decay": "decay.yaml"},
        description="Phase name -> phase (a YAML file name, looked up in training/phases/ unless a path or URI, "
        "or the phase's fields inline), in run order. Files are read into the config when it loads.",
        validate_default=True,
    )
    phase_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-phase field overrides, e.g. {general: {max_steps: 10}}."
    )
    workers: int = Field(2, ge=1, description="Ray Train workers (FSDP2 ranks).")
    use_gpu: bool = Field(False, description="One GPU per Ray Train worker (backend nccl; else gloo).")
    cpus_per_worker: float = Field(
        0.5, gt=0, description="CPUs reserved per Ray Train worker (fractions leave room for Ray Data)."
    )
    stop_after_steps: int | None = Field(
        None, ge=1, description="End this run after this step of the phase's plan (a checkpoint is written there); "
        "`--resume` continues the same plan, so the phase's schedule does not change (unlike a smaller max_steps).",
    )
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="How Ray places the workers: PACK fills a node first; SPREAD puts them on different "
        "nodes where it can (and, after a node is lost, restarts them on the nodes left).",
    )

    @model_validator(mode="before")
    @classmethod
    def _read_phases(cls, data: Any) -> Any:
        """Phase files become inline phases, with `phase_overrides` applied (idempotent on a resolved config)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        phases = data.get("phases", {"general": "general.yaml", "context": "context.yaml", "decay": "decay.yaml"})
        overrides = data.get("phase_overrides") or {}
        if isinstance(phases, dict):
            unknown = sorted(set(overrides) - set(phases))
            if unknown:
                raise ValueError(f"phase_overrides names unknown phases {unknown}; phases are {list(phases)}")
            data["phases"] = read_phase_entries(phases, overrides)
        return data

    @model_validator(mode="after")
    def _check_phases(self) -> PretrainConfig:
        for name, phase in self.phases.items():
            if phase.name != name:
                raise ValueError(f"phase {name!r} is named {phase.name!r} in its file")
            if phase.init_from is not None and phase.init_from not in self.phases:
                raise ValueError(f"phase {name!r} starts from unknown phase {phase.init_from!r}")
        return self


# --- evaluate ------------------------------------------------------------------------------------------------------


ALL_TASKS = ["product-matching", "page-type", "attribute-tagging", "similarity", "fill-mask"]


class SearchSpace(BaseModel):
    """A grid of fine-tuning hyperparameters; every point runs once per seed."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: list[float] = Field(default_factory=lambda: [5e-5, 1e-4], description="Peak learning rates.")
    epochs: list[int] = Field(default_factory=lambda: [3], description="Epoch counts (ASHA's max_t is the max).")
    batch_size: list[int] = Field(default_factory=lambda: [16], description="Examples per optimizer step.")


class DataLimits(BaseModel):
    """Caps for quick runs (tests, the demo); None keeps everything."""

    model_config = ConfigDict(extra="forbid")

    train: int | None = Field(None, ge=1, description="Max training examples (pairs, pages, windows).")
    eval: int | None = Field(None, ge=1, description="Max validation and max test examples, each.")
    pages_per_class: int | None = Field(
        None, ge=1, description="page-type: max pages per class in each split (limits extraction work)."
    )
    pages: int | None = Field(None, ge=1, description="attribute-tagging: max product pages read.")
    texts: int | None = Field(None, ge=1, description="fill-mask: max texts read.")


class EvaluateConfig(BaseModel):
    """Settings for `rexbert evaluate` (paper section on downstream evaluation; Ray Tune sweeps)."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(default_factory=lambda: list(ALL_TASKS), description="Tasks run when none is given.")
    seeds: list[int] = Field(default_factory=lambda: [0, 1], description="Seeds per configuration (a grid axis).")
    search_space: SearchSpace = Field(default_factory=SearchSpace, description="Default grid for every task.")
    task_search_space: dict[str, SearchSpace] = Field(
        default_factory=dict, description="Per-task grids replacing the default (keys are task names)."
    )
    asha: bool = Field(False, description="Early-stop weak trials with ASHA (rungs are epochs).")
    asha_grace_period: int = Field(1, ge=1, description="ASHA: epochs every trial runs before it may stop.")
    asha_reduction_factor: int = Field(2, ge=2, description="ASHA: keep 1/factor of trials per rung.")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs reserved per Tune trial (torch threads follow).")
    gpus_per_trial: float = Field(0.0, ge=0, description="GPUs per trial (fractions share a GPU).")
    max_concurrent_trials: int | None = Field(None, ge=1, description="Cap on parallel trials (None: resources).")
    max_seq_length: int = Field(128, ge=16, description="Tokens per example (pairs, pages, windows, texts).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay in fine-tuning.")
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="Classification fine-tuning loss: balanced weighs each class by n / (k * n_class) of "
        "the train split, so a rare class (matching pairs) is not drowned by the frequent one.")
    matching_model: Literal["cross-encoder", "bi-encoder"] = Field(
        "cross-encoder", description="product-matching: classify the two offers as one sequence (cross-encoder), "
        "or embed each and match on cosine >= the cut with the best validation F1 (bi-encoder, CoSENT-tuned).")
    matching_threshold: Literal["argmax", "valid-f1"] = Field(
        "valid-f1", description="product-matching, cross-encoder: call a pair a match when p(match) >= the cut "
        "with the best validation F1 (chosen after each epoch, applied unchanged to test), or when it is the likelier "
        "class (argmax). F1 of the positive class rewards the cut, not the 0.5 of a class-balanced loss.")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Linear warmup share of fine-tuning steps.")
    mask_probability: float = Field(0.15, gt=0, lt=1, description="fill-mask: share of tokens masked.")
    attributes: list[str] = Field(
        default_factory=lambda: ["price", "sku", "brand", "mpn", "gtin"],
        description="attribute-tagging: ground-truth fields tagged (currency symbols and availability "
        "enumerations are left out: a bare '$' or 'InStock' has no meaningful span).",
    )
    similarity_finetune: bool = Field(True, description="similarity: CoSENT fine-tune after the zero-shot score.")
    storage_path: str | None = Field(
        None, description="Tune storage for trial results (shared FS or s3:// on multi-node clusters; None: "
        "OUTPUT/tune). Model folders must likewise be readable from every node.",
    )
    limits: DataLimits = Field(default_factory=DataLimits, description="Data caps for quick runs.")
    models: list[str] = Field(
        default_factory=lambda: ["runs/{run}/context/export", "runs/{run}/decay/export"],
        description="Model folders compared when none is given (relative to run.output; {run} = run.name).",
    )
    output: str = Field("eval", description="Results folder (relative to run.output unless absolute or a URI).")

    def space_for(self, task: str) -> SearchSpace:
        """The grid a task sweeps: its own entry, else the default."""
        return self.task_search_space.get(task, self.search_space)


# --- demo and the whole run ----------------------------------------------------------------------------------------


class DemoConfig(BaseModel):
    """What `rexbert demo` runs: the whole pipeline at tiny scale on generated crawl data."""

    model_config = ConfigDict(extra="forbid")

    docs: int = Field(400, ge=20, description="Synthetic crawl pages to generate for the demo.")
    stages: list[str] = Field(
        default_factory=lambda: ["sample-data", "corpus", "tokenize", "pretrain", "evaluate", "report"],
        description="Stages to run, in pipeline order (a subset skips the others).",
    )
    docs_per_file: int = Field(200, ge=1, description="Pages per generated WARC file.")
    corpora: dict[str, bool] = Field(
        default_factory=lambda: {"ecom": True, "general": False},
        description="Corpora the demo builds from the crawl: name -> e-commerce filter on (general: phase-1 text).",
    )
    classifier_docs: int = Field(
        300, ge=20, description="Pages of a second generated crawl (seed + 1) the demo's classifier trains on."
    )


# --- studies -------------------------------------------------------------------------------------------------------


STUDY_ARMS = {"ecom-anneal": "study-ecom-anneal.yaml", "general-anneal": "study-general-anneal.yaml",
              "general-continued": "study-general-continued.yaml"}


class DomainAnnealConfig(BaseModel):
    """`rexbert study domain-anneal`: the paper's ablation. One base phase is trained once; from its final
    checkpoint every arm (a phase of its own mixture, all with one token budget) trains once per seed; each model is
    scored on held-out e-commerce and general MLM and on the downstream tasks. The defaults are the demo's small
    CPU setting (about 30 minutes on 2 cores); a GPU run names its own arms, sets and model."""

    model_config = ConfigDict(extra="forbid")

    output: str = Field("study/domain-anneal", description="Study folder (relative to run.output unless absolute).")
    base: str = Field("general", description="The pretrain.phases entry trained once (seed run.seed); every arm "
                      "starts from its final checkpoint.")
    arms: dict[str, PhaseConfig] = Field(
        default_factory=lambda: {name: read_phase(file) for name, file in STUDY_ARMS.items()},
        description="Arm name -> phase (a file in training/phases/, a path, or inline). Every arm has the same "
        "`tokens`; its `init_from` is ignored (the base).")
    baseline: str = Field("general-continued", description="The compute-matched arm every other arm is tested "
                          "against (paired over seeds); the first arm is also tested against the second.")
    token_sets: dict[str, TokenSetConfig] = Field(
        default_factory=lambda: {
            "study-ecom-128": TokenSetConfig(seq_len=128, token_budget=800_000,
                                             mixture={"shared-ecom": 0.6, "ecom": 0.1, "shared-general": 0.3}),
            "study-general-128": TokenSetConfig(seq_len=128, token_budget=800_000,
                                                mixture={"shared-general": 0.9, "general": 0.1}),
            "study-mixed-128": TokenSetConfig(seq_len=128, token_budget=800_000, mixture={
                "shared-general": 0.6, "shared-ecom": 0.3, "general": 0.05, "ecom": 0.05}),
        },
        description="The arms' token sets, packed under <run.output>/tokens/ from tokenize.corpora with the run's "
        "tokenizer (seed run.seed + 1, another draw than the base set's) unless already there.")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=2,
                             description="Seeds of every arm (data order, masking, fine-tuning).")
    init_from_hf: str | None = Field(
        None, description="A transformers ModernBERT checkpoint (folder or hub name): adds the arm `hf-<hf_arm>`, "
        "that arm's phase started from the checkpoint, and the checkpoint itself as a model.")
    hf_arm: str = Field("ecom-anneal", description="The arm whose phase anneals the init_from_hf checkpoint.")
    tasks: list[str] | None = Field(
        None, description="Downstream tasks (None: evaluate.tasks without fill-mask, which the study's own MLM "
        "scoring replaces; []: MLM only).")

    arm_overrides: dict[str, Any] = Field(
        default_factory=dict, description="Field overrides applied to every arm, e.g. {tokens: 20000}.")

    @model_validator(mode="before")
    @classmethod
    def _read_arms(cls, data: Any) -> Any:
        """Arm files become inline phases, with `arm_overrides` applied to each (idempotent)."""
        if isinstance(data, dict) and isinstance(data.get("arms", STUDY_ARMS), dict):
            arms = data.get("arms", STUDY_ARMS)
            overrides = data.get("arm_overrides") or {}
            data = {**data, "arms": read_phase_entries(arms, {name: overrides for name in arms})}
        return data

    @model_validator(mode="after")
    def _check_arms(self) -> DomainAnnealConfig:
        if len(self.arms) < 2:
            raise ValueError(f"study.domain_anneal.arms needs at least 2 arms, got {list(self.arms)}")
        budgets = {name: arm.tokens for name, arm in self.arms.items()}
        if len(set(budgets.values())) != 1:
            raise ValueError(f"study.domain_anneal.arms must have equal token budgets, got {budgets}")
        for name, arm in self.arms.items():
            if arm.name != name:
                raise ValueError(f"study arm {name!r} is named {arm.name!r} in its file")
        if self.baseline not in self.arms:
            raise ValueError(f"study.domain_anneal.baseline {self.baseline!r} is not an arm ({list(self.arms)})")
        if self.init_from_hf is not None and self.hf_arm not in self.arms:
            raise ValueError(f"study.domain_anneal.hf_arm {self.hf_arm!r} is not an arm ({list(self.arms)})")
        return self


class StudyConfig(BaseModel):
    """Studies over the pipeline's models (`rexbert study ...`)."""

    model_config = ConfigDict(extra="forbid")

    domain_anneal: DomainAnnealConfig = Field(default_factory=DomainAnnealConfig,
                                              description="The domain-anneal ablation.")


class RexbertConfig(BaseModel):
    """A whole run: every stage's section. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    run: RunConfig = Field(default_factory=RunConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    study: StudyConfig = Field(default_factory=StudyConfig)


# --- loading and writing -------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """A config file or override that does not validate; the message names the field."""


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Turn `--section.key=value` / `--section.key value` arguments into a nested dict.

    Values are parsed as YAML scalars (so `3`, `true`, `[0, 1]` get their types). Anything that is
    not a dotted long option is an unknown option and raises ConfigError.
    """
    nested: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            # The name only: the value after `=` may be a credential, and this line is printed.
            raise ConfigError(f"unknown option or argument {arg.split('=', 1)[0]!r} "
                              "(config overrides look like --section.key=value)")
        if "=" in arg:
            key, raw = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"override {arg!r} has no value")
            key, raw = arg[2:], args[i + 1]
            i += 2
        value = yaml.safe_load(raw) if raw != "" else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with another override")
        node[parts[-1]] = value
    return nested


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"])
        lines.append(f"  {field}: {e['msg']}")
    return "\n".join(lines)


def load_yaml(uri: str | Path, what: str = "config file") -> dict[str, Any]:
    """A YAML mapping from a local path or URI; ConfigError naming the file otherwise."""
    try:
        text = fs.read_text(uri)
    except (FileNotFoundError, fs.FileSystemError):
        raise ConfigError(f"{what} not found: {uri}") from None
    except OSError as exc:
        raise ConfigError(f"{what} {uri} cannot be read: {exc}") from None
    return parse_yaml(text, what, uri)


def parse_yaml(text: str, what: str, uri: str | Path) -> dict[str, Any]:
    """A YAML mapping from text read from `uri`; ConfigError naming the file otherwise."""
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {uri} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {uri} must hold a mapping, got {type(loaded).__name__}")
    return loaded


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> RexbertConfig:
    """Embedded defaults, then the YAML file (local path or URI, if any), then overrides; validated once."""
    data: dict[str, Any] = {}
    source = "embedded defaults"
    if path is not None:
        data = load_yaml(path)
        source = str(path)
    if overrides:
        extra = parse_overrides(overrides) if isinstance(overrides, list) else overrides
        data = _deep_merge(data, extra)
        source += " + command-line overrides"
    try:
        return RexbertConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def config_from_dict(data: dict[str, Any]) -> RexbertConfig:
    """A run config shipped as a dict (to Spark executors, Ray workers), validated as `load_config` does."""
    return load_config(overrides=data)


# --- secrets -------------------------------------------------------------------------------------------------------

REDACTED = "<redacted>"
ENV_PREFIX = "env:"
# A name is a secret's when one of these words stands anywhere in it (`spark.ssl.keyStorePassword`) ...
_SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "credential", "credentials"})
# ... or one of these ends it (`hf_token`, `fs.s3a.session.token`, `fs.s3a.access.key`, `apiKey`): not every name
# with `token` or `key` in it is, so `mask_token_share`, `tokenizer`, `key_column` are not ...
_SECRET_LAST_WORDS = frozenset({"token", "key", "apikey", "accesskey", "secretkey", "authtoken"})
# ... or `<kind> key` stands anywhere in it (`fs.azure.account.key.<account>.blob.core.windows.net`).
_SECRET_KEY_KINDS = frozenset({"access", "api", "secret", "private", "account", "auth", "encryption", "signing"})
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# `NAME=VALUE` inside a string: a command line's `--x.password=...`, spark-submit's `--conf k=v`, `KEY=v` in an env.
_ASSIGNMENT = re.compile(r"(?<![^\s\"'])(-{0,2}[A-Za-z_][\w.\-]*)=([^\s\"']+)")


def is_secret_name(name: str) -> bool:
    """Whether a config key (a field name or a dotted `spark.conf` key) names a credential."""
    words = [word.lower() for word in _NAME_WORDS.findall(name)]
    if not words:
        return False
    if _SECRET_WORDS.intersection(words) or words[-1] in _SECRET_LAST_WORDS:
        return True
    return any(first in _SECRET_KEY_KINDS and second == "key" for first, second in pairwise(words))


def redact(data: Any, name: str = "") -> Any:
    """A copy of a config (a pydantic model, or its dict) fit to write or print: the value of every secret name
    becomes `<redacted>`, under a key (`secret.key: ...`) or inside a string (`--conf fs.s3a.secret.key=...`).

    An `env:NAME` reference stays as it is: it names a variable, it holds no secret, and a config written with it
    still runs (`resolve_env` reads the variable where the value is used). Empty values stay empty, so a reader
    sees that nothing was set."""
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    if isinstance(data, dict):
        return {key: redact(value, str(key)) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [redact(value, name) for value in data]
    if name and is_secret_name(name) and data not in (None, "") and not is_env_reference(data):
        return REDACTED
    if isinstance(data, str) and "=" in data:
        return _ASSIGNMENT.sub(_redact_assignment, data)
    return data


def _redact_assignment(match: re.Match) -> str:
    name, value = match.group(1), match.group(2)
    if is_secret_name(name.lstrip("-")) and not is_env_reference(value):
        return f"{name}={REDACTED}"
    return match.group(0)


def is_env_reference(value: Any) -> bool:
    """Whether a config value is `env:NAME`: read from the environment where it is used, never written."""
    return isinstance(value, str) and value.startswith(ENV_PREFIX)


def resolve_env(value: str, where: str) -> str:
    """The value itself, or for `env:NAME` the variable NAME of this process; ConfigError naming `where` when the
    variable is unset. Call it only where the value is used (a Spark session's conf), so the secret stays in memory."""
    if not is_env_reference(value):
        return value
    variable = value[len(ENV_PREFIX):].strip()
    if not variable:
        raise ConfigError(f"{where}: {value!r} names no environment variable (write env:NAME)")
    if variable not in os.environ:
        raise ConfigError(f"{where}: environment variable {variable} is not set")
    return os.environ[variable]


def write_resolved_config(config: BaseModel, out_dir: str | Path) -> str:
    """The one writer of `config.resolved.yaml`: the fully resolved config next to a stage's output, secrets
    redacted (a credential passed in the config must not land in an output folder; see `redact`)."""
    text = yaml.safe_dump(redact(config), sort_keys=False)
    return fs.write_text(fs.join(out_dir, RESOLVED_CONFIG_NAME), text)


def read_phase(ref: str) -> dict[str, Any]:
    """A phase YAML as a mapping: a path or URI as given when it exists, else a file shipped in `training/phases/`,
    read through the `training` package's loader so it is found in a checkout, an installed package and the Spark
    code zip (`--py-files`) alike."""
    if fs.is_remote(ref) or Path(ref).is_file():
        return load_yaml(ref, "phase config")
    try:
        data = pkgutil.get_data("training", f"phases/{ref}")
    except OSError:
        data = None
    if data is None:
        raise ConfigError(f"phase config not found: {ref} (nor {PHASES_DIR / ref})")
    return parse_yaml(data.decode(), "phase config", f"training/phases/{ref}")


def load_phase(config: PretrainConfig, name: str) -> PhaseConfig:
    """The config of phase `name` (already read and validated with the run config)."""
    if name not in config.phases:
        raise ConfigError(f"unknown phase {name!r}; this config has {list(config.phases)}")
    return config.phases[name]


def resolve_data_path(config: PretrainConfig, phase: PhaseConfig, output_root: str) -> str:
    """The shard folder (path or URI) of a phase: `phase.data` under `pretrain.data.root` unless absolute."""
    return fs.under(config.data.root or fs.join(output_root, "tokens"), phase.data)


def resolve_run_dir(config: PretrainConfig, output_root: str, run_name: str) -> str:
    """The run folder (path or URI): `pretrain.run_dir`, else `<run.output>/runs/<run.name>`."""
    return config.run_dir or fs.join(output_root, "runs", run_name)
