"""The GPU check's Python parts on the CPU: the trainer-path benchmark runs two steps of each path with the
tiny preset and writes its rows; the check script parses and names only modules that import."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
ROW_KEYS = {"path", "preset", "seq_len", "batch", "real_tokens_per_s", "mfu", "gpu", "date"}


def test_trainer_bench_cpu_tiny_smoke_run_writes_rows(tmp_path):
    from bench.gpu_trainer_bench import main

    if torch.cuda.is_available():
        pytest.skip("the CPU smoke run refuses a visible GPU (the trainer would pick it)")
    out = tmp_path / "gpu_trainer"
    rows = main(["--device", "cpu", "--tiny", "--steps", "2", "--warmup", "1", "--out", str(out)])
    assert [r["path"] for r in rows] == ["trainer", "transformers"]
    written = json.loads(out.with_suffix(".json").read_text())
    assert written == rows
    for row in rows:
        assert ROW_KEYS <= set(row) and "error" not in row, row
        assert row["preset"] == "tiny" and row["seq_len"] == 128 and row["batch"] == 4
        assert row["real_tokens_per_s"] > 0 and row["mfu"] is None  # no known peak on a CPU
    assert "| trainer | tiny | 128 | 4 |" in out.with_suffix(".md").read_text()


def test_gpu_check_script_parses_and_its_python_imports():
    script = ROOT / "bench" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    for module in re.findall(r"import (tests\.training\.\w+)", text):
        importlib.import_module(module)
    for path in re.findall(r"(?:bench|tests/training)/[\w/]+\.py", text):
        assert (ROOT / path).is_file(), path
