"""The Ray cluster configs an operator deploys, checked against the schemas their own tools enforce.

Schemas and their sources:
- Cluster launcher YAMLs (infra/configs/ray-cluster-{aws,gcp}.yaml): Ray's schema shipped in the installed
  wheel, `ray/autoscaler/ray-schema.json`, with jsonschema; then Ray's own `prepare_config` +
  `validate_config`, the steps `ray up` runs before it calls the cloud. The AWS node configs also go
  through botocore's EC2 `RunInstances` input model, the call Ray's AWS provider makes with them.
- KubeRay manifests (infra/configs/kuberay/): the Kubernetes objects (PersistentVolumeClaim, ConfigMap, every
  pod template: head, workers, submitter; the autoscaler's env and resources) through the `kubernetes` Python
  client's models (kubernetes==36.0.3, generated from the Kubernetes OpenAPI spec), strictly: unknown keys,
  wrong types and missing required fields fail. The RayCluster / RayJob fields around them through
  KUBERAY_V1_SUBSET below.
- Then what ties them together: the entrypoints parse with the real `rexbert` CLI, the config they read is
  the ConfigMap's key at its mount path and loads with the project's loader, outputs and checkpoints land on
  the ReadWriteMany volume every Ray pod mounts, every pod that runs Ray gets the token from the one Secret
  the docs create, and autoscaling is on wherever a worker group may grow.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes.client
import pytest
import typer
import yaml
from typer.exceptions import TyperException

from infra.cli import app
from infra.cloud.cloud_jobs import validate_boto_request
from infra.core import fs
from infra.core.config import ConfigError, load_config, parse_overrides, resolve_run_dir
from infra.core.paths import PROJECT_ROOT

CONFIGS = PROJECT_ROOT / "infra" / "configs"
KUBERAY = CONFIGS / "kuberay"
LAUNCHERS = ["ray-cluster-aws.yaml", "ray-cluster-gcp.yaml"]
RAY_JOBS = ["rayjob-tokenize.yaml", "rayjob-pretrain.yaml", "rayjob-evaluate.yaml"]
RAY_CLUSTERS = ["raycluster.yaml", *RAY_JOBS]
GPU = "nvidia.com/gpu"


# --- the project's pins -----------------------------------------------------------------------------------------


def project_pins() -> tuple[str, str]:
    """(Ray version, Python tag like 'py311') from pyproject.toml: the versions every cluster image must match."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    ray_pin = next(dep for dep in project["dependencies"] if re.match(r"ray(\[|==)", dep))
    version = ray_pin.split("==")[1]
    lowest = re.search(r">=\s*3\.(\d+)", project["requires-python"]).group(1)
    return version, f"py3{lowest}"


# --- a strict reading of Kubernetes objects through the client's models -----------------------------------------

_PRIMITIVES: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "float": (int, float), "bool": bool}


def k8s_model(data: Any, type_name: str, where: str = "") -> Any:
    """`data` (a manifest's YAML) built into the `kubernetes` client model `type_name`, refusing what the API
    server would: a key the model does not have, a value of the wrong type, a required field left out (the
    models' constructors check those). The error names the path of the bad field."""
    where = where or type_name
    if type_name.startswith("list["):
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list, got {type(data).__name__}")
        return [k8s_model(item, type_name[5:-1], f"{where}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict["):
        value_type = type_name[5:-1].split(", ", 1)[1]
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        return {key: k8s_model(value, value_type, f"{where}.{key}") for key, value in data.items()}
    if type_name == "object":  # IntOrString and free-form fields
        return data
    if type_name in _PRIMITIVES:
        if (isinstance(data, bool) and type_name != "bool") or not isinstance(data, _PRIMITIVES[type_name]):
            raise ValueError(f"{where}: expected {type_name}, got {type(data).__name__} {data!r}")
        return data
    model = getattr(kubernetes.client, type_name)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a {type_name} mapping, got {type(data).__name__}")
    attribute_of = {json_key: attribute for attribute, json_key in model.attribute_map.items()}
    unknown = sorted(set(data) - set(attribute_of))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown} for {type_name}")
    kwargs = {attribute_of[key]: k8s_model(value, model.openapi_types[attribute_of[key]], f"{where}.{key}")
              for key, value in data.items()}
    try:
        return model(**kwargs)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


# --- the KubeRay CRD fields these manifests use -------------------------------------------------------------------

# A SUBSET of KubeRay's ray.io/v1 API: the RayCluster and RayJob fields these manifests use (and their
# documented siblings), with the types and enums KubeRay declares. Source: the KubeRay CRD API reference
# (https://docs.ray.io/en/master/cluster/kubernetes/references/api.html, KubeRay v1.6) and the Go types it is
# generated from, ray-project/kuberay ray-operator/apis/ray/v1/raycluster_types.go and rayjob_types.go.
# `additionalProperties: false` makes a misspelt field an error here; a real field not listed is one too, so
# add it from those sources before using it. Pod templates are `object` here: they go through the
# Kubernetes models above.
_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
KUBERAY_V1_SUBSET: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "definitions": {
        "metadata": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                           "namespace": {"type": "string"}, "labels": _STRING_MAP, "annotations": _STRING_MAP},
            "additionalProperties": False,
        },
        "headGroupSpec": {
            "type": "object", "required": ["template"],
            "properties": {"rayStartParams": _STRING_MAP, "template": {"type": "object"},
                           "serviceType": {"type": "string"}, "enableIngress": {"type": "boolean"},
                           "headService": {"type": "object"}},
            "additionalProperties": False,
        },
        "workerGroupSpec": {
            "type": "object", "required": ["groupName", "template"],
            "properties": {"groupName": {"type": "string", "minLength": 1}, "replicas": _INT32,
                           "minReplicas": _INT32, "maxReplicas": _INT32, "numOfHosts": _INT32,
                           "rayStartParams": _STRING_MAP, "template": {"type": "object"},
                           "scaleStrategy": {"type": "object"}, "suspend": {"type": "boolean"}},
            "additionalProperties": False,
        },
        "autoscalerOptions": {
            "type": "object",
            "properties": {"resources": {"type": "object"}, "image": {"type": "string"},
                           "imagePullPolicy": {"enum": ["Always", "Never", "IfNotPresent"]},
                           "env": {"type": "array"}, "envFrom": {"type": "array"},
                           "volumeMounts": {"type": "array"}, "securityContext": {"type": "object"},
                           "idleTimeoutSeconds": _INT32,
                           "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
                           "version": {"enum": ["v1", "v2"]}},
            "additionalProperties": False,
        },
        "rayClusterSpec": {
            "type": "object", "required": ["headGroupSpec"],
            "properties": {"headGroupSpec": {"$ref": "#/definitions/headGroupSpec"},
                           "workerGroupSpecs": {"type": "array", "items": {"$ref": "#/definitions/workerGroupSpec"}},
                           "rayVersion": {"type": "string"}, "enableInTreeAutoscaling": {"type": "boolean"},
                           "autoscalerOptions": {"$ref": "#/definitions/autoscalerOptions"},
                           "headServiceAnnotations": _STRING_MAP, "suspend": {"type": "boolean"}},
            "additionalProperties": False,
        },
        "rayJobSpec": {
            "type": "object",
            "anyOf": [{"required": ["rayClusterSpec"]}, {"required": ["clusterSelector"]}],
            "properties": {"entrypoint": {"type": "string"}, "rayClusterSpec": {"$ref": "#/definitions/rayClusterSpec"},
                           "clusterSelector": _STRING_MAP, "submitterPodTemplate": {"type": "object"},
                           "submitterConfig": {"type": "object", "properties": {"backoffLimit": _INT32},
                                               "additionalProperties": False},
                           "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
                           "shutdownAfterJobFinishes": {"type": "boolean"}, "ttlSecondsAfterFinished": _INT32,
                           "activeDeadlineSeconds": {**_INT32, "minimum": 1}, "backoffLimit": _INT32,
                           "runtimeEnvYAML": {"type": "string"}, "jobId": {"type": "string"},
                           "metadata": _STRING_MAP, "suspend": {"type": "boolean"},
                           "entrypointNumCpus": {"type": "number"}, "entrypointNumGpus": {"type": "number"},
                           "entrypointResources": {"type": "string"}},
            "additionalProperties": False,
        },
    },
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {"apiVersion": {"const": "ray.io/v1"}, "kind": {"enum": ["RayCluster", "RayJob"]},
                   "metadata": {"$ref": "#/definitions/metadata"}, "spec": {"type": "object"}},
    "additionalProperties": False,
    "if": {"properties": {"kind": {"const": "RayJob"}}},
    "then": {"properties": {"spec": {"$ref": "#/definitions/rayJobSpec"}}},
    "else": {"properties": {"spec": {"$ref": "#/definitions/rayClusterSpec"}}},
}


def validate_kuberay(doc: dict[str, Any]) -> None:
    """A RayCluster or RayJob against the subset schema, then each embedded Kubernetes object against its model."""
    jsonschema.validate(doc, KUBERAY_V1_SUBSET)
    if doc["kind"] == "RayJob" and "submitterPodTemplate" in doc["spec"]:
        k8s_model(doc["spec"]["submitterPodTemplate"], "V1PodTemplateSpec", "spec.submitterPodTemplate")
    for where, spec in cluster_specs(doc):
        k8s_model(spec["headGroupSpec"]["template"], "V1PodTemplateSpec", f"{where}.headGroupSpec.template")
        for i, group in enumerate(spec.get("workerGroupSpecs", [])):
            k8s_model(group["template"], "V1PodTemplateSpec", f"{where}.workerGroupSpecs[{i}].template")
        options = spec.get("autoscalerOptions", {})
        for key, type_name in [("env", "list[V1EnvVar]"), ("resources", "V1ResourceRequirements"),
                               ("volumeMounts", "list[V1VolumeMount]")]:
            if key in options:
                k8s_model(options[key], type_name, f"{where}.autoscalerOptions.{key}")


# --- reading the manifests ----------------------------------------------------------------------------------------


def manifests(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((KUBERAY / name).read_text()) if doc]


def single(name: str) -> dict[str, Any]:
    (doc,) = manifests(name)
    return doc


def shared_object(kind: str) -> dict[str, Any]:
    """The PersistentVolumeClaim or ConfigMap of shared.yaml."""
    (doc,) = [doc for doc in manifests("shared.yaml") if doc["kind"] == kind]
    return doc


def cluster_specs(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, RayClusterSpec) of a RayCluster or of a RayJob that brings its own cluster."""
    if doc["kind"] == "RayCluster":
        return [("spec", doc["spec"])]
    return [("spec.rayClusterSpec", doc["spec"]["rayClusterSpec"])] if "rayClusterSpec" in doc["spec"] else []


def ray_pods(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(role, pod spec) of every pod that runs Ray: heads and workers (KubeRay's Ray container is the first)."""
    pods = []
    for _, spec in cluster_specs(doc):
        pods.append(("head", spec["headGroupSpec"]["template"]["spec"]))
        pods += [(f"worker {g['groupName']}", g["template"]["spec"]) for g in spec.get("workerGroupSpecs", [])]
    return pods


def token_consumers(doc: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(role, env) of everything that talks to Ray: head and worker containers, the autoscaler sidecar, the
    submitter pod that runs `ray job submit`."""
    found = [(role, container.get("env", [])) for role, pod in ray_pods(doc) for container in pod["containers"][:1]]
    for _, spec in cluster_specs(doc):
        if spec.get("enableInTreeAutoscaling"):
            found.append(("autoscaler", spec.get("autoscalerOptions", {}).get("env", [])))
    if doc["kind"] == "RayJob" and doc["spec"].get("submissionMode", "K8sJobMode") == "K8sJobMode":
        submitter = doc["spec"].get("submitterPodTemplate", {"spec": {"containers": [{}]}})
        found.append(("submitter", submitter["spec"]["containers"][0].get("env", [])))
    return found


def documented_secret() -> tuple[str, str]:
    """(Secret name, key) of the `kubectl create secret generic` line shared.yaml tells the operator to type."""
    text = (KUBERAY / "shared.yaml").read_text()
    match = re.search(r"kubectl create secret generic (\S+) --from-literal=(\w+)=", text)
    assert match, "shared.yaml does not say how to create the token Secret"
    return match.group(1), match.group(2)


def mounted_files(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Path in the container -> (ConfigMap name, key) for every ConfigMap key a container sees as a file."""
    volumes = {volume["name"]: volume["configMap"] for volume in pod.get("volumes", []) if "configMap" in volume}
    files = {}
    for mount in container.get("volumeMounts", []):
        config_map = volumes.get(mount["name"])
        if config_map is None:
            continue
        if "subPath" in mount:
            files[mount["mountPath"]] = (config_map["name"], mount["subPath"])
            continue
        items = config_map.get("items") or [{"key": key, "path": key} for key in configmap_keys(config_map["name"])]
        for item in items:
            files[fs.join(mount["mountPath"], item["path"])] = (config_map["name"], item["key"])
    return files


def configmap_keys(name: str) -> list[str]:
    config_map = shared_object("ConfigMap")
    return list(config_map["data"]) if config_map["metadata"]["name"] == name else []


def shared_mount_paths(pod: dict[str, Any]) -> set[str]:
    """Where the Ray container of a pod mounts the shared ReadWriteMany claim."""
    claim = shared_object("PersistentVolumeClaim")["metadata"]["name"]
    names = {volume["name"] for volume in pod.get("volumes", [])
             if volume.get("persistentVolumeClaim", {}).get("claimName") == claim}
    return {mount["mountPath"] for mount in pod["containers"][0].get("volumeMounts", []) if mount["name"] in names}


def parse_entrypoint(entrypoint: str) -> tuple[list[str], typer.Context]:
    """An entrypoint parsed by the real `rexbert` CLI without running it: typer's click resolves each subcommand
    and option and raises its usage error for a missing required one; what is left must be --section.key=value
    config overrides, as the commands' own `resolve_config` requires (ConfigError otherwise). Returns the
    command path and the context of the command that would run (its params; ctx.args holds the overrides)."""
    argv = shlex.split(entrypoint)
    assert argv[0] == "rexbert", f"the entrypoint runs {argv[0]!r}, not the project's CLI"
    command = typer.main.get_command(app)
    ctx = command.make_context("rexbert", argv[1:])
    path = ["rexbert"]
    while hasattr(command, "commands"):  # a group: the next word names its subcommand
        rest = [*ctx._protected_args, *ctx.args]
        if not rest or rest[0] not in command.commands:
            break
        path.append(rest[0])
        command = command.commands[rest[0]]
        ctx = command.make_context(rest[0], rest[1:], parent=ctx)
    parse_overrides(list(ctx.args))
    return path, ctx


def run_config_of(job: dict[str, Any], tmp_path: Path):
    """The run config a RayJob's entrypoint reads: the file its --config names, which must be a ConfigMap key
    mounted on the head (where Ray runs the entrypoint), loaded with the project's own loader."""
    path, ctx = parse_entrypoint(job["spec"]["entrypoint"])
    config_path = ctx.params["config"]
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    files = mounted_files(head, head["containers"][0])
    assert config_path in files, f"{config_path} is not a ConfigMap file on the head (mounted: {sorted(files)})"
    name, key = files[config_path]
    config_map = shared_object("ConfigMap")
    assert config_map["metadata"]["name"] == name and key in config_map["data"]
    local = tmp_path / key
    local.write_text(config_map["data"][key])
    return path, ctx, load_config(local, parse_overrides(list(ctx.args)))


# --- cluster launcher -------------------------------------------------------------------------------------------


def launcher(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / name).read_text())


def start_env(command: str) -> dict[str, str]:
    """The environment a launcher command line gives its `ray start`: `export A=B` and `A=B ray ...` prefixes."""
    env = {}
    for segment in command.split(";"):
        words = shlex.split(segment)
        if words[:1] == ["export"]:
            words = words[1:]
        env.update(word.split("=", 1) for word in words if re.match(r"[A-Z_]+=", word))
    return env


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_config_passes_rays_schema_and_ray_up_preparation(name):
    """Ray's ray-schema.json (from the installed wheel) on the file as written, then `prepare_config` (defaults
    merged, docker checked) and `validate_config`: what `ray up` does before any cloud call."""
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = launcher(name)
    jsonschema.validate(config, schema)
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_launcher_schema_refuses_a_misspelt_field():
    """The schema check above bites: an unknown top-level key and an unknown node-type key both fail."""
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = launcher("ray-cluster-aws.yaml")
    for broken in ({**config, "worker_start_commands": []},
                   {**config, "available_node_types": {**config["available_node_types"],
                                                        "gpu_worker": {**config["available_node_types"]["gpu_worker"],
                                                                       "max_worker": 2}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_aws_node_configs_are_valid_run_instances_requests():
    """Ray's AWS provider passes each node_config to EC2 RunInstances: botocore's model of that call accepts them,
    and every ImageId is a real public one (an ami- id, or AWS's public SSM parameter that resolves to one in
    any region), never a made-up id."""
    config = launcher("ray-cluster-aws.yaml")
    for node_type in config["available_node_types"].values():
        node_config = node_type["node_config"]
        validate_boto_request("ec2", "RunInstances", {**node_config, "MinCount": 1, "MaxCount": 1})
        assert re.fullmatch(r"ami-[0-9a-f]{8,17}|resolve:ssm:/aws/service/[\w./-]+", node_config["ImageId"])
    with pytest.raises(ValueError, match="InstanceTyp"):
        validate_boto_request("ec2", "RunInstances", {"InstanceTyp": "m6i.large", "MinCount": 1, "MaxCount": 1})


def test_gcp_launcher_leaves_the_project_to_the_operator_and_boots_public_images():
    """project_id stays null in git (the schema allows it): Ray's GCP bootstrap (`_configure_project` in
    ray/autoscaler/_private/gcp/config.py) then stops with "'project_id' must be set" instead of creating a
    project under an invented name. Every node boots a public Deep Learning VM image family, and workers get
    the cloud-platform scope so they can write gs:// outputs."""
    config = launcher("ray-cluster-gcp.yaml")
    assert config["provider"]["project_id"] is None
    for type_name, node_type in config["available_node_types"].items():
        (boot,) = [disk for disk in node_type["node_config"]["disks"] if disk["boot"]]
        assert boot["initializeParams"]["sourceImage"].startswith(
            "projects/deeplearning-platform-release/global/images/family/")
        if type_name != config["head_node_type"]:
            (account,) = node_type["node_config"]["serviceAccounts"]
            assert "https://www.googleapis.com/auth/cloud-platform" in account["scopes"]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_has_cpu_and_gpu_workers_on_images_matching_the_project(name):
    """Worker types for both kinds of work, each on the rayproject/ray image of the project's Ray and Python
    (tag format {ray}-{py}-{cpu|gpu}): -gpu where the node has GPUs, -cpu elsewhere; the head takes no tasks."""
    ray_version, python_tag = project_pins()
    config = launcher(name)
    docker = config["docker"]
    kinds = set()
    for type_name, node_type in config["available_node_types"].items():
        is_head = type_name == config["head_node_type"]
        default = docker.get("head_image" if is_head else "worker_image", docker["image"])
        image = node_type.get("docker", {}).get("worker_image", default)
        gpus = node_type["resources"].get("GPU", 0)
        assert image == f"rayproject/ray:{ray_version}-{python_tag}-{'gpu' if gpus else 'cpu'}", type_name
        if is_head:
            assert node_type["resources"].get("CPU") == 0 and node_type["max_workers"] == 0
        else:
            assert node_type["max_workers"] >= 1 and node_type["resources"]["CPU"] >= 1
            kinds.add("gpu" if gpus else "cpu")
    assert kinds == {"cpu", "gpu"}
    assert not re.search(r"REPLACE|CHANGE-?ME|TODO|ami-0abcdef", (CONFIGS / name).read_text(), re.IGNORECASE)


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_provisions_the_token_to_every_ray_start(name, monkeypatch):
    """The token file Ray's CLI writes on the launching machine (`ray get-auth-token --generate`; the default path
    ray_jobs.runtime.auth_token_path reads too) is a file mount; every `ray start`, on the head and on the
    workers, runs with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH naming that mount, and so does every other
    process of the container (docker run --env); setup makes the copy private (0600)."""
    from ray.autoscaler._private.util import prepare_config

    from ray_jobs.runtime import auth_token_path

    for variable in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(variable, raising=False)
    config = prepare_config(launcher(name))
    (remote,) = [remote for remote, local in config["file_mounts"].items()
                 if Path(os.path.expanduser(local)) == auth_token_path()]
    commands = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    starts = [command for command in commands if "ray start" in command]
    assert any("--head" in command for command in starts) and any("--address" in command for command in starts)
    for command in starts:
        env = start_env(command)
        assert env.get("RAY_AUTH_MODE") == "token" and env.get("RAY_AUTH_TOKEN_PATH") == remote, command
    run_options = " ".join(config["docker"]["run_options"])
    assert "--env RAY_AUTH_MODE=token" in run_options and f"--env RAY_AUTH_TOKEN_PATH={remote}" in run_options
    for setup in (config["head_setup_commands"], config["worker_setup_commands"]):
        assert any(f"chmod 600 {remote}" in command for command in setup)


# --- KubeRay: schemas ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RAY_CLUSTERS)
def test_kuberay_manifest_passes_the_crd_subset_and_kubernetes_models(name):
    """RayCluster / RayJob fields against KUBERAY_V1_SUBSET; head, worker and submitter pod templates and the
    autoscaler's env and resources against the kubernetes client's models."""
    doc = single(name)
    validate_kuberay(doc)
    assert doc["kind"] == ("RayJob" if name.startswith("rayjob") else "RayCluster")
    ray_version, _ = project_pins()
    assert all(spec["rayVersion"] == ray_version for _, spec in cluster_specs(doc))


def test_shared_volume_and_run_config_pass_the_kubernetes_models():
    """shared.yaml's PersistentVolumeClaim and ConfigMap as V1 objects; the claim is ReadWriteMany (every pod
    mounts it at once) and the ConfigMap's run config loads with the project's loader."""
    claim = k8s_model(shared_object("PersistentVolumeClaim"), "V1PersistentVolumeClaim")
    assert claim.api_version == "v1" and "ReadWriteMany" in claim.spec.access_modes
    assert claim.spec.resources.requests["storage"]
    config_map = k8s_model(shared_object("ConfigMap"), "V1ConfigMap")
    for key, text in config_map.data.items():
        assert load_config(overrides=yaml.safe_load(text)).ray.address == "auto", key  # joins the job's cluster


def test_the_validators_refuse_what_the_api_server_would():
    """Each check above bites: a misspelt RayJob field, a wrong enum, an unknown pod field, a wrong type and a
    container without its required name are all refused."""
    job = single("rayjob-pretrain.yaml")
    broken = copy.deepcopy(job)
    broken["spec"]["shutdownAfterJobFinish"] = True
    with pytest.raises(jsonschema.ValidationError, match="shutdownAfterJobFinish"):
        validate_kuberay(broken)
    broken = copy.deepcopy(job)
    broken["spec"]["submissionMode"] = "K8sMode"
    with pytest.raises(jsonschema.ValidationError):
        validate_kuberay(broken)
    broken = copy.deepcopy(job)
    broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["gpus"] = 8
    with pytest.raises(ValueError, match=r"workerGroupSpecs\[0\].*unknown field.*gpus"):
        validate_kuberay(broken)
    template = job["spec"]["submitterPodTemplate"]
    with pytest.raises(ValueError, match="restartPolicy: expected str"):
        k8s_model({**template, "spec": {**template["spec"], "restartPolicy": 1}}, "V1PodTemplateSpec")
    with pytest.raises(ValueError, match="name"):
        k8s_model({"spec": {"containers": [{"image": "x"}]}}, "V1PodTemplateSpec")


# --- KubeRay: what ties the manifests together --------------------------------------------------------------------


@pytest.mark.parametrize("name", RAY_CLUSTERS)
def test_every_pod_that_runs_ray_gets_the_token_from_the_documented_secret(name):
    """Head, workers, the autoscaler sidecar and the submitter (which runs `ray job submit` against the head)
    all get RAY_AUTH_MODE=token and RAY_AUTH_TOKEN from the Secret the docs' kubectl line creates."""
    secret, key = documented_secret()
    consumers = token_consumers(single(name))
    roles = {role.split()[0] for role, _ in consumers}
    assert "head" in roles and "worker" in roles and ("submitter" in roles) == name.startswith("rayjob")
    for role, env in consumers:
        k8s_model(env, "list[V1EnvVar]", role)
        by_name = {variable["name"]: variable for variable in env}
        assert by_name.get("RAY_AUTH_MODE", {}).get("value") == "token", role
        reference = by_name.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef")
        assert reference == {"name": secret, "key": key}, role


@pytest.mark.parametrize("name", RAY_CLUSTERS)
def test_autoscaling_is_on_wherever_a_group_may_grow(name):
    """minReplicas < maxReplicas means nothing without KubeRay's in-tree autoscaler: such a group needs
    enableInTreeAutoscaling with autoscalerOptions; a cluster without it has fixed groups (min = max = replicas)."""
    for where, spec in cluster_specs(single(name)):
        groups = spec.get("workerGroupSpecs", [])
        for group in groups:
            assert group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]
        if any(group["minReplicas"] < group["maxReplicas"] for group in groups):
            assert spec.get("enableInTreeAutoscaling") is True and spec.get("autoscalerOptions"), where
        else:
            assert not spec.get("enableInTreeAutoscaling"), f"{where}: autoscaler on with nothing to scale"


@pytest.mark.parametrize("name", RAY_CLUSTERS)
def test_gpu_groups_request_gpus_on_the_cuda_image(name):
    """GPUs are requested as nvidia.com/gpu limits (requests, if given, equal them, as Kubernetes requires),
    tolerate the GPU node taint and run the CUDA build of the image; CPU pods run the CPU build."""
    for role, pod in ray_pods(single(name)):
        container = pod["containers"][0]
        limits = container["resources"]["limits"]
        requests = container["resources"].get("requests", {})
        if GPU in limits:
            assert int(limits[GPU]) >= 1 and requests.get(GPU, limits[GPU]) == limits[GPU], role
            assert container["image"].endswith("-cuda"), role
            assert any(toleration["key"] == GPU for toleration in pod.get("tolerations", [])), role
        else:
            assert GPU not in requests and not container["image"].endswith("-cuda"), role
    if name in ("raycluster.yaml", "rayjob-pretrain.yaml", "rayjob-evaluate.yaml"):
        assert any(GPU in pod["containers"][0]["resources"]["limits"] for _, pod in ray_pods(single(name)))


@pytest.mark.parametrize("name", RAY_CLUSTERS)
def test_every_ray_pod_mounts_the_shared_volume_at_one_path(name):
    """Outputs and checkpoints are shared: every head and worker mounts the ReadWriteMany claim, all at one path."""
    paths = [shared_mount_paths(pod) for _, pod in ray_pods(single(name))]
    assert all(len(found) == 1 for found in paths) and len(set.union(*paths)) == 1, paths


def shared_root(job: dict[str, Any]) -> str:
    (root,) = set.union(*(shared_mount_paths(pod) for _, pod in ray_pods(job)))
    return root


def on_shared_storage(path: str, root: str) -> bool:
    return fs.is_remote(path) or Path(path).is_relative_to(root)


@pytest.mark.parametrize("name", RAY_JOBS)
def test_rayjob_entrypoint_parses_with_the_cli_and_reads_the_mounted_run_config(name, tmp_path):
    """The entrypoint is a `rexbert` command whose flags the real CLI accepts; its --config is the ConfigMap key
    at its mount path on the head; that config joins the job's cluster and writes to shared storage."""
    job = single(name)
    path, _, cfg = run_config_of(job, tmp_path)
    stage = name.removeprefix("rayjob-").removesuffix(".yaml")
    assert path[:2] == ["rexbert", stage]
    assert cfg.ray.address == "auto"
    assert on_shared_storage(cfg.run.output, shared_root(job)), cfg.run.output


def test_pretrain_rayjob_checkpoints_to_shared_storage_on_the_gpus_it_asks_for(tmp_path):
    """The pretrain job's run folder (checkpoints, exports) is on the shared volume, it resumes after a retry,
    and its Ray Train workers (one GPU each) fit the GPU pods of its cluster."""
    job = single("rayjob-pretrain.yaml")
    path, ctx, cfg = run_config_of(job, tmp_path)
    assert path == ["rexbert", "pretrain"] and ctx.params["resume"] and ctx.params["workers"] is None
    run_dir = resolve_run_dir(cfg.pretrain, cfg.run.output, cfg.run.name)
    assert on_shared_storage(run_dir, shared_root(job)), run_dir
    assert cfg.pretrain.use_gpu
    gpus = cpus = 0
    for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        if GPU in limits:
            gpus += int(limits[GPU]) * group["maxReplicas"]
            cpus += int(limits["cpu"]) * group["maxReplicas"]
    assert gpus >= cfg.pretrain.workers and cpus >= cfg.pretrain.workers * cfg.pretrain.cpus_per_worker


def test_evaluate_rayjob_scores_the_exports_the_pretrain_job_writes(tmp_path):
    """`--model` names the exports rexbert-pretrain writes (<run dir>/<phase>/export, same ConfigMap), results go
    to shared storage, and one trial's GPUs fit one GPU pod."""
    job = single("rayjob-evaluate.yaml")
    _, ctx, cfg = run_config_of(job, tmp_path)
    run_dir = resolve_run_dir(cfg.pretrain, cfg.run.output, cfg.run.name)
    exports = {fs.join(run_dir, phase, "export") for phase in cfg.pretrain.phases}
    assert ctx.params["model"] and set(ctx.params["model"]) <= exports, ctx.params["model"]
    assert on_shared_storage(ctx.params["output"], shared_root(job))
    per_pod = [int(pod["containers"][0]["resources"]["limits"].get(GPU, 0)) for _, pod in ray_pods(job)]
    assert 0 < cfg.evaluate.gpus_per_trial <= max(per_pod)


def test_entrypoint_parsing_refuses_flags_the_cli_does_not_have():
    """The CLI check above bites: a misspelt option and a missing required one are refused."""
    with pytest.raises(ConfigError, match="unknown option or argument '--confg'"):
        parse_entrypoint("rexbert tokenize run --confg /etc/rexbert/run.yaml")
    with pytest.raises(TyperException, match="No such option"):
        parse_entrypoint("rexbert pretrain export --phas general /mnt/rexbert/runs/x /tmp/out")
    with pytest.raises(TyperException, match="Missing parameter: model"):
        parse_entrypoint("rexbert evaluate --config /etc/rexbert/run.yaml --output /mnt/rexbert/eval")


def test_kuberay_docs_name_the_objects_the_manifests_use():
    """The header commands agree with the manifests: each file's `kubectl apply -f` names itself, and the Secret
    the docs create is the one every manifest header mentions."""
    secret, _ = documented_secret()
    for name in [*RAY_CLUSTERS, "shared.yaml"]:
        text = (KUBERAY / name).read_text()
        assert f"kubectl apply -f infra/configs/kuberay/{name}" in text, name
        assert secret in text, name
