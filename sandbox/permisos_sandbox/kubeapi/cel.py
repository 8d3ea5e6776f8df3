"""CEL `x-kubernetes-validations` rules evaluated with celpy, compiled once per rule."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import celpy
from celpy.adapter import json_to_cel

_OLD_SELF = re.compile(r"\boldSelf\b")
_ENV = celpy.Environment()


def is_transition_rule(rule: str) -> bool:
    """kube evaluates rules that mention oldSelf only on updates that have an old value."""
    return bool(_OLD_SELF.search(rule))


@lru_cache(maxsize=512)
def _program(expression: str) -> Any:
    return _ENV.program(_ENV.compile(expression))


def evaluate(
    expression: str, self_value: Any, old_value: Any = None, with_old: bool = False
) -> Any:
    """Returns the CEL result as a plain value; raises ValueError on compile or runtime errors."""
    activation: dict[str, Any] = {"self": json_to_cel(self_value)}
    if with_old:
        activation["oldSelf"] = json_to_cel(old_value)
    try:
        result = _program(expression).evaluate(activation)
    except Exception as exc:  # celpy raises several unrelated types for bad rules
        raise ValueError(str(exc)) from exc
    if isinstance(result, Exception):
        raise ValueError(str(result))
    return result


def check(expression: str, self_value: Any, old_value: Any = None, with_old: bool = False) -> bool:
    result = evaluate(expression, self_value, old_value, with_old)
    if not isinstance(result, celpy.celtypes.BoolType | bool):
        raise ValueError(f"rule does not evaluate to a bool: {expression}")
    return bool(result)
