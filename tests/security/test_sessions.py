"""Sessions and accounts against OWASP ASVS 4.0 level 2 where it applies: a fresh token at each
login (3.2.1, fixation), logout ending the session on the server (3.3.1), reset links short-lived
and single-use and a reset ending the other sessions (2.5, 3.3.3), lockout and rate limits that
hold under 50 parallel attempts (2.2.1). Enumeration is in test_enumeration.py."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.api.conftest import (
    PASSWORD,
    Api,
    link_token,
    login,
    new_address,
    read_mail,
    register_and_verify,
    unique_email,
)
from tests.security.answers import WRONG, kind

SESSION = "/v1/auth/session"


async def presented(api: Api, token: str, via: str) -> int:
    """The status of "who am I" for a token presented as a cookie or a Bearer token, from a
    client of its own."""
    header = {"Cookie": f"permisos_session={token}"} if via == "cookie" else {}
    header = header or {"Authorization": f"Bearer {token}"}
    r = await api.client().get(SESSION, headers=header)
    if r.status_code == 200:
        assert r.json()["authenticated_by"] == via
    else:  # it was presented and refused, not missing
        assert r.json()["detail"] != "Log in first.", r.text
    return r.status_code


def session_cookie(r: httpx.Response) -> str:
    for header in r.headers.get_list("set-cookie"):
        if header.startswith("permisos_session="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError("no session cookie set")


async def test_login_always_issues_a_fresh_session_token(api: Api, outbox: Path) -> None:
    client = api.client()
    address = await register_and_verify(client, outbox)

    # A token planted before login (someone else's choice) is never adopted.
    planted = "attacker-chosen-session-token-0123456789"
    r = await client.post(
        "/v1/auth/login",
        json={"email": address, "password": PASSWORD},
        headers={"Cookie": f"permisos_session={planted}"},
    )
    assert r.status_code == 200, r.text
    first = session_cookie(r)
    assert first != planted
    assert await presented(api, planted, "cookie") == 401
    assert await presented(api, first, "cookie") == 200

    # Logging in again over a live session issues another token; so does each Bearer login.
    r = await login(client, address)
    second = session_cookie(r)
    bearers = []
    for _ in range(2):
        r = await client.post(
            "/v1/auth/login", json={"email": address, "password": PASSWORD, "issue_bearer": True}
        )
        bearers.append(r.json()["token"])
    tokens = {planted, first, second, *bearers}
    assert len(tokens) == 5
    # The database holds none of them, only their digests.
    dsn = api.settings.database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn:
        stored = {row[0] for row in conn.execute("SELECT token_sha256 FROM sessions")}
    assert not tokens & stored


async def test_logout_ends_the_session_on_the_server_for_cookie_and_bearer(
    api: Api, outbox: Path
) -> None:
    client = api.client()
    address = await register_and_verify(client, outbox)
    r = await login(client, address)
    cookie, csrf = session_cookie(r), r.json()["csrf_token"]
    r = await api.client().post(
        "/v1/auth/login", json={"email": address, "password": PASSWORD, "issue_bearer": True}
    )
    bearer = r.json()["token"]
    r = await api.client().post(
        "/v1/auth/login", json={"email": address, "password": PASSWORD, "issue_bearer": True}
    )
    other = r.json()["token"]

    r = await client.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    # Kept by whoever copied it, the cookie's token is dead either way it is presented.
    assert [await presented(api, cookie, via) for via in ("cookie", "bearer")] == [401, 401]

    r = await api.client().post("/v1/auth/logout", headers={"Authorization": f"Bearer {bearer}"})
    assert r.status_code == 204
    assert [await presented(api, bearer, via) for via in ("cookie", "bearer")] == [401, 401]
    # Logging out is per session: the account's other one still works.
    assert await presented(api, other, "bearer") == 200
    dsn = api.settings.database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn:
        revoked = conn.execute(
            "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE u.email = %s AND s.revoked_at IS NOT NULL",
            (address,),
        ).fetchone()
    assert revoked == (2,)


async def reset_link(api: Api, outbox: Path, address: str, app: Any = None) -> str:
    r = await api.client(app).post("/v1/auth/password-reset/request", json={"email": address})
    assert r.status_code == 202, r.text
    return link_token(read_mail(outbox, address)[-1], "/restablecer")


async def confirm(api: Api, token: str, password: str, app: Any = None) -> httpx.Response:
    return await api.client(app).post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": password}
    )


async def test_reset_links_are_short_lived_single_use_and_end_every_session(
    api: Api, outbox: Path
) -> None:
    assert api.settings.password_reset_ttl_seconds <= 3600  # the default: an hour at most
    address = await register_and_verify(api.client(), outbox)
    r = await login(api.client(), address)
    cookie = session_cookie(r)
    r = await api.client().post(
        "/v1/auth/login", json={"email": address, "password": PASSWORD, "issue_bearer": True}
    )
    bearer = r.json()["token"]

    # Expired: a link of a one-second lifetime, used after it.
    brief = api.app(password_reset_ttl_seconds=1)
    expired = await reset_link(api, outbox, address, brief)
    await asyncio.sleep(2.1)
    r = await confirm(api, expired, "Caducado-caballo-7", brief)
    assert kind(r) == "400 invalid-token"
    assert (await login(api.client(), address)).status_code == 200  # the password stayed

    # Two links asked for; the second used; then neither works again.
    earlier = await reset_link(api, outbox, address)
    later = await reset_link(api, outbox, address)
    assert (await confirm(api, later, "Nuevo-caballo-correcto-8")).status_code == 204
    for token in (later, earlier):
        assert kind(await confirm(api, token, "Otro-intento-caballo-9")) == "400 invalid-token"
    # The reset ended every session (ASVS 3.3.3: the API ends them all, the one who reset
    # logs in again with the new password).
    assert await presented(api, cookie, "cookie") == 401
    assert await presented(api, bearer, "bearer") == 401
    assert kind(await login(api.client(), address)) == "401 invalid-credentials"
    r = await api.client().post(
        "/v1/auth/login", json={"email": address, "password": "Nuevo-caballo-correcto-8"}
    )
    assert r.status_code == 200


async def in_parallel(requests: list[Any]) -> tuple[Counter[str], float]:
    """Fires the requests at once; how many answers of each kind, and the seconds it took."""
    started = time.perf_counter()
    answers = await asyncio.gather(*requests)
    return Counter(kind(r) for r in answers), time.perf_counter() - started


async def test_lockout_holds_under_50_parallel_wrong_passwords(api: Api, outbox: Path) -> None:
    threshold = 5
    # Only the lockout can stop them: rate limits out of the way, each from its own address.
    app = api.app(
        lockout_threshold=threshold, login_limit_per_account=1000, login_limit_per_address=1000
    )
    address = await register_and_verify(api.client(app), outbox)
    wrong = {"email": address, "password": WRONG}
    tally, seconds = await in_parallel(
        [api.client(app).post("/v1/auth/login", json=wrong) for _ in range(50)]
    )
    print(
        f"\n50 parallel wrong passwords, lockout after {threshold}: {dict(tally)} in {seconds:.2f}s"
    )
    # Each 401 is a password that was checked: no more guesses than the threshold.
    assert tally["401 invalid-credentials"] <= threshold
    assert tally["401 invalid-credentials"] + tally["429 account-locked"] == 50
    # Locked afterwards, even for the right password.
    assert kind(await login(api.client(app), address)) == "429 account-locked"

    # An address without an account holds the same way (and so answers the same).
    nobody = {"email": unique_email("nobody"), "password": WRONG}
    tally, seconds = await in_parallel(
        [api.client(app).post("/v1/auth/login", json=nobody) for _ in range(50)]
    )
    print(f"the same for an address without an account: {dict(tally)} in {seconds:.2f}s")
    assert tally["401 invalid-credentials"] <= threshold
    assert tally["401 invalid-credentials"] + tally["429 account-locked"] == 50


async def test_the_account_deletion_password_counts_toward_the_lockout(
    api: Api, outbox: Path
) -> None:
    """A stolen session cannot guess the password through "delete my account" either."""
    app = api.app(lockout_threshold=3, lockout_minutes=10)
    address = await register_and_verify(api.client(app), outbox)
    r = await api.client(app).post(
        "/v1/auth/login", json={"email": address, "password": PASSWORD, "issue_bearer": True}
    )
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    client = api.client(app)
    answers = [
        kind(await client.request("DELETE", "/v1/me", json={"password": WRONG}, headers=bearer))
        for _ in range(4)
    ]
    assert answers == ["401 invalid-credentials"] * 3 + ["429 account-locked"], answers
    # The right password too, and at login: it is the account's one lockout.
    r = await client.request("DELETE", "/v1/me", json={"password": PASSWORD}, headers=bearer)
    assert kind(r) == "429 account-locked"
    assert kind(await login(api.client(app), address)) == "429 account-locked"
    assert (await client.get(SESSION, headers=bearer)).status_code == 200  # not deleted


async def test_rate_limits_hold_under_50_parallel_attempts(api: Api, outbox: Path) -> None:
    limit = 10
    day = 86400  # a window the test cannot straddle
    app = api.app(
        lockout_threshold=1000,  # only the limits stop them
        login_limit_per_account=limit,
        login_limit_per_address=limit,
        password_reset_limit_per_account=3,
        password_reset_limit_per_address=1000,
        rate_limit_window_seconds=day,
    )
    address = await register_and_verify(api.client(app), outbox)
    right = {"email": address, "password": PASSWORD}

    # One account, from 50 addresses, with its right password: the account's limit holds.
    tally, seconds = await in_parallel(
        [api.client(app).post("/v1/auth/login", json=right) for _ in range(50)]
    )
    print(f"\n50 parallel logins to one account, limit {limit}: {dict(tally)} in {seconds:.2f}s")
    assert tally == {"200": limit, "429 rate-limited": 50 - limit}

    # One address, 50 accounts nobody has: the address's limit holds.
    one = new_address()
    tally, seconds = await in_parallel(
        [
            api.client(app, address=one).post(
                "/v1/auth/login", json={"email": unique_email(), "password": WRONG}
            )
            for _ in range(50)
        ]
    )
    print(f"50 parallel logins from one address, limit {limit}: {dict(tally)} in {seconds:.2f}s")
    assert tally == {"401 invalid-credentials": limit, "429 rate-limited": 50 - limit}

    # Reset links for one account: three mails, not fifty.
    mails = len(read_mail(outbox, address))
    tally, seconds = await in_parallel(
        [
            api.client(app).post("/v1/auth/password-reset/request", json={"email": address})
            for _ in range(50)
        ]
    )
    print(f"50 parallel reset requests for one account, limit 3: {dict(tally)} in {seconds:.2f}s")
    assert tally == {"202": 3, "429 rate-limited": 47}
    assert len(read_mail(outbox, address)) - mails == 3
