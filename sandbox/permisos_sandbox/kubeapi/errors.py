"""metav1.Status errors, shaped like kube-apiserver's so clients branch on reason and code."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# Go's field.ErrorType strings, keyed by the cause reason kube puts in details.causes[].
_TYPE_TEXT = {
    "FieldValueRequired": "Required value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueTypeInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueNotFound": "Not found",
}
_NO_VALUE = object()


def go_value(value: Any) -> str:
    """Renders a bad value the way Go's %#v does in field errors."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(json.dumps(value, separators=(",", ":")))


@dataclass
class FieldError:
    """One field.Error: where, what kind of problem, the offending value, and why."""

    field: str
    reason: str = "FieldValueInvalid"
    value: Any = _NO_VALUE
    detail: str = ""

    def body(self) -> str:
        text = _TYPE_TEXT.get(self.reason, "Invalid value")
        no_value = self.reason in (
            "FieldValueRequired",
            "FieldValueForbidden",
            "FieldValueTooLong",
            "FieldValueNotFound",
        )
        if not no_value and self.value is not _NO_VALUE:
            text = f"{text}: {go_value(self.value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()


_REASON_BY_CODE = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


@dataclass
class ApiError(Exception):
    """An error that becomes a metav1.Status response body."""

    code: int
    message: str
    reason: str = ""
    details: JSON = field(default_factory=dict)

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason or _REASON_BY_CODE.get(self.code, ""),
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(resource: str, group: str, name: str) -> dict[str, Any]:
    """Status details as kube fills them: the group only for non-core resources."""
    return (
        {"name": name, "group": group, "kind": resource}
        if group
        else {"name": name, "kind": resource}
    )


def not_found(resource: str, group: str, name: str) -> ApiError:
    qualified = _qualified(resource, group)
    return ApiError(
        404,
        f'{qualified} "{name}" not found',
        "NotFound",
        _details(resource, group, name),
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    qualified = _qualified(resource, group)
    return ApiError(
        409,
        f'{qualified} "{name}" already exists',
        "AlreadyExists",
        _details(resource, group, name),
    )


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    qualified = _qualified(resource, group)
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
        "Conflict",
        _details(resource, group, name),
    )


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    qualified = _qualified(kind, group)
    joined = ", ".join(str(e) for e in errors)
    summary = joined if len(errors) == 1 else f"[{joined}]"
    causes = [{"reason": e.reason, "message": e.body(), "field": e.field} for e in errors]
    details: JSON = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    return ApiError(422, f'{qualified} "{name}" is invalid: {summary}', "Invalid", details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def gone(message: str) -> ApiError:
    return ApiError(410, message, "Expired")
