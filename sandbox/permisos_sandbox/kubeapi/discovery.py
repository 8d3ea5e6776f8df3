"""Discovery documents (/api, /apis, group versions) and OpenAPI v3 for `kubectl explain`."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .registry import Registry
from .resources import ALL_VERBS, SUB_VERBS, ResourceType

JSON = dict[str, Any]
KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(address: str) -> JSON:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _group_doc(name: str, versions: list[str]) -> JSON:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> JSON:
    groups = [_group_doc(g, vs) for g, vs in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> JSON | None:
    versions = registry.groups().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def _resource_entries(rt: ResourceType) -> list[JSON]:
    main: JSON = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": ALL_VERBS,
    }
    if rt.short_names:
        main["shortNames"] = rt.short_names
    if rt.categories:
        main["categories"] = rt.categories
    entries = [main]
    if rt.status_subresource:
        entries.append(
            {
                "name": f"{rt.plural}/status",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": SUB_VERBS,
            }
        )
    if rt.scale is not None:
        entries.append(
            {
                "name": f"{rt.plural}/scale",
                "singularName": "",
                "namespaced": rt.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": SUB_VERBS,
            }
        )
    return entries


def api_resource_list(registry: Registry, group: str, version: str) -> JSON | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources = [entry for rt in types for entry in _resource_entries(rt)]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# --- OpenAPI v3 -------------------------------------------------------------------------------

_METADATA = {
    "type": "object",
    "description": "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(rt: ResourceType, version: str) -> str:
    # Reverse-DNS of the group, like kube's names: mx.permisosdigitales.v1alpha1.PermitRequest.
    prefix = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{prefix}.{version}.{rt.kind}"


def _gv_doc(registry: Registry, group: str, version: str) -> JSON:
    schemas: JSON = {}
    paths: JSON = {}
    params = [
        {
            "name": "fieldValidation",
            "in": "query",
            "schema": {"type": "string", "uniqueItems": True},
        },
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    ]
    for rt in registry.in_group_version(group, version):
        name = _schema_name(rt, version)
        gvk = {"group": rt.group, "version": version, "kind": rt.kind}
        schema = copy.deepcopy(rt.schemas.get(version)) or {
            "type": "object",
            "description": f"{rt.kind} is a built-in kind served by the Kubernetes API emulator.",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        props = schema.setdefault("properties", {})
        props["metadata"] = {
            **_METADATA,
            **{k: v for k, v in (props.get("metadata") or {}).items() if k != "type"},
        }
        props.setdefault(
            "apiVersion",
            {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this object.",
            },
        )
        props.setdefault(
            "kind",
            {
                "type": "string",
                "description": "Kind is the REST resource this object represents.",
            },
        )
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[name] = schema
        ref = {"$ref": f"#/components/schemas/{name}"}
        base = f"/{_gv_path(group, version)}"
        collection = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}"
            if rt.namespaced
            else f"{base}/{rt.plural}"
        )
        response = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}

        def op(verb: str, gvk: JSON = gvk, response: JSON = response, kind: str = rt.kind) -> JSON:
            return {
                "operationId": f"{verb}{kind}",
                "parameters": params,
                "responses": response,
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
            }

        paths[collection] = {"get": op("list"), "post": op("post")}
        paths[f"{collection}/{{name}}"] = {
            "get": op("get"),
            "put": op("put"),
            "patch": op("patch"),
            "delete": op("delete"),
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


class OpenApi:
    """Builds OpenAPI v3 documents on demand; their hash changes when the types change."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def document(self, group: str, version: str) -> JSON | None:
        if not self.registry.in_group_version(group, version):
            return None
        return _gv_doc(self.registry, group, version)

    def index(self) -> JSON:
        paths: JSON = {}
        for group, versions in self.registry.groups().items():
            for version in versions:
                doc = self.document(group, version)
                digest = (
                    hashlib.sha512(json.dumps(doc, sort_keys=True).encode())
                    .hexdigest()[:64]
                    .upper()
                )
                path = _gv_path(group, version)
                paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
        return {"paths": paths}
