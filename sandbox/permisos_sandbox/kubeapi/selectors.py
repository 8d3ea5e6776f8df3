"""Label and field selectors with the syntax and semantics of the real API server."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

JSON = dict[str, Any]
Predicate = Callable[[JSON], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s+(in|notin)\s*\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|!=|=)\s*([A-Za-z0-9._-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*$")


def _split_terms(text: str) -> list[str]:
    """Splits on commas that are not inside an `in (...)` set."""
    terms, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t for t in terms if t.strip()]


def _label_term(term: str) -> Predicate:
    if m := _SET_RE.match(term):
        key, op = m.group(2), m.group(3)
        values = {v.strip() for v in m.group(4).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ_RE.match(term):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS_RE.match(term):
        negate, key = m.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(f"unable to parse requirement: {term!r}")


def label_selector(text: str | None) -> Predicate | None:
    """Returns a predicate over a whole object, or None when nothing is selected on."""
    if not text or not text.strip():
        return None
    terms = [_label_term(t) for t in _split_terms(text)]

    def match(obj: JSON) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(term(labels) for term in terms)

    return match


def field_value(obj: JSON, path: str) -> str:
    """A field's value as field selectors see it: missing is "", booleans lowercase."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, dict):
        # `source` on core events selects on source.component.
        return str(current.get("component", ""))
    return str(current)


def field_selector(text: str | None, allowed: frozenset[str]) -> Predicate | None:
    if not text or not text.strip():
        return None
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(text):
        m = re.match(r"^\s*([A-Za-z0-9._-]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path, op, value = m.groups()
        if path not in allowed:
            raise bad_request(f'field label not supported: "{path}"')
        checks.append((path, op == "!=", value))

    def match(obj: JSON) -> bool:
        return all((field_value(obj, p) == v) != negate for p, negate, v in checks)

    return match


def combine(*predicates: Predicate | None) -> Predicate | None:
    active = [p for p in predicates if p is not None]
    if not active:
        return None
    return lambda obj: all(p(obj) for p in active)
