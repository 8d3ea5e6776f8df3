"""Lockout after failed logins, and rate limits per client address and per account."""

from __future__ import annotations

from pathlib import Path

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


async def test_lockout_after_failed_logins(api: Api, outbox: Path) -> None:
    app = api.app(lockout_threshold=3, lockout_minutes=10)
    client = api.client(app)
    address = await register_and_verify(client, outbox)
    wrong = {"email": address, "password": "Not-the-password-1"}
    for _ in range(3):
        r = await client.post("/v1/auth/login", json=wrong)
        assert r.status_code == 401
        assert r.json()["type"].endswith("/invalid-credentials")
    # Locked: even the right password, even from another address.
    r = await login(api.client(app), address)
    assert r.status_code == 429
    assert r.json()["type"].endswith("/account-locked")
    retry = int(r.headers["retry-after"])
    assert 500 < retry <= 601
    # A password reset lifts the lock.
    await client.post("/v1/auth/password-reset/request", json={"email": address})
    token = link_token(read_mail(outbox, address)[-1], "/restablecer")
    r = await client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": PASSWORD + "x"}
    )
    assert r.status_code == 204
    r = await client.post("/v1/auth/login", json={"email": address, "password": PASSWORD + "x"})
    assert r.status_code == 200


async def test_unknown_account_answers_like_a_wrong_password(api: Api) -> None:
    client = api.client()
    r = await client.post(
        "/v1/auth/login", json={"email": unique_email(), "password": "Whatever-pass-1"}
    )
    assert r.status_code == 401 and r.json()["type"].endswith("/invalid-credentials")


async def test_rate_limit_per_address(api: Api) -> None:
    # A day-long window, so the test never straddles a window boundary.
    app = api.app(register_limit_per_address=3, rate_limit_window_seconds=86400)
    address = new_address()
    client = api.client(app, address=address)
    for _ in range(3):
        body = {"email": unique_email(), "password": PASSWORD}
        assert (await client.post("/v1/auth/register", json=body)).status_code == 202
    r = await client.post("/v1/auth/register", json={"email": unique_email(), "password": PASSWORD})
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/rate-limited")
    assert 0 < int(r.headers["retry-after"]) <= 86400
    # Another replica (another app on the same database) agrees: the counter is in PostgreSQL.
    replica = api.client(
        api.app(register_limit_per_address=3, rate_limit_window_seconds=86400), address=address
    )
    body = {"email": unique_email(), "password": PASSWORD}
    assert (await replica.post("/v1/auth/register", json=body)).status_code == 429
    # Another address is not affected.
    assert (await api.client(app).post("/v1/auth/register", json=body)).status_code == 202


async def test_rate_limit_per_account(api: Api, outbox: Path) -> None:
    app = api.app(
        password_reset_limit_per_account=2,
        login_limit_per_account=4,
        rate_limit_window_seconds=86400,
    )
    address = await register_and_verify(api.client(app), outbox)
    # Each request from a different address: only the per-account counter can stop them.
    for _ in range(2):
        r = await api.client(app).post("/v1/auth/password-reset/request", json={"email": address})
        assert r.status_code == 202
    r = await api.client(app).post("/v1/auth/password-reset/request", json={"email": address})
    assert r.status_code == 429 and "retry-after" in r.headers
    assert len(read_mail(outbox, address)) == 3  # verification + two resets

    for _ in range(4):
        assert (await login(api.client(app), address)).status_code == 200
    r = await login(api.client(app), address)
    assert r.status_code == 429 and r.json()["type"].endswith("/rate-limited")
