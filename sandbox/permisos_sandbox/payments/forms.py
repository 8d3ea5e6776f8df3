"""Stripe's form encoding: `metadata[k]=v`, `payment_method_types[0]=card` (or `[]`), nested dicts.

Also the typed accessors the routes use to read parameters with Stripe's validation messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")

Params = dict[str, Any]


def _split(key: str) -> list[str]:
    match = _KEY.match(key)
    if match is None:
        return [key]
    return [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]


def parse(pairs: Iterable[tuple[str, str]]) -> Params:
    """Nest bracketed keys; dicts whose keys are all indexes become lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split(key)
        node = root
        for part in parts[:-1]:
            name = part or str(len(node))
            child = node.get(name)
            if not isinstance(child, dict):
                child = {}
                node[name] = child
            node = child
        node[parts[-1] or str(len(node))] = value
    result = _listify(root)
    assert isinstance(result, dict)
    return result


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {k: _listify(v) for k, v in value.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def reject_unknown(params: Mapping[str, Any], allowed: Iterable[str]) -> None:
    known = set(allowed) | {"expand"}
    for key in params:
        if key not in known:
            raise invalid(f"Received unknown parameter: {key}", code="parameter_unknown", param=key)


def get_str(params: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise invalid(f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {name}", code="parameter_invalid_string", param=name)
    return value


def get_int(params: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    raw = get_str(params, name, required=required)
    if raw is None:
        return None
    if not re.fullmatch(r"-?\d+", raw.strip()):
        raise invalid(f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    return int(raw)


def get_bool(params: Mapping[str, Any], name: str) -> bool:
    raw = get_str(params, name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise invalid(f"Invalid boolean: {raw}", code="parameter_invalid_boolean", param=name)
    return raw == "true"


def get_dict(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid object: {name}", code="parameter_invalid_object", param=name)
    return value


def get_list(params: Mapping[str, Any], name: str) -> list[str] | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"Invalid array: {name}", code="parameter_invalid_array", param=name)
    return list(value)


def metadata(params: Mapping[str, Any], current: Mapping[str, str] | None = None) -> dict[str, str]:
    """Stripe merges metadata; an empty value unsets a key, `metadata=""` unsets all."""
    raw = params.get("metadata")
    result = dict(current or {})
    if raw == "":
        return {}
    if raw is None:
        return result
    if not isinstance(raw, dict):
        raise invalid("Invalid object: metadata", code="parameter_invalid_object", param="metadata")
    if len(raw) > 50:
        raise invalid("Metadata can have at most 50 keys.", param="metadata")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise invalid(f"Invalid metadata value for {key}", param=f"metadata[{key}]")
        if len(key) > 40 or len(value) > 500:
            raise invalid(
                "Metadata keys are limited to 40 characters and values to 500.",
                param=f"metadata[{key}]",
            )
        if value == "":
            result.pop(key, None)
        else:
            result[key] = value
    return result
