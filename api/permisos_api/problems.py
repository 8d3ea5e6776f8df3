"""RFC 9457 problem documents: every error the API answers, including the framework's own.

Each problem type is a URI under PROBLEM_BASE; the slugs and their meaning are listed in PROBLEMS
(and in api/README.md), so a client can switch on `type` rather than on English text.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .db import database_cause

PROBLEM_BASE = "https://permisosdigitales.mx/problems/"
MEDIA_TYPE = "application/problem+json"

log = logging.getLogger("permisos_api")

# slug -> (status, title)
PROBLEMS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "Bad request"),
    "validation-error": (422, "The request is not valid"),
    "authentication-required": (401, "Authentication required"),
    "invalid-credentials": (401, "Email or password is wrong"),
    "invalid-token": (400, "The link is invalid or has expired"),
    "email-not-verified": (403, "The email address is not verified yet"),
    "account-disabled": (403, "The account is disabled"),
    "csrf-failed": (403, "CSRF token missing or wrong"),
    "forbidden": (403, "Not allowed"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "not-acceptable": (406, "Not acceptable"),
    "invalid-state": (409, "The resource is not in a state that allows this"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "rate-limited": (429, "Too many requests"),
    "payment-declined": (402, "The payment was declined"),
    "invalid-signature": (400, "The webhook signature is missing, wrong or too old"),
    "account-locked": (429, "Too many failed logins; the account is locked for a while"),
    "internal-error": (500, "Internal error"),
    "payment-provider-error": (502, "The payment provider failed; try again"),
    "service-unavailable": (503, "Service temporarily unavailable"),
}

_BY_STATUS = {status: slug for slug, (status, _) in reversed(PROBLEMS.items())}


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `curp`.")
    rule: str = Field(description="Machine-readable rule that failed, e.g. `curp_check_digit`.")
    detail: str = Field(description="Human-readable explanation.")


class Problem(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_BASE + "validation-error",
                    "title": "The request is not valid",
                    "status": 422,
                    "detail": "1 field is not valid",
                    "instance": "/v1/applications",
                    "errors": [
                        {
                            "field": "curp",
                            "rule": "curp_check_digit",
                            "detail": "The CURP's check digit does not match",
                        }
                    ],
                }
            ]
        }
    )

    type: str = Field(description=f"URI of the problem type, under {PROBLEM_BASE}.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldError] | None = Field(
        default=None, description="For validation problems: each field and the rule it broke."
    )


class ProblemError(Exception):
    """Raised anywhere in a request; answered as a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or slug)
        self.slug = slug
        self.status, self.title = PROBLEMS[slug]
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def validation_problem(errors: list[FieldError]) -> ProblemError:
    n = len(errors)
    return ProblemError(
        "validation-error", f"{n} field{'s' if n != 1 else ''} not valid", errors=errors
    )


def problem_response(
    request: Request,
    slug: str,
    detail: str | None = None,
    *,
    status: int | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    default_status, title = PROBLEMS[slug]
    body = Problem(
        type=PROBLEM_BASE + slug,
        title=title,
        status=status or default_status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=body.status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring problem documents for these statuses."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        slugs = [slug for slug, (s, _) in PROBLEMS.items() if s == status]
        out[status] = {
            "model": Problem,
            "description": "Problem document: " + ", ".join(f"`{s}`" for s in slugs),
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return out


def field_path(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request, exc.slug, exc.detail, errors=exc.errors, headers=exc.headers or None
    )


# The detail of the 400 FastAPI raises when it cannot read a request body.
FRAMEWORK_BODY_ERROR = "There was an error parsing the body"


def _sends_other_than_json(request: Request) -> bool:
    """A body came, and the request does not say it is JSON (an empty body is just missing)."""
    sent = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in (
        request.headers
    )
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return sent and not (media == "application/json" or media.endswith("+json"))


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    if _sends_other_than_json(request) and any(tuple(e["loc"])[:1] == ("body",) for e in raw):
        # FastAPI reads a JSON body only when the request says it is JSON.
        return problem_response(
            request,
            "unsupported-media-type",
            "Send the body as JSON with Content-Type: application/json.",
            errors=[
                FieldError(field="body", rule="media_type", detail="Expected application/json")
            ],
        )
    errors = []
    for err in raw:
        # Never echo the rejected input: it may be a CURP or a password.
        if err["type"] == "json_invalid":
            # Pydantic's location is a character offset, which names no field.
            offset = tuple(err["loc"])[1:2]
            where = f" (at character {offset[0]})" if offset else ""
            errors.append(
                FieldError(field="body", rule="json_invalid", detail=f"Not valid JSON{where}")
            )
            continue
        errors.append(
            FieldError(field=field_path(tuple(err["loc"])), rule=err["type"], detail=err["msg"])
        )
    n = len(errors)
    return problem_response(
        request,
        "validation-error",
        f"{n} field{'s' if n != 1 else ''} not valid",
        errors=errors,
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = _BY_STATUS.get(exc.status_code, "bad-request" if exc.status_code < 500 else "")
    slug = slug or "internal-error"
    detail = exc.detail if isinstance(exc.detail, str) else None
    errors = None
    if exc.status_code == 400 and detail == FRAMEWORK_BODY_ERROR:
        # FastAPI could not decode the body (not UTF-8, say).
        detail = "The body could not be read: send UTF-8 JSON."
        errors = [FieldError(field="body", rule="body_unreadable", detail="Not UTF-8 JSON")]
    return problem_response(
        request,
        slug,
        detail,
        status=exc.status_code,
        errors=errors,
        headers=dict(exc.headers or {}) or None,
    )


async def _on_database(request: Request, exc: Exception) -> JSONResponse:
    # Only connection-level failures are an outage; anything else is a bug (500).
    if isinstance(exc, DBAPIError) and not (
        isinstance(exc, OperationalError) or exc.connection_invalidated
    ):
        return await _on_unexpected(request, exc)
    log.warning("database unavailable: %s", database_cause(exc))
    return problem_response(
        request,
        "service-unavailable",
        "The database is unavailable; try again shortly.",
        headers={"Retry-After": "5"},
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return problem_response(request, "internal-error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(DBAPIError, _on_database)
    app.add_exception_handler(PoolTimeoutError, _on_database)
    app.add_exception_handler(Exception, _on_unexpected)
