"""No credential in an answer, a log line or /metrics of the API, also when things go wrong: the
Stripe secret key, the webhook secret, the signing secret, the database password, session and
reset tokens, passwords. The API runs with its logs at DEBUG (an engineer may turn
that on in production) while the test drives it through the happy path and through errors:
validation, forged webhooks, Stripe refusing the key or unreachable, a declined card, the
database unreachable, revoked sessions, and the maintenance commands' settings errors."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import make_url

from tests.api.conftest import PASSWORD, User, command_line, link_token, read_mail
from tests.api.payments_support import API_KEY, WEBHOOK_SECRET, Pay

# Any password: the tests' PostgreSQL trusts loopback and never asks for it, so it travels in
# the URL as a real one would, unused. A server of PERMISOS_TEST_DATABASE_URL keeps its own.
DB_PASSWORD = f"db-{secrets.token_hex(8)}"


@pytest.fixture
def database_url(database_url: str) -> str:
    url = make_url(database_url)
    return (url if url.password else url.set(password=DB_PASSWORD)).render_as_string(
        hide_password=False
    )


class Leaks:
    """Everything the API said where someone else may read it, and the credentials it held."""

    def __init__(self, caplog: pytest.LogCaptureFixture, database_url: str) -> None:
        self.caplog = caplog
        self.said: dict[str, str] = {}
        password = make_url(database_url).password
        assert password
        self.credentials = {
            "Stripe secret key": API_KEY,
            "webhook secret": WEBHOOK_SECRET,
            "database password": str(password),
            "signing secret": "test-signing-secret",
            "password": PASSWORD,
        }

    def keep(self, what: str, r: httpx.Response) -> httpx.Response:
        """An error answer: its body and headers."""
        assert r.status_code >= 400, (what, r.status_code, r.text)
        self.said[f"{what}: {r.status_code}"] = f"{r.headers} {r.text}"
        return r

    def found(self) -> list[tuple[str, str]]:
        formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
        for n, record in enumerate(self.caplog.records):
            # The message with its traceback, and every field a JSON formatter would write.
            self.said[f"log {n} {record.name}"] = f"{formatter.format(record)} {record.__dict__}"
        return [
            (name, where)
            for name, value in self.credentials.items()
            for where, text in self.said.items()
            if value in text
        ]


async def test_no_credential_in_answers_logs_or_metrics(
    pay: Pay, make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture, database_url: str
) -> None:
    caplog.set_level(logging.DEBUG)
    leaks = Leaks(caplog, database_url)
    creds = leaks.credentials
    api = pay.api
    # The happy path, every credential in use: an account, its sessions, a card paid, Stripe's
    # signed webhooks applied.
    user: User = await make_user()
    leaks.credentials |= {"session cookie": user.client.cookies["permisos_session"]}
    leaks.credentials |= {"bearer token": user.token}
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201 and r.json()["status"] == "succeeded", r.text
    await pay.sim.wait_for_deliveries()
    await pay.status_becomes(user, app_id, "paid")

    # Validation errors, with credentials in the fields that were refused.
    client = api.client(pay.app)
    for body in (
        {"email": "not-an-email", "password": creds["password"]},
        {"email": user.email, "password": creds["Stripe secret key"]},  # pasted in the wrong box
        {"email": user.email, "password": "x" * 1025 + creds["password"]},
        {"email": creds["webhook secret"], "password": 12},
    ):
        r = await client.post("/v1/auth/login", json=body)
        if r.status_code >= 400:
            leaks.keep("login refused", r)
    leaks.keep(
        "register refused",
        await client.post("/v1/auth/register", json={"email": user.email, "password": "corta"}),
    )
    # A reset link's token is a credential until used: a refused new password must not echo it.
    await client.post("/v1/auth/password-reset/request", json={"email": user.email})
    reset = link_token(read_mail(api.settings.mail_outbox_dir, user.email)[-1], "/restablecer")
    leaks.credentials |= {"reset token": reset}
    leaks.keep(
        "reset refused",
        await client.post(
            "/v1/auth/password-reset/confirm", json={"token": reset, "password": "corta"}
        ),
    )

    # Forged and stale webhooks.
    other_app = await pay.new_application(user)
    event = {"id": "evt_secret_probe", "type": "payment_intent.succeeded", "data": {}}
    leaks.keep("webhook forged", await pay.post_event(event, secret="whsec_someone_else"))
    leaks.keep("webhook stale", await pay.post_event(event, timestamp=1))
    leaks.keep("webhook unsigned", await pay.deliver("{}", None))

    # Stripe refuses the key, Stripe is unreachable, a card is declined.
    wrong_key = f"sk_test_wrong_{secrets.token_hex(8)}"
    leaks.credentials |= {"wrong Stripe key": wrong_key}
    for base, key in ((pay.sim.url, wrong_key), ("http://127.0.0.1:9", API_KEY)):
        elsewhere = api.app(stripe_secret_key=SecretStr(key), stripe_api_base=base)
        r = await api.client(elsewhere).post(
            f"/v1/applications/{other_app}/payments",
            json={"method": "card", "payment_method": "pm_card_visa"},
            headers=user.bearer(),
        )
        leaks.keep(f"Stripe at {base}", r)
    leaks.keep(
        "card declined",
        await pay.pay(user, other_app, method="card", payment_method="pm_card_chargeDeclined"),
    )

    # The database unreachable, its URL holding the password.
    down = make_url(database_url).set(host="127.0.0.1", port=9)
    gone = api.app(
        database_url=down.render_as_string(hide_password=False), database_connect_timeout_seconds=1
    )
    gone_client = api.client(gone)
    leaks.keep("readyz, database down", await gone_client.get("/readyz"))
    leaks.keep(
        "login, database down",
        await gone_client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD}),
    )

    # Sessions ended or never valid.
    r = await user.client.post("/v1/auth/logout", headers=user.bearer())
    assert r.status_code == 204
    leaks.keep("revoked bearer", await client.get("/v1/auth/session", headers=user.bearer()))
    leaks.keep(
        "forged bearer",
        await client.get("/v1/auth/session", headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"}),
    )

    # What Prometheus reads.
    leaks.said["metrics"] = await pay.metrics()
    assert "permisos_webhook_signature_failures_total" in leaks.said["metrics"]
    assert len(caplog.records) > 50  # DEBUG logs were captured, the API's among them
    assert any(r.name.startswith("permisos_api") for r in caplog.records)
    found = leaks.found()
    print(f"\n{len(leaks.said)} answers, log records and scrapes; {len(creds)} credentials")
    assert found == []


def test_the_commands_never_print_a_credential() -> None:
    """A CronJob's log when its settings are wrong or its database cannot be reached."""
    password = f"db-{secrets.token_hex(8)}"
    stripe_key = f"sk_live_{secrets.token_hex(12)}"
    cases = {
        # The secret key put in the publishable key's variable by mistake.
        "misplaced key": {"PERMISOS_API_STRIPE_PUBLISHABLE_KEY": stripe_key},
        "unreachable": {
            "PERMISOS_API_DATABASE_URL": f"postgresql+psycopg://permisos:{password}@127.0.0.1:9/x"
        },
        "not PostgreSQL": {"PERMISOS_API_DATABASE_URL": f"mysql://permisos:{password}@db/x"},
    }
    for case, env in cases.items():
        done = command_line("permisos_api.reconcile", env=env)
        assert done.returncode != 0, case
        said = done.stdout + done.stderr
        assert said.strip(), case  # it does say what is wrong
        assert password not in said and stripe_key not in said, (case, said)
