"""The run config: embedded defaults, YAML files, `--section.key=value` overrides, errors that name the field."""

from __future__ import annotations

import pytest
import yaml

from infra.core.config import ConfigError, load_config, parse_overrides, write_resolved_config


def test_embedded_defaults_validate_and_cover_every_section():
    config = load_config()
    assert set(config.model_dump()) >= {"run", "spark", "ray", "corpus", "tokenize", "pretrain", "evaluate", "demo"}
    assert config.spark.master.startswith("local")
    assert config.ray.address is None


def test_yaml_then_overrides_win_in_order(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"run": {"name": "from-yaml", "seed": 3}, "spark": {"shuffle_partitions": 16}}))
    config = load_config(path, ["--run.seed=7", "--spark.master", "local[1]"])
    assert config.run.name == "from-yaml"
    assert config.run.seed == 7
    assert config.spark.master == "local[1]"
    assert config.spark.shuffle_partitions == 16


def test_override_values_are_parsed_as_yaml_scalars():
    assert parse_overrides(["--evaluate.seeds=[1, 2, 3]", "--ray.num_cpus=2", "--run.name=x"]) == {
        "evaluate": {"seeds": [1, 2, 3]},
        "ray": {"num_cpus": 2},
        "run": {"name": "x"},
    }


def test_unknown_field_error_names_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"spark": {"mastr": "local[*]"}}))
    with pytest.raises(ConfigError, match=r"spark\.mastr"):
        load_config(path)


def test_wrong_type_error_names_the_field():
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions"):
        load_config(None, ["--spark.shuffle_partitions=many"])


def test_unknown_section_and_non_override_arguments_are_rejected():
    with pytest.raises(ConfigError, match="nosuchsection"):
        load_config(None, ["--nosuchsection.key=1"])
    with pytest.raises(ConfigError, match="unknown option"):
        load_config(None, ["--verbose"])


def test_missing_and_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_resolved_config_round_trips(tmp_path):
    config = load_config(None, ["--run.seed=11"])
    path = write_resolved_config(config, tmp_path / "out")
    assert load_config(path).model_dump() == config.model_dump()
