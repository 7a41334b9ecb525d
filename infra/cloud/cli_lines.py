"""The command lines an operator would type for a cloud request, built from the request itself.

`rexbert submit ... --dry-run` prints one line per action (an upload, a job submission, a cluster creation),
so a reader can run them by hand or paste them into a runbook. Each line is derived from the very request
object that would be sent (never written next to it), so the line and the request cannot drift; tests parse
the lines back with `shlex` and compare them with the requests.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

# gcloud's own list syntax is `a,b,c`; a value with a comma in it needs another delimiter, announced as
# `^DELIM^` in front of the list (see `gcloud topic escaping`). These are tried in order.
_GCLOUD_DELIMITERS = ("#", "|", "~", "@", ";", ":")


def shell_line(argv: Iterable[str]) -> str:
    """One shell command, every argument quoted as the shell needs."""
    return shlex.join(str(arg) for arg in argv)


def gcloud_list(values: Iterable[str], separator: str = ",") -> str:
    """A gcloud list flag's value (`--py-files=a,b`, `--properties=k=v,k2=v2`), escaped when an item holds `,`."""
    values = [str(value) for value in values]
    if not any(separator in value for value in values):
        return separator.join(values)
    for delimiter in _GCLOUD_DELIMITERS:
        if not any(delimiter in value for value in values):
            return f"^{delimiter}^" + delimiter.join(values)
    raise ValueError(f"no gcloud list delimiter fits the values {values!r}")


def parse_gcloud_list(text: str) -> list[str]:
    """The inverse of `gcloud_list` (what gcloud does with the flag's value)."""
    if text.startswith("^") and text.count("^") >= 2:
        delimiter, _, rest = text[1:].partition("^")
        return rest.split(delimiter) if rest else []
    return text.split(",") if text else []


def gcloud_map(pairs: Mapping[str, str]) -> str:
    """A gcloud `KEY=VALUE,...` flag value (`--properties`, `--labels`), in the mapping's order."""
    return gcloud_list(f"{key}={value}" for key, value in pairs.items())


def parse_gcloud_map(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in parse_gcloud_list(text))


def json_arg(value: Any) -> str:
    """A structured aws-cli argument (`--steps`, `--job-driver`) as compact JSON, which the aws CLI accepts as is."""
    return json.dumps(value, separators=(",", ":"))


def gcs_upload_argv(local: str, uri: str) -> list[str]:
    return ["gcloud", "storage", "cp", local, uri]


def s3_upload_argv(local: str, uri: str) -> list[str]:
    return ["aws", "s3", "cp", local, uri]


def comment(label: str, text: str) -> str:
    """A line the shell ignores (a console link printed among the commands keeps the output runnable)."""
    return f"# {label}: {text}"


def aws_argv(service: str, operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    """The aws CLI line of a plain (not customized) API call: `aws SERVICE OPERATION --param value ...`.

    The CLI names each parameter after the API's (`executionRoleArn` -> `--execution-role-arn`) and takes a
    structure or list as JSON, so the line carries exactly the request's values."""
    from botocore import xform_name

    argv = ["aws", service, xform_name(operation, "-")]
    for key, value in params.items():
        flag = "--" + xform_name(key, "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, dict | list):
            argv += [flag, json_arg(value)]
        else:
            argv += [flag, str(value)]
    return argv + ["--region", region]
