"""The patch formats kube-apiserver accepts: JSON merge, JSON patch and strategic merge."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from .errors import ApiError

JSON = dict[str, Any]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
# Lists of built-in kinds merged by key rather than replaced (a subset of the Go struct tags).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
}
_SET_LISTS = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: JSON, ops: Any) -> JSON:
    if not isinstance(ops, list):
        raise ApiError(400, "json patch must be a list of operations", "BadRequest")
    try:
        result: JSON = jsonpatch.JsonPatch(ops).apply(target)
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        KeyError,
        IndexError,
        TypeError,
    ) as exc:
        # kube answers a failed `test` (or a bad path) as an invalid request, not a server error.
        message = f"the server rejected our request due to an error: {exc}"
        raise ApiError(422, message, "Invalid") from exc
    return result


def _merge_list(key: str, target: list[Any], patch: list[Any]) -> list[Any]:
    merge_key = _MERGE_KEYS.get(key)
    if key in _SET_LISTS:
        return list(target) + [v for v in patch if v not in target]
    if merge_key is None or not all(isinstance(v, dict) for v in patch):
        return [strategic_merge(None, v) for v in patch]
    result = [copy.deepcopy(v) for v in target]
    for item in patch:
        wanted = item.get(merge_key)
        index = next(
            (i for i, v in enumerate(result) if isinstance(v, dict) and v.get(merge_key) == wanted),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge(None, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """A reasonable subset of strategic merge: keyed lists, $patch and primitive-list deletes."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, list):
            result[key] = [
                strategic_merge(None, v)
                for v in value
                if not (isinstance(v, dict) and "$patch" in v)
            ]
        else:
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result
