"""Offline checks for rendered Kubernetes objects: strict schemas (CRDs too) and restricted Pod Security."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

K8S_VERSION = "1.33.0"  # the Kubernetes version the manifests are validated against
SCHEMAS = Path(__file__).parent / "schemas"
# metadata in a custom resource: what the API server's ObjectMeta accepts from a manifest.
_OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
Obj = dict[str, Any]


def _strict(schema: Any) -> Any:
    """Close every object schema that lists its properties: an unknown field must fail."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a strict validator, from the vendored CRD schemas."""
    out = {}
    for path in SCHEMAS.glob("*.json.gz"):
        crd = json.loads(gzip.decompress(path.read_bytes()))
        for version, schema in crd["versions"].items():
            strict = _strict(schema)
            strict["properties"]["metadata"] = _OBJECT_META
            strict["required"] = sorted({*strict.get("required", []), "apiVersion", "kind", "metadata", "spec"})
            out[(f"{crd['group']}/{version}", crd["kind"])] = jsonschema.Draft7Validator(strict)
    return out


def validate(doc: Obj) -> None:
    """Strict validation: built-in kinds against Kubernetes' schemas, custom resources against their CRDs.

    An unknown kind raises (kubernetes_validate.SchemaNotFoundError) instead of passing."""
    validator = crd_validators().get((doc.get("apiVersion", ""), doc.get("kind", "")))
    if validator is not None:
        validator.validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


_RESTRICTED_VOLUMES = {"configMap", "emptyDir", "persistentVolumeClaim", "secret", "projected", "downwardAPI", "csi"}


def restricted_violations(pod: Obj) -> list[str]:
    """What a pod spec breaks of the `restricted` Pod Security Standard (the namespace enforces it)."""
    problems = []
    psc = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(flag)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        sc = c.get("securityContext", {})
        where = c["name"]
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            problems.append(f"{where}: runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{where}: runAsUser 0")
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: capabilities")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{where}: hostPort")
    return problems
