"""`rexbert evaluate` through typer's CliRunner: a bad model folder, and one real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app

runner = CliRunner()


def test_bad_model_folder_is_a_clear_error(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--task", "fill-mask",
                                 "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "'llama' is not a bidirectional encoder" in result.output
    missing = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "nope"), "--output", str(tmp_path / "o")])
    # an output inside the model folder is refused as overlapping it, before any model is loaded
    inside = runner.invoke(app, ["evaluate", "--model", str(model), "--output", str(model / "eval")])
    assert inside.exit_code == 2 and "overlaps the input" in inside.output
    assert missing.exit_code == 2 and "model folder not found" in missing.output


def test_unknown_task_is_a_clear_error(tmp_path, shared_data):
    from tests.training.tiny_models import build_tiny_encoder
    from training.tokenizer import train_tokenizer

    tok = train_tokenizer(["a cheap usb cable", "a red phone case"] * 20, tmp_path / "tok", vocab_size=320)
    model = build_tiny_encoder(tok, tmp_path / "model", hidden=32, layers=1)
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--task", "sentiment",
                                 "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "unknown task 'sentiment'" in result.output


@pytest.mark.ray
@pytest.mark.shared_data
def test_evaluate_command_writes_table_and_report(tmp_path, shared_data, ray_cluster):
    from tests.training.tiny_models import build_tiny_encoder, ecommerce_texts
    from training.tokenizer import train_tokenizer

    texts = ecommerce_texts(shared_data, 600)
    tok = train_tokenizer(texts, tmp_path / "tok", vocab_size=512)
    model = build_tiny_encoder(tok, tmp_path / "model", hidden=32, layers=1)
    out = tmp_path / "out"
    result = runner.invoke(app, [
        "evaluate", "--model", str(model), "--task", f"fill-mask:{_jsonl(tmp_path, texts[:20])}",
        "--task", "product-matching", "--output", str(out),
        "--evaluate.limits.train=16", "--evaluate.limits.eval=16", "--evaluate.max_seq_length=32",
        "--evaluate.search_space.learning_rate=[0.0005]", "--evaluate.search_space.epochs=[1]",
    ])
    assert result.exit_code == 0, result.output
    assert "| model | product-matching (f1) |" not in result.output  # fill-mask comes first
    assert "| model | fill-mask (acc@1) | product-matching (f1) |" in result.output
    for baseline in ("most-frequent-token", "majority-class", "exact-title"):  # beside the model, same columns
        assert f"| {baseline} (baseline) |" in result.output
    assert (out / "report.html").is_file() and (out / "results.md").is_file()
    resolved = (out / "config.resolved.yaml").read_text()
    assert "max_seq_length: 32" in resolved
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"]["product-matching"]["models"]["model"]["trials_total"] == 2


def _jsonl(folder: Path, texts: list[str]) -> Path:
    path = folder / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path
