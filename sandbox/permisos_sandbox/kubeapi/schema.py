"""Structural-schema handling for custom resources: pruning, defaulting and validation.

Messages and field paths follow kube-apiserver's so that clients and people see the same text.
"""

from __future__ import annotations

import contextlib
import copy
import re
from datetime import datetime
from typing import Any

from . import cel
from .errors import FieldError

JSON = dict[str, Any]
_ROOT_KEEP = {"apiVersion", "kind", "metadata"}


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def prune(value: Any, schema: JSON, path: str = "", root: bool = False) -> tuple[Any, list[str]]:
    """Drops fields the schema does not know; returns the value and the pruned paths."""
    pruned: list[str] = []
    if isinstance(value, dict):
        props: JSON = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        out: JSON = {}
        for key, item in value.items():
            sub_path = _child(path, key)
            if (root or embedded) and key in _ROOT_KEEP and (key == "metadata" or key not in props):
                out[key] = item
                continue
            if key in props:
                out[key], more = prune(item, props[key], sub_path)
                pruned += more
            elif isinstance(extra, dict):
                out[key], more = prune(item, extra, sub_path)
                pruned += more
            elif preserve or extra is True:
                out[key] = item
            else:
                pruned.append(sub_path)
        return out, pruned
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = []
        for index, item in enumerate(value):
            pruned_item, more = prune(item, schema["items"], f"{path}[{index}]")
            items.append(pruned_item)
            pruned += more
        return items, pruned
    return value, pruned


def apply_defaults(value: Any, schema: JSON) -> Any:
    """Fills in `default`s top-down, so defaults inside defaulted objects apply too."""
    if isinstance(value, dict):
        props: JSON = schema.get("properties") or {}
        for key, sub in props.items():
            if key in value and value[key] is None and not sub.get("nullable"):
                del value[key]
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(value):
                if key not in props:
                    value[key] = apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, schema: JSON) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    expected = schema.get("type")
    actual = _type_name(value)
    if not expected:
        return True
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return bool(expected == actual)


def _valid_format(fmt: str, value: str) -> bool:
    if fmt == "date-time":
        return bool(
            re.fullmatch(
                r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value
            )
        ) and _parses(value.replace(" ", "T").replace("z", "Z").replace("Z", "+00:00"))
    if fmt == "date":
        return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)) and _parses(value)
    if fmt == "uuid":
        return bool(re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", value))
    return True


def _parses(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


class Validator:
    """Validates one object (and its old version, for transition rules) against a schema."""

    def __init__(self, schema: JSON) -> None:
        self.schema = schema
        self.errors: list[FieldError] = []

    def validate(self, obj: JSON, old: JSON | None) -> list[FieldError]:
        self.errors = []
        self._walk(obj, self.schema, "", root=True)
        if not self.errors:
            # CEL runs only on structurally valid data, so rules never see wrong types.
            self._rules(obj, old, self.schema, "", has_old=old is not None)
        return self.errors

    def _add(self, path: str, reason: str, value: Any, detail: str = "") -> None:
        self.errors.append(FieldError(path, reason, value, detail))

    def _walk(self, value: Any, schema: JSON, path: str, root: bool = False) -> None:
        if value is None:
            if not schema.get("nullable") and schema.get("type"):
                self._add(
                    path,
                    "FieldValueTypeInvalid",
                    "null",
                    f'{path} in body must be of type {schema["type"]}: "null"',
                )
            return
        if not _type_ok(value, schema):
            expected = schema.get("type") or "integer or string"
            actual = _type_name(value)
            self._add(
                path,
                "FieldValueTypeInvalid",
                actual,
                f'{path} in body must be of type {expected}: "{actual}"',
            )
            return
        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(_quote(v) for v in schema["enum"])
            self._add(path, "FieldValueNotSupported", value, f"supported values: {supported}")
        if isinstance(value, str):
            self._string(value, schema, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, schema, path)
        elif isinstance(value, list):
            self._array(value, schema, path)
        elif isinstance(value, dict):
            self._object(value, schema, path, root)

    def _string(self, value: str, schema: JSON, path: str) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            self._add(
                path,
                "FieldValueInvalid",
                value,
                f"{path} in body should be at least {schema['minLength']} chars long",
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self._add(
                path,
                "FieldValueTooLong",
                value,
                f"may not be more than {schema['maxLength']} bytes",
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            self._add(
                path,
                "FieldValueInvalid",
                value,
                f"{path} in body should match '{schema['pattern']}'",
            )
        fmt = schema.get("format")
        if fmt and not _valid_format(fmt, value):
            self._add(
                path,
                "FieldValueInvalid",
                value,
                f"{path} in body must be of type {fmt}: {_quote(value)}",
            )

    def _number(self, value: float, schema: JSON, path: str) -> None:
        if "minimum" in schema:
            low = schema["minimum"]
            if value < low or (schema.get("exclusiveMinimum") and value == low):
                word = (
                    "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
                )
                self._add(
                    path, "FieldValueInvalid", value, f"{path} in body should be {word} {low}"
                )
        if "maximum" in schema:
            high = schema["maximum"]
            if value > high or (schema.get("exclusiveMaximum") and value == high):
                word = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
                self._add(
                    path, "FieldValueInvalid", value, f"{path} in body should be {word} {high}"
                )
        if "multipleOf" in schema and value % schema["multipleOf"] != 0:
            self._add(
                path,
                "FieldValueInvalid",
                value,
                f"{path} in body should be a multiple of {schema['multipleOf']}",
            )

    def _array(self, value: list[Any], schema: JSON, path: str) -> None:
        if "minItems" in schema and len(value) < schema["minItems"]:
            self._add(
                path,
                "FieldValueInvalid",
                len(value),
                f"{path} in body should have at least {schema['minItems']} items",
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self._add(
                path,
                "FieldValueTooMany",
                len(value),
                f"must have at most {schema['maxItems']} items",
            )
        list_type = schema.get("x-kubernetes-list-type")
        seen: list[Any] = []
        for index, item in enumerate(value):
            identity: Any = item
            if list_type == "map" and isinstance(item, dict):
                identity = {k: item.get(k) for k in schema.get("x-kubernetes-list-map-keys", [])}
            if list_type in ("set", "map"):
                if identity in seen:
                    self._add(f"{path}[{index}]", "FieldValueDuplicate", identity)
                seen.append(identity)
            if isinstance(schema.get("items"), dict):
                self._walk(item, schema["items"], f"{path}[{index}]")

    def _object(self, value: JSON, schema: JSON, path: str, root: bool) -> None:
        props: JSON = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in value:
                self._add(_child(path, key), "FieldValueRequired", None)
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self._add(
                path,
                "FieldValueInvalid",
                len(value),
                f"{path} in body should have at least {schema['minProperties']} properties",
            )
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self._add(
                path,
                "FieldValueTooMany",
                len(value),
                f"must have at most {schema['maxProperties']} items",
            )
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if root and key == "metadata":
                continue
            if key in props:
                self._walk(item, props[key], _child(path, key))
            elif isinstance(extra, dict):
                self._walk(item, extra, _child(path, key))

    def _rules(self, value: Any, old: Any, schema: JSON, path: str, has_old: bool) -> None:
        for rule in schema.get("x-kubernetes-validations") or []:
            self._rule(rule, value, old, schema, path, has_old)
        if isinstance(value, dict):
            props: JSON = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            old_map = old if isinstance(old, dict) else {}
            for key, item in value.items():
                sub = props.get(key) or (extra if isinstance(extra, dict) else None)
                if sub is not None and not (path == "" and key == "metadata"):
                    self._rules(
                        item, old_map.get(key), sub, _child(path, key), has_old and key in old_map
                    )
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            # List items correlate with old ones only for map lists; others are new values.
            for index, item in enumerate(value):
                old_item, found = _correlate(item, old, schema) if has_old else (None, False)
                self._rules(item, old_item, schema["items"], f"{path}[{index}]", found)

    def _rule(
        self, rule: JSON, value: Any, old: Any, schema: JSON, path: str, has_old: bool
    ) -> None:
        expression = rule.get("rule", "")
        transition = cel.is_transition_rule(expression)
        if transition and not has_old:
            return
        subject = _cel_view(value, path == "")
        old_subject = _cel_view(old, path == "") if transition else None
        field = path
        if rule.get("fieldPath"):
            field = (
                path + rule["fieldPath"]
                if rule["fieldPath"].startswith("[")
                else _child(path, rule["fieldPath"].lstrip("."))
            )
        try:
            ok = cel.check(expression, subject, old_subject, transition)
        except ValueError as exc:
            self._add(
                field, "FieldValueInvalid", _type_name(value), f"rule evaluation error: {exc}"
            )
            return
        if ok:
            return
        message = rule.get("message") or f"failed rule: {expression}"
        if rule.get("messageExpression"):
            with contextlib.suppress(ValueError):
                message = str(
                    cel.evaluate(rule["messageExpression"], subject, old_subject, transition)
                )
        reason = rule.get("reason") or "FieldValueInvalid"
        shown = (
            _type_name(value) if reason in ("FieldValueInvalid", "FieldValueDuplicate") else None
        )
        self._add(field, reason, shown, message)


def _correlate(item: Any, old: Any, schema: JSON) -> tuple[Any, bool]:
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not keys or not isinstance(old, list):
        return None, False
    if not isinstance(item, dict):
        return None, False
    for candidate in old:
        if isinstance(candidate, dict) and all(candidate.get(k) == item.get(k) for k in keys):
            return candidate, True
    return None, False


def _cel_view(value: Any, root: bool) -> Any:
    """At the root, CEL sees only metadata.name and metadata.generateName, as in kube."""
    if not root or not isinstance(value, dict):
        return value
    view = dict(value)
    meta = value.get("metadata") or {}
    view["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return view


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return str(value)
