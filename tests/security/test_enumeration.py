"""No account enumeration (OWASP ASVS 4.0 2.2, 3.2): register, login and reset answer alike for
an address with an account and one without, in their words and in their time (medians of many
interleaved samples, printed), and a login's hash never holds up the rest of the API."""

from __future__ import annotations

import asyncio
import random
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import select

from permisos_api.models import User
from permisos_api.settings import ApiSettings
from permisos_sandbox.mail import MailCatcher
from tests.api.conftest import PASSWORD, Api, read_mail, register_and_verify, unique_email
from tests.api.serving import serving
from tests.security.answers import WRONG, kind


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
        "register_limit_per_address",
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
    """Login (the hash), reset (the mail, over SMTP as in production) and registration take as
    long for an address with an account as for one without."""
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

            async def register(email: str) -> float:
                started = time.perf_counter()
                r = await http.post(
                    "/v1/auth/register", json={"email": email, "password": PASSWORD}
                )
                elapsed = time.perf_counter() - started
                assert r.status_code == 202, r.text
                return elapsed

            mailing = statistics.median([await asyncio.to_thread(mail_once) for _ in range(15)])
            login_known, login_unknown = await timed_pairs(log_in, address, 30, 16)
            reset_known, reset_unknown = await timed_pairs(reset, address, 40, 61)
            # Each unknown address is a new account; the known one is mailed a notice instead.
            register_known, register_unknown = await timed_pairs(register, address, 30, 7)

    login_gap, reset_gap = login_known - login_unknown, reset_known - reset_unknown
    register_gap = register_known - register_unknown
    print(
        f"\none Argon2id verification at the production cost: {ms(hashing)}; "
        f"one mail over SMTP: {ms(mailing)}"
        f"\nlogin, wrong password (30 pairs): account {ms(login_known)}, "
        f"no account {ms(login_unknown)}, difference {ms(login_gap)}"
        f"\nreset request (40 pairs): account {ms(reset_known)}, "
        f"no account {ms(reset_unknown)}, difference {ms(reset_gap)}"
        f"\nregistration (30 pairs): account {ms(register_known)}, "
        f"no account {ms(register_unknown)}, difference {ms(register_gap)}"
    )
    # Without the dummy hash an unknown address would answer a whole hash sooner; without the
    # mail after the answer, an existing one a whole mail later. Half of either is the bound: a
    # loaded machine moves the medians by up to a fourth of a hash, either way.
    assert abs(login_gap) < hashing / 2
    assert abs(reset_gap) < mailing / 2
    # Both hash the password and send one mail; only the new account's row differs.
    assert abs(register_gap) < mailing / 2


async def test_the_account_pages_hashes_never_hold_up_other_requests(
    api: Api, outbox: Path
) -> None:
    """The hash of a login or of an account deletion's password (or a registration's, or a new
    password's) is work for a worker thread: on the event loop it would stop every other request
    while it runs, a denial of service anyone can send from the login page."""
    app = api.app(**PRODUCTION_ARGON2, **UNLIMITED)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        address = await register_and_verify(http, outbox)
        r = await http.post("/v1/auth/login", json={"email": address, "password": PASSWORD})
        session = {"Cookie": f"permisos_session={http.cookies['permisos_session']}"}
        deletion = {"password": WRONG, "confirm": "si", "csrf_token": r.json()["csrf_token"]}
        csrf = secrets.token_urlsafe(24)  # the double-submit cookie and its form field
        form = {"email": address, "password": WRONG, "csrf_token": csrf}
        cookie = {"Cookie": f"permisos_csrf={csrf}"}
        http.cookies.clear()
        pages = {
            "web login": ("/entrar", form, cookie, 401),
            "account deletion": ("/cuenta/eliminar", deletion, session, 422),
        }
        hashing = await asyncio.to_thread(timed_hash, app.state.services.hasher)
        print(f"\none Argon2id verification {ms(hashing)}")
        for name, (path, data, headers, status) in pages.items():
            sent = [asyncio.create_task(http.post(path, data=data, headers=headers)) for _ in "ab"]
            waits: list[float] = []
            while not all(task.done() for task in sent):
                started = time.perf_counter()
                assert (await http.get("/healthz")).status_code == 200
                waits.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)
            assert [r.status_code for r in await asyncio.gather(*sent)] == [status] * 2
            print(
                f"/healthz during 2 of {name}: {len(waits)} answers, slowest {ms(max(waits))}, "
                f"median {ms(statistics.median(waits))}"
            )
            # The hashes share this machine's cores with the probe, which may wait for one now
            # and then; on the event loop they would stop it for their whole time.
            assert len(waits) >= 5 and statistics.median(waits) < hashing / 2, name


def timed_hash(hasher: Any) -> float:
    """Seconds of one verification of a wrong password at the hasher's cost (median of 5)."""
    stored = hasher.hash(PASSWORD)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        assert not hasher.verify(stored, WRONG)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
