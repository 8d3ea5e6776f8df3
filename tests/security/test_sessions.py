"""Sessions and accounts against OWASP ASVS 4.0 level 2 where it applies: a fresh token at each
login (3.2.1, fixation), logout ending the session on the server (3.3.1), reset links short-lived
and single-use and a reset ending the other sessions (2.5, 3.3.3), lockout and rate limits that
hold under 50 parallel attempts (2.2.1), and no account enumeration through the answers or their
timing (2.2, 3.2)."""

from __future__ import annotations

import asyncio
import random
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import select

from permisos_api.models import User
from permisos_api.settings import ApiSettings
from permisos_sandbox.mail import MailCatcher
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
from tests.api.serving import serving

SESSION = "/v1/auth/session"
WRONG = "Not-the-password-1"


def kind(r: httpx.Response) -> str:
    """The answer as a user tells it apart: its status and, for a problem, its type."""
    if r.headers.get("content-type", "").startswith("application/problem+json"):
        return f"{r.status_code} {str(r.json()['type']).rsplit('/', 1)[-1]}"
    return str(r.status_code)


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


def same_answer(a: httpx.Response, b: httpx.Response) -> bool:
    """What a client can compare: status, body, and which headers came (not their values)."""
    varying = {"date", "x-request-id", "server-timing", "content-length"}
    return (
        a.status_code == b.status_code
        and a.content == b.content
        and {h for h in a.headers if h not in varying} == {h for h in b.headers if h not in varying}
    )


async def test_no_account_enumeration_through_the_answers(api: Api, outbox: Path) -> None:
    client = api.client()
    verified = await register_and_verify(client, outbox)
    unverified = unique_email("unverified")
    r = await client.post("/v1/auth/register", json={"email": unverified, "password": PASSWORD})
    assert r.status_code == 202
    disabled = await register_and_verify(client, outbox)
    dsn = api.settings.database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE users SET disabled_at = now() WHERE email = %s", (disabled,))
    existing = (verified, unverified, disabled)

    async def answers(path: str, **body: str) -> list[httpx.Response]:
        """The answer for each existing account and for an address nobody has."""
        sent = [{**body, "email": address} for address in (*existing, unique_email("nobody"))]
        return [await api.client().post(path, json=each) for each in sent]

    for path, body in (
        ("/v1/auth/register", {"password": PASSWORD}),
        ("/v1/auth/login", {"password": WRONG}),
        ("/v1/auth/password-reset/request", {}),
    ):
        *known, nobody = await answers(path, **body)
        for address, r in zip(existing, known, strict=True):
            assert same_answer(r, nobody), (path, address, r.text, nobody.text)
        print(f"\n{path}: {kind(nobody)} for each kind of account and for none")

    # Wrong passwords until the lockout, and past it: an address without an account locks too.
    strict = api.app(lockout_threshold=3, lockout_minutes=10)
    fresh, nobody = await register_and_verify(api.client(strict), outbox), unique_email("nobody")
    for attempt in range(1, 6):
        r, r_nobody = [
            await api.client(strict).post("/v1/auth/login", json={"email": who, "password": WRONG})
            for who in (fresh, nobody)
        ]
        assert same_answer(r, r_nobody), (attempt, r.text, r_nobody.text)
        retry = [int(each.headers.get("retry-after", 0)) for each in (r, r_nobody)]
        assert abs(retry[0] - retry[1]) <= 2, retry
        print(f"wrong password {attempt}: {kind(r)} for an account and for none")
    assert kind(r) == "429 account-locked"


# The production cost (ApiSettings' defaults), not the suite's cheap one: the hash is the work
# whose absence would tell an unknown address apart.
PRODUCTION_ARGON2 = {
    name: ApiSettings.model_fields[name].default
    for name in ("argon2_time_cost", "argon2_memory_cost_kib", "argon2_parallelism")
}
# A relay across a network takes this long to accept a message (loopback alone: a few ms).
RELAY_SECONDS = 0.05
UNLIMITED = {
    name: 1_000_000
    for name in (
        "lockout_threshold",
        "login_limit_per_account",
        "login_limit_per_address",
        "password_reset_limit_per_account",
        "password_reset_limit_per_address",
    )
}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def timed_pairs(
    post: Callable[[str], Awaitable[float]], existing: str, samples: int, seed: int
) -> tuple[float, float]:
    """Median seconds of `post` for the existing address and for an unknown one, interleaved in
    a random order per pair, so that load on the machine falls on both alike."""
    rng = random.Random(seed)
    known: list[float] = []
    unknown: list[float] = []
    for _ in range(samples):
        pair = [(existing, known), (unique_email("nobody"), unknown)]
        rng.shuffle(pair)
        for address, times in pair:
            times.append(await post(address))
    return statistics.median(known), statistics.median(unknown)


async def test_no_account_enumeration_through_timing(api: Api, outbox: Path) -> None:
    """Login (the hash) and reset (the mail, over SMTP as in production) take as long for an
    address with an account as for one without."""
    with MailCatcher(outbox, delay=RELAY_SECONDS) as smtp:
        app = api.app(
            **PRODUCTION_ARGON2,
            **UNLIMITED,
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_starttls=False,
        )
        services = app.state.services
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
            address = await register_and_verify(http, outbox)
            with services.engine.connect() as conn:
                query = select(User.password_hash).where(User.email == address)
                stored = conn.execute(query).scalar_one()

            def hash_once() -> float:
                started = time.perf_counter()
                assert not services.hasher.verify(stored, WRONG)
                return time.perf_counter() - started

            hashing = statistics.median([await asyncio.to_thread(hash_once) for _ in range(7)])

            async def log_in(email: str) -> float:
                started = time.perf_counter()
                r = await http.post("/v1/auth/login", json={"email": email, "password": WRONG})
                elapsed = time.perf_counter() - started
                assert kind(r) == "401 invalid-credentials", r.text
                return elapsed

            async def reset(email: str) -> float:
                mails = len(read_mail(outbox, address))
                started = time.perf_counter()
                r = await http.post("/v1/auth/password-reset/request", json={"email": email})
                elapsed = time.perf_counter() - started
                assert r.status_code == 202, r.text
                while email == address and len(read_mail(outbox, address)) == mails:
                    await asyncio.sleep(0.005)  # the mail is out before the next sample starts
                return elapsed

            def mail_once() -> float:
                started = time.perf_counter()
                services.mailer.send(unique_email("timing"), "register-existing")
                return time.perf_counter() - started

            mailing = statistics.median([await asyncio.to_thread(mail_once) for _ in range(15)])
            login_known, login_unknown = await timed_pairs(log_in, address, 25, 16)
            reset_known, reset_unknown = await timed_pairs(reset, address, 40, 61)

    login_gap, reset_gap = login_known - login_unknown, reset_known - reset_unknown
    print(
        f"\none Argon2id verification at the production cost: {ms(hashing)}; "
        f"one mail over SMTP: {ms(mailing)}"
        f"\nlogin, wrong password (25 pairs): account {ms(login_known)}, "
        f"no account {ms(login_unknown)}, difference {ms(login_gap)}"
        f"\nreset request (40 pairs): account {ms(reset_known)}, "
        f"no account {ms(reset_unknown)}, difference {ms(reset_gap)}"
    )
    # Without the dummy hash an unknown address would answer a whole hash sooner; without the
    # mail after the answer, an existing one a whole mail later.
    assert abs(login_gap) < hashing / 4
    assert abs(reset_gap) < mailing / 2


async def test_a_login_on_the_web_page_never_holds_up_other_requests(
    api: Api, outbox: Path
) -> None:
    """The hash of a login (or a registration, or a new password) is work for a worker thread:
    on the event loop it would stop every other request while it runs, a denial of service
    anyone can send from the login page."""
    app = api.app(**PRODUCTION_ARGON2, **UNLIMITED)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        address = await register_and_verify(http, outbox)
        csrf = secrets.token_urlsafe(24)  # the double-submit cookie and its form field
        form = {"email": address, "password": WRONG, "csrf_token": csrf}
        cookie = {"Cookie": f"permisos_csrf={csrf}"}
        logins = [
            asyncio.create_task(http.post("/entrar", data=form, headers=cookie)) for _ in range(2)
        ]
        waits: list[float] = []
        while not all(task.done() for task in logins):
            started = time.perf_counter()
            assert (await http.get("/healthz")).status_code == 200
            waits.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)
        assert [r.status_code for r in await asyncio.gather(*logins)] == [401] * 2
        services = app.state.services
        hashing = await asyncio.to_thread(timed_hash, services.hasher)
    print(
        f"\n/healthz during 2 web logins: {len(waits)} answers, slowest {ms(max(waits))}, "
        f"median {ms(statistics.median(waits))}; one Argon2id verification {ms(hashing)}"
    )
    # Both hashes share this machine's cores with the probe, which may wait for one now and
    # then; on the event loop they would stop it for their whole time, a hash or more at once.
    assert len(waits) >= 5 and statistics.median(waits) < hashing / 2


def timed_hash(hasher: Any) -> float:
    """Seconds of one verification of a wrong password at the hasher's cost (median of 5)."""
    stored = hasher.hash(PASSWORD)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        assert not hasher.verify(stored, WRONG)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
