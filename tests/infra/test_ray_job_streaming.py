"""`rexbert submit ray --wait` and `rexbert jobs logs --follow` against the real local Ray cluster (token auth on):
the job's output streams to the console while it runs, the exit code tells how it ended, Ctrl-C leaves the job
running. And the submission's py_modules and entrypoint resources, as the dry run prints them."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.cloud.ray_submit import parse_bytes

runner = CliRunner()
REXBERT = str(Path(sys.executable).with_name("rexbert"))


def _address() -> str:
    import ray

    return "http://" + ray.worker.get_dashboard_url()


def _python(code: str) -> list[str]:
    """An entrypoint running `code` unbuffered, so each print reaches the job's log when it happens."""
    return [sys.executable, "-u", "-c", code]


def _submitted_id(output: str) -> str:
    return re.search(r"^submitted (\S+)$", output, re.M).group(1)


def _cli(*args: str) -> subprocess.Popen:
    """`rexbert ...` as an operator runs it: its own process, token auth on (the token file the fixture made)."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([REXBERT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _lines(stream) -> queue.Queue:
    """The lines of a pipe as they come (a reader thread), so a test can wait for one with a deadline."""
    found: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [found.put(line) for line in stream], daemon=True).start()
    return found


def _read_until(lines: queue.Queue, text: str, timeout_s: float = 60) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            break
        if text in seen[-1]:
            return seen
    raise AssertionError(f"{text!r} not printed within {timeout_s}s; got {seen}")


def test_dry_run_shows_py_modules_and_entrypoint_resources(tmp_path):
    package = tmp_path / "shop_utils"
    package.mkdir()
    (package / "__init__.py").write_text("")
    wheel = tmp_path / "shop_extra-0.1-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    result = runner.invoke(app, [
        "submit", "ray", "--dry-run", "--working-dir", "", "--py-module", str(package), "--py-module", str(wheel),
        "--py-module", "s3://bucket/libs/feature.zip", "--entrypoint-num-cpus", "2", "--entrypoint-memory", "4GiB",
        "--num-gpus", "1", "--env", "AWS_SECRET_ACCESS_KEY=hunter2", "--", "rexbert", "pretrain"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output  # redaction kept
    body = json.loads(result.output.split("\n", 1)[1])
    assert body["runtime_env"]["py_modules"] == [str(package), str(wheel), "s3://bucket/libs/feature.zip"]
    assert body["entrypoint_num_cpus"] == 2 and body["entrypoint_num_gpus"] == 1
    assert body["entrypoint_memory"] == 4 * 1024**3


@pytest.mark.parametrize(("args", "message"), [
    (["--entrypoint-memory", "4 parsecs"], "is not a memory size"),
    (["--py-module", "/no/such/folder"], "no such py_module"),
    (["--entrypoint-num-cpus", "-1"], "entrypoint_num_cpus must be 0 or more"),
])
def test_bad_resources_and_modules_fail_in_one_line(args, message):
    result = runner.invoke(app, ["submit", "ray", "--dry-run", "--working-dir", "", *args, "--", "echo"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_memory_sizes_read_as_bytes():
    assert parse_bytes("512MiB") == 512 * 1024**2
    assert parse_bytes("8GB") == 8 * 1000**3
    assert parse_bytes("1.5gib") == 3 * 1024**3 // 2
    assert parse_bytes("1073741824") == 1024**3


@pytest.mark.ray
def test_wait_streams_the_logs_in_order_and_exits_zero(ray_cluster):
    code = "import time\nfor i in range(4):\n    print(f'step {i} of 4')\n    time.sleep(0.5)"
    result = runner.invoke(app, ["submit", "ray", "--address", _address(), "--working-dir", "", "--wait", "--",
                                 *_python(code)])
    assert result.exit_code == 0, result.output
    job_id = _submitted_id(result.output)
    lines = result.output.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert steps == [f"step {i} of 4" for i in range(4)]
    assert lines.index(f"submitted {job_id}") < lines.index("step 0 of 4")
    assert lines[-1] == f"{job_id}: SUCCEEDED"


@pytest.mark.ray
def test_wait_on_a_failing_job_exits_non_zero_with_one_status_line(ray_cluster):
    code = "print('about to fail')\nraise SystemExit(3)"
    result = runner.invoke(app, ["submit", "ray", "--address", _address(), "--working-dir", "", "--wait", "--",
                                 *_python(code)])
    assert result.exit_code == 1, result.output
    job_id = _submitted_id(result.output)
    assert "about to fail" in result.stdout
    assert result.stderr.strip() == f"{job_id}: FAILED (Job entrypoint command failed with exit code 3)"


@pytest.mark.ray
def test_follow_prints_what_the_job_prints_after_it_started(ray_cluster, tmp_path):
    """The job prints its last line only once the test has seen `jobs logs --follow` print the first: so that
    line can only come from following, not from a copy of the log taken when the command started."""
    from infra.cloud.ray_submit import build_ray_job_request, job_client, submit_ray_job

    go = tmp_path / "go"
    code = (f"import pathlib, time\nprint('before the follow')\ngo = pathlib.Path({str(go)!r})\n"
            "for _ in range(600):\n    if go.exists(): break\n    time.sleep(0.1)\n"
            "print('after the follow started' if go.exists() else 'no go')")
    address = _address()
    job_id = submit_ray_job(build_ray_job_request(_python(code), working_dir=None), address)
    follow = _cli("jobs", "logs", job_id, "--follow", "--address", address)
    try:
        lines = _lines(follow.stdout)
        _read_until(lines, "before the follow")
        assert str(job_client(address).get_job_status(job_id).value) == "RUNNING"
        go.touch()
        rest = _read_until(lines, f"{job_id}: SUCCEEDED")
        assert follow.wait(timeout=30) == 0, follow.stderr.read()
    finally:
        follow.kill()
    assert "after the follow started\n" in rest


@pytest.mark.ray
def test_ctrl_c_while_waiting_leaves_the_job_running(ray_cluster):
    from infra.cloud.ray_submit import job_client

    address = _address()
    wait = _cli("submit", "ray", "--address", address, "--working-dir", "", "--wait", "--",
                *_python("import time\nprint('working')\ntime.sleep(300)"))
    try:
        job_id = _submitted_id("".join(_read_until(_lines(wait.stdout), "working")))
        wait.send_signal(signal.SIGINT)
        assert wait.wait(timeout=30) == 130
        err = wait.stderr.read()
    finally:
        wait.kill()
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "keeps running" in err
    assert f"rexbert jobs logs {job_id} --follow --address {address}" in err
    assert f"rexbert jobs stop {job_id} --address {address}" in err
    client = job_client(address)
    assert str(client.get_job_status(job_id).value) == "RUNNING"
    client.stop_job(job_id)
