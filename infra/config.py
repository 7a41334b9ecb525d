"""One YAML file per run, validated once.

A run config has one section per concern. The defaults of every field are the embedded local
configuration (tiny scale, one machine); a YAML file overrides some of them, and the command line
overrides single fields as `--section.key=value` (or `--section.key value`). The resolved config is
written next to every output as `config.resolved.yaml`.

    rexbert pretrain --config my-run.yaml --pretrain.model.preset=mini --ray.address=auto
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corpus.config import CorpusConfig
from ray_jobs.config import RayConfig
from spark_jobs.config import SparkConfig
from training.config import PretrainConfig
from training.eval_config import EvaluateConfig
from training.tokenize_config import TokenizeConfig

RESOLVED_CONFIG_NAME = "config.resolved.yaml"


class RunConfig(BaseModel):
    """Where a run writes and how it is seeded."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("local", description="Run name, used in output folders and job names.")
    output: str = Field("demo-output", description="Root folder (local, s3:// or gs://) for all stages.")
    seed: int = Field(0, description="Seed for everything random in the run.")


class DemoConfig(BaseModel):
    """What `rexbert demo` runs: the whole pipeline at tiny scale on generated crawl data."""

    model_config = ConfigDict(extra="forbid")

    docs: int = Field(400, ge=20, description="Synthetic crawl pages to generate for the demo.")
    stages: list[str] = Field(
        default_factory=lambda: ["sample-data", "corpus", "tokenize", "pretrain", "evaluate", "report"],
        description="Stages to run, in pipeline order (a subset skips the others).",
    )


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
            raise ConfigError(f"unknown option or argument {arg!r} (config overrides look like --section.key=value)")
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


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> RexbertConfig:
    """Embedded defaults, then the YAML file (if any), then command-line overrides; validated once."""
    data: dict[str, Any] = {}
    source = "embedded defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(loaded).__name__}")
        data = loaded
        source = str(path)
    if overrides:
        extra = parse_overrides(overrides) if isinstance(overrides, list) else overrides
        data = _deep_merge(data, extra)
        source += " + command-line overrides"
    try:
        return RexbertConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def write_resolved_config(config: BaseModel, out_dir: str | Path) -> Path:
    """Write the fully resolved config next to a stage's output, so every output says how it was made."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / RESOLVED_CONFIG_NAME
    target.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return target
