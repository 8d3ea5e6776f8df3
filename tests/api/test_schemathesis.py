"""Property-based fuzzing of every operation in the API's own OpenAPI document with Schemathesis.

Cases are drawn synchronously from Schemathesis' Hypothesis strategies (bounded, derandomized, so CI
is repeatable), then sent through the async httpx client of the `api` fixture and checked for no
5xx and response schema conformance. Excluded: the Stripe webhook (signed) and operations that call
Stripe (payment creation, admin refund).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.api.conftest import Api

EXCLUDED = {
    ("POST", "/v1/webhooks/stripe"),
    ("POST", "/v1/applications/{id}/payments"),
    ("POST", "/v1/admin/applications/{id}/refund"),
}
# Run anonymously only: with the Bearer token it would revoke the session the rest of the run uses.
ANONYMOUS_ONLY = {("POST", "/v1/auth/logout")}
MAX_EXAMPLES = 25


def draw_cases(operation: Any) -> list[Any]:
    cases: list[Any] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def collect(case: Any) -> None:
        cases.append(case)

    collect()
    return cases


async def send(client: httpx.AsyncClient, case: Any, headers: dict[str, str]) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
    method, url = kwargs.pop("method"), kwargs.pop("url")
    allowed = {k: v for k, v in kwargs.items() if k in {"headers", "params", "json", "data"}}
    if "data" in allowed and not isinstance(allowed["data"], dict):
        allowed["content"] = allowed.pop("data")
    return await client.request(method, url, **allowed)


async def test_every_operation_conforms(api: Api, make_user: Callable[..., Any]) -> None:
    app = api.default_app
    schema = schemathesis.openapi.from_dict(app.openapi())
    user = await make_user()
    authed = api.client()
    anonymous = api.client()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        for case in draw_cases(operation):
            for client, headers in ((authed, user.bearer()), (anonymous, {})):
                if headers and (operation.method.upper(), operation.path) in ANONYMOUS_ONLY:
                    continue
                response = await send(client, case, headers)
                try:
                    case.validate_response(
                        response, checks=[not_a_server_error, response_schema_conformance]
                    )
                except Exception as exc:  # collected so one run reports every operation
                    failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
                    break
    assert not failures, "\n\n".join(failures[:20])
