"""tokenize -> pretrain -> evaluate on a real two-node Ray cluster started here, through `rexbert submit ray`.

The head and a second node (`ray start --address`), each with a custom resource of its own, token auth on, every
port on 127.0.0.1. Pretraining runs 2 workers spread over both nodes, with the run folder (checkpoints, Ray
Train's storage) on storage both nodes share, given as a `file://` URI. Mid-run the second node is killed: Ray
Train restarts the worker group on the node left, from the last checkpoint, and the phase completes.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from infra.core.manifest import check_manifest, read_manifest
from tests.conftest import _free_port, stop_process_groups

pytestmark = [pytest.mark.ray, pytest.mark.heavy, pytest.mark.shared_data]
RAY = Path(sys.executable).parent / "ray"
PYTHON = sys.executable


def _node_args(name: str) -> list[str]:
    """Ports of one node, all free and distinct (two raylets on one machine must not share any); none of the
    component ports falls in the node's worker port range, which Ray refuses at start."""
    low = 20000 + _free_port() % 20000
    workers = range(low, low + 201)

    def port() -> str:
        while (free := _free_port()) in workers:
            pass
        return str(free)

    return ["--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--resources", json.dumps({name: 1}),
            "--node-manager-port", port(), "--object-manager-port", port(),
            "--metrics-export-port", port(), "--dashboard-agent-listen-port", port(),
            "--dashboard-agent-grpc-port", port(), "--runtime-env-agent-port", port(),
            "--min-worker-port", str(workers.start), "--max-worker-port", str(workers.stop - 1),
            "--object-store-memory", str(400 * 2**20), "--block"]


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """(dashboard URL, env for clients, the second node's process): a head and one more node, token auth on."""
    root = tmp_path_factory.mktemp("two-nodes")
    ray_temp = Path(tempfile.mkdtemp(prefix="ray2n-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "PYTHONUNBUFFERED": "1"}
    gcs, dashboard = _free_port(), _free_port()
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port",
         str(dashboard), "--ray-client-server-port", str(_free_port()), "--temp-dir", str(ray_temp),
         *_node_args("node_a")],
        stdout=(root / "head.log").open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    procs = [head]
    try:
        _wait_for_nodes(env, f"127.0.0.1:{gcs}", 1, head, root / "head.log")
        second = subprocess.Popen([str(RAY), "start", "--address", f"127.0.0.1:{gcs}", *_node_args("node_b")],
                                  stdout=(root / "node_b.log").open("w"), stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
        procs.append(second)
        _wait_for_nodes(env, f"127.0.0.1:{gcs}", 2, second, root / "node_b.log")
        yield f"http://127.0.0.1:{dashboard}", env, second
    finally:
        stop_process_groups(procs)
        subprocess.run(["pkill", "-9", "-f", str(ray_temp)], check=False)  # anything of this cluster left
        shutil.rmtree(ray_temp, ignore_errors=True)


def _alive_nodes(env: dict[str, str], gcs: str) -> list[dict]:
    code = (f"import json, ray; ray.init(address={gcs!r}, logging_level='ERROR'); "
            "print(json.dumps([n['Resources'] for n in ray.nodes() if n['Alive']]))")
    try:
        done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    except subprocess.TimeoutExpired:  # the node is not up (yet): the caller checks its process and deadline
        return []
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else []


def _wait_for_nodes(env: dict[str, str], gcs: str, count: int, proc: subprocess.Popen, log: Path,
                    timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(_alive_nodes(env, gcs)) < count:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(2)


def _submit(dashboard: str, env: dict[str, str], *command: str, background: bool = False):
    argv = [PYTHON, "-m", "infra.cli", "submit", "ray", "--address", dashboard, "--working-dir", "", "--wait",
            "--", PYTHON, "-m", "infra.cli", *command]
    if background:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _train_worker_nodes(dashboard: str, env: dict[str, str]) -> dict[str, set[str]]:
    """The custom resource (node_a / node_b) of each node that runs a live Ray Train worker."""
    code = f"""
import json
from ray.util.state import list_actors, list_nodes
nodes = {{n.node_id: sorted(k for k in n.resources_total if k.startswith("node_"))
         for n in list_nodes(address={dashboard!r})}}
workers = list_actors(address={dashboard!r}, filters=[("state", "=", "ALIVE")], limit=1000)
print(json.dumps([nodes.get(a.node_id, ["?"])[0] for a in workers if "TrainWorker" in a.class_name]))
"""
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tokenize_pretrain_evaluate_across_two_nodes_survive_losing_one(two_nodes, shared_data, tmp_path):
    dashboard, env, second_node = two_nodes
    # Real text, as JSONL corpora (no Spark here): WikiText-2 paragraphs and WDC offer titles.
    lines = [line.strip() for line in (shared_data / "text" / "wikitext-2" / "valid.txt").read_text().splitlines()
             if len(line.split()) > 20]
    (tmp_path / "general").mkdir()
    (tmp_path / "general" / "part-0.jsonl").write_text(
        "\n".join(json.dumps({"doc_id": f"w{i}", "text": t}) for i, t in enumerate(lines[:600])))
    shared = (tmp_path / "shared").as_uri()  # the storage every node sees, given as a URI
    config = {
        "run": {"name": "two-nodes", "output": shared, "seed": 0},
        "ray": {"address": "auto"},
        "tokenize": {"vocab_size": 1024, "min_frequency": 2, "corpora": {"general": str(tmp_path / "general")},
                     "sets": {"general-128": {"seq_len": 128, "mixture": {"general": 1.0}}}},
        "pretrain": {
            "model": {"preset": "tiny"}, "phases": {"general": "smoke-general.yaml"},
            "phase_overrides": {"general": {"max_steps": 40, "tokens": 40 * 8 * 128, "mixture": None}},
            "workers": 2, "cpus_per_worker": 0.5, "placement_strategy": "SPREAD",
            "data": {"micro_batch_size": 4},
            "checkpoint": {"interval": 4, "keep_latest_k": 2, "max_failures": 2},
            "metrics": {"log_interval": 1, "progress": False, "tensorboard": False},
        },
        "evaluate": {"tasks": ["fill-mask"], "seeds": [0], "limits": {"texts": 32}, "max_seq_length": 64,
                     "models": ["runs/{run}/general/export"], "output": "eval"},
    }
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(config))

    _submit(dashboard, env, "tokenize", "run", "--config", str(config_path))
    assert check_manifest(read_manifest(tmp_path / "shared" / "tokens" / "general-128")).kept > 0

    pretrain = _submit(dashboard, env, "pretrain", "--config", str(config_path), "--phase", "general",
                       background=True)
    checkpoints = tmp_path / "shared" / "runs" / "two-nodes" / "general" / "checkpoints"
    deadline = time.monotonic() + 600
    while not (checkpoints.is_dir() and any(checkpoints.iterdir())):
        assert pretrain.poll() is None, pretrain.stdout.read()[-4000:]
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(1)
    # Two workers, one on each node, then the second node goes (its raylet and every process on it).
    assert sorted(_train_worker_nodes(dashboard, env)) == ["node_a", "node_b"]
    os.killpg(second_node.pid, signal.SIGKILL)

    output, _ = pretrain.communicate(timeout=900)
    assert pretrain.returncode == 0, output[-5000:]
    phase = tmp_path / "shared" / "runs" / "two-nodes" / "general"
    summary = json.loads((phase / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["restarted_after_failure"], summary
    assert check_manifest(read_manifest(phase)).kept > 0

    export = str(phase / "export")
    _submit(dashboard, env, "evaluate", "--config", str(config_path), "--model", export, "--task", "fill-mask",
            "--output", f"{shared}/eval")
    evaluation = read_manifest(tmp_path / "shared" / "eval")
    assert check_manifest(evaluation).kept > 0
