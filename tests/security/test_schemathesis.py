"""Property-based fuzzing of the API's own OpenAPI document with Schemathesis, as an applicant,
as an admin and anonymously: no 5xx, every answer as the document says.

Two runs over the same app (served with the payments simulator, so paying and refunding reach
Stripe's stand-in):
- each operation alone: cases drawn synchronously from Schemathesis' Hypothesis strategies,
  valid ones and ones the document rules out (which must be refused with a 4xx), and sent
  through the in-process client, once per caller;
- stateful: Schemathesis' state machine follows the document's links (create an application,
  then read, edit, pay, cancel it; an admin reads, retries, refunds it, and disables its owner),
  over HTTP, as the applicant and as the admin.
Bounded and derandomized, so CI is repeatable. Only the Stripe webhook's bodies are Stripe's
(signed); fuzzed, each is refused (400) like any unsigned one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api import payments_support
from tests.api.conftest import APPLICATION, PASSWORD, Api, User
from tests.api.payments_support import Pay

Make = Callable[..., Any]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 20  # cases per operation, mode and caller
# Valid data, and data the document rules out, which must then be refused with a 4xx.
MODES = {GenerationMode.POSITIVE: [], GenerationMode.NEGATIVE: [negative_data_rejection]}
SCENARIOS = 30  # state machine runs per caller
STEPS = 10  # operations per scenario at most
BOUNDED = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
)
# Logging out ends the session it is sent with: each case gets a throwaway one.
THROWAWAY_SESSION = {("POST", "/v1/auth/logout")}


@pytest.fixture
async def served(api: Api) -> AsyncIterator[Pay]:
    # The fuzzer logs in and asks for resets far more than a person would.
    pay = await payments_support.start(
        api,
        login_limit_per_account=100_000,
        login_limit_per_address=100_000,
        password_reset_limit_per_account=100_000,
        password_reset_limit_per_address=100_000,
        register_limit_per_address=100_000,
    )
    try:
        yield pay
    finally:
        await payments_support.stop(pay)


def draw_cases(operation: Any, mode: GenerationMode) -> list[Any]:
    cases: list[Any] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(BOUNDED, max_examples=MAX_EXAMPLES)
    def collect(case: Any) -> None:
        cases.append(case)

    try:
        collect()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, operation.label
        return []  # no input the document could rule out (no parameters, no body)
    return cases


async def send(client: httpx.AsyncClient, case: Any, headers: dict[str, str]) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
    method, url = kwargs.pop("method"), kwargs.pop("url")
    allowed = {k: v for k, v in kwargs.items() if k in {"headers", "params", "json", "data"}}
    if "data" in allowed and not isinstance(allowed["data"], dict):
        allowed["content"] = allowed.pop("data")
    client.cookies.clear()
    return await client.request(method, url, **allowed)


async def bearer(api: Api, app: Any, user: User) -> dict[str, str]:
    r = await api.client(app).post(
        "/v1/auth/login", json={"email": user.email, "password": PASSWORD, "issue_bearer": True}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_every_operation_as_each_caller(served: Pay, make_user: Make) -> None:
    app = served.app
    schema = schemathesis.openapi.from_dict(app.openapi())
    callers = {"applicant": await make_user(), "admin": await make_user("admin"), "anonymous": None}
    clients = {name: served.api.client(app) for name in callers}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    failures: list[str] = []
    sent = 0
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        for mode, case in [(m, c) for m in MODES for c in draw_cases(operation, m)]:
            for name, user in callers.items():
                headers = {} if user is None else user.bearer()
                if user is not None and key in THROWAWAY_SESSION:
                    headers = await bearer(served.api, app, user)
                response = await send(clients[name], case, headers)
                sent += 1
                try:
                    case.validate_response(response, checks=CHECKS + MODES[mode])
                except Exception as exc:  # collected so one run reports every operation
                    failures.append(f"{key[0]} {key[1]} as {name}: {exc}")
    print(f"\n{len(operations)} operations, {sent} requests")
    assert not failures, "\n\n".join(failures[:20])


@dataclass
class Tally:
    steps: int = 0
    linked: int = 0  # steps whose input came from an earlier answer through a link
    links: set[str] = field(default_factory=set)


def linked_schema(app: Any, base_url: str) -> Any:
    """The document with only its own links (no inferred ones: one would revoke the very
    session the machine uses), over HTTP. Half the applications drawn are the document's valid
    example, so scenarios get past creation and follow the links (random data rarely makes a
    CURP with its check digit)."""
    # The session the machine uses must outlive it: logging out is fuzzed alone, above.
    schema = schemathesis.openapi.from_dict(app.openapi()).exclude(
        method="POST", path="/v1/auth/logout"
    )
    schema.config.update(base_url=base_url)
    schema.config.phases.stateful.inference.algorithms = []

    @schema.hook("flatmap_body")
    def valid_sometimes(context: Any, body: Any) -> Any:
        operation = context.operation
        if (operation.method.upper(), operation.path) == ("POST", "/v1/applications"):
            return st.sampled_from([body, APPLICATION])
        return st.just(body)

    return schema


def run_stateful(schema: Any, headers: dict[str, str], tally: Tally) -> None:
    """The state machine over HTTP with this caller's headers (blocking: run it in a thread)."""
    machine = schema.as_state_machine()

    class AsCaller(machine):  # type: ignore[valid-type, misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def step(self, input: Any) -> Any:
            tally.steps += 1
            if input.transition is not None and input.is_applied:
                tally.linked += 1
                tally.links.add(input.transition.id)
            return super().step(input)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    AsCaller.run(settings=settings(BOUNDED, max_examples=SCENARIOS, stateful_step_count=STEPS))


@pytest.mark.parametrize("role", ["client", "admin"])
async def test_stateful_links_as_an_applicant_and_as_an_admin(
    served: Pay, make_user: Make, role: str
) -> None:
    user: User = await make_user(role)
    schema = linked_schema(served.app, served.url)
    tally = Tally()
    # Off the event loop, which the payments simulator runs on.
    await asyncio.to_thread(run_stateful, schema, user.bearer(), tally)
    print(f"\n{role}: {tally.steps} steps, {tally.linked} through links: {sorted(tally.links)}")
    created = {link for link in tally.links if link.startswith("POST /v1/applications -> [201]")}
    assert len(created) >= 3, f"scenarios hardly followed the links of a new application: {created}"
    # The admin's handlers are reached through links too: into one application, its refund or
    # retry, and from it to its owner's account.
    admin = {link.rsplit(" -> ", 1)[1] for link in tally.links if " /v1/admin/" in link}
    if role == "admin":
        assert {
            "GET /v1/admin/applications/{application_id}",
            "POST /v1/admin/users/{user_id}/disable",
        } <= admin, sorted(admin)
