"""API benchmark: requests/s and p50/p99 latency for reading and creating an application.

    .venv/bin/python bench/api_throughput.py [--clients 16] [--duration 10] [--seed 200]

Prints figures; asserts nothing about them. Against real PostgreSQL, in one run:

- ours   `python -m permisos_api` (uvicorn, 1 worker, dispatcher off), a fresh database migrated
         by Alembic; a verified user with a Bearer token; (a) GET /v1/applications/{id} of one of
         the seeded applications, (b) POST /v1/applications with a valid body.
- floor  `bench/api_floor.py`: FastAPI + SQLAlchemy, same driver and pool size, its own table in
         the same database; (a) GET /items/{id}, (b) POST /items.

Each scenario: --clients concurrent aiohttp clients, each one request at a time, for --duration
seconds after a short warm-up; ratios are ours/floor. The clients run on the same machine as the
servers and PostgreSQL and share its CPUs. Writes bench/results/api_throughput.json and the
servers' logs to bench/results/logs/; starts a PostgreSQL server of its own and
removes it, and stops every process, at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # the bench folder is not a package
    ROOT,
    BenchError,
    Child,
    Children,
    free_port,
    percentile,
    wait_for,
)

from permisos_sandbox.postgres import PostgresServer

RESULTS = ROOT / "bench" / "results"
LOGS = RESULTS / "logs"
FLOOR = ROOT / "bench" / "api_floor.py"
PASSWORD = "Correcto-caballo-42"
POOL_SIZE = 10  # the API's default PERMISOS_API_DATABASE_POOL_SIZE; the floor uses the same
APPLICATION: dict[str, Any] = {
    "first_name": "Juana",
    "last_name": "Gómez",
    "maternal_surname": "Díaz",
    "curp": "GODE561231HDFRRN00",
    "email": "juana.gomez@example.com",
    "phone": "55 1234 5678",
    "plates": "jkl-4821",
    "make": "nissan",
    "line": "versa",
    "service_type": "particular",
    "model_year": 2022,
    "vin": "1HGCM82633A004352",
}
ITEM: dict[str, Any] = {
    "first_name": "Juana",
    "last_name": "Gómez",
    "curp": "GODE561231HDFRRN00",
    "plates": "JKL4821",
    "make": "NISSAN",
    "line": "VERSA",
    "service_type": "particular",
    "model_year": 2022,
}


# --- servers -----------------------------------------------------------------------------------


async def wait_healthy(child: Child, url: str, within: float = 60) -> None:
    async with aiohttp.ClientSession() as http:

        async def up() -> bool:
            if not child.alive():
                raise BenchError(f"{child.label} exited early; see {child.log_path}")
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await wait_for(f"{child.label} at {url}", up, within)


async def start_ours(
    children: Children, database_url: str, outbox: Path, log_level: str
) -> tuple[Child, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PERMISOS_API_DATABASE_URL": database_url,
        "PERMISOS_API_DATABASE_POOL_SIZE": str(POOL_SIZE),
        "PERMISOS_API_HOST": "127.0.0.1",
        "PERMISOS_API_PORT": str(port),
        "PERMISOS_API_PUBLIC_BASE_URL": base,
        "PERMISOS_API_LOG_LEVEL": log_level,
        "PERMISOS_API_MAIL_OUTBOX_DIR": str(outbox),
        "PERMISOS_API_SMTP_HOST": "",
        "PERMISOS_API_COOKIE_SECURE": "false",
        "PERMISOS_API_DISPATCHER_ENABLED": "false",
        "PERMISOS_API_MIRROR_ENABLED": "false",
        "PERMISOS_API_SIGNING_SECRET": uuid.uuid4().hex,
        "PERMISOS_API_LOGIN_LIMIT_PER_ADDRESS": "1000000",
        "PERMISOS_API_LOGIN_LIMIT_PER_ACCOUNT": "1000000",
        "PERMISOS_API_REGISTER_LIMIT_PER_ADDRESS": "1000000",
    }
    argv = [sys.executable, "-m", "permisos_api"]
    child = children.start("api[ours]", argv, LOGS / "api-ours.log", env)
    await wait_healthy(child, f"{base}/readyz")
    return child, base


async def start_floor(children: Children, database_url: str) -> tuple[Child, str]:
    port = free_port()
    argv = [
        sys.executable,
        str(FLOOR),
        "--port",
        str(port),
        "--database-url",
        database_url,
        "--pool-size",
        str(POOL_SIZE),
    ]
    child = children.start("api[floor]", argv, LOGS / "api-floor.log")
    base = f"http://127.0.0.1:{port}"
    await wait_healthy(child, f"{base}/healthz")
    return child, base


# --- a user with a Bearer token ----------------------------------------------------------------


def verification_token(outbox: Path, to: str) -> str:
    for path in sorted(outbox.glob("*.eml"), reverse=True):
        msg = email.message_from_bytes(path.read_bytes())
        if msg["To"] != to:
            continue
        part = next((p for p in msg.walk() if p.get_content_type() == "text/plain"), msg)
        body = part.get_payload(decode=True)
        if isinstance(body, bytes):
            found = re.search(r"/verificar\?token=(\S+)", body.decode())  # the page it opens
            if found:
                return unquote(found.group(1))
    raise BenchError(f"no verification mail for {to} in {outbox}")


async def bearer_token(http: aiohttp.ClientSession, base: str, outbox: Path) -> str:
    address = f"bench.{uuid.uuid4().hex[:10]}@example.com"
    creds = {"email": address, "password": PASSWORD}
    async with http.post(f"{base}/v1/auth/register", json=creds) as r:
        if r.status != 202:
            raise BenchError(f"register: {r.status} {await r.text()}")
    token = verification_token(outbox, address)
    async with http.get(f"{base}/v1/auth/verify", params={"token": token}) as r:
        if r.status != 200:
            raise BenchError(f"verify: {r.status} {await r.text()}")
    async with http.post(f"{base}/v1/auth/login", json={**creds, "issue_bearer": True}) as r:
        if r.status != 200:
            raise BenchError(f"login: {r.status} {await r.text()}")
        return str((await r.json())["token"])


async def seed(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str], n: int
) -> list[str]:
    ids = []
    for _ in range(n):
        async with http.post(url, json=body, headers=headers) as r:
            if r.status != 201:
                raise BenchError(f"seeding {url}: {r.status} {await r.text()}")
            ids.append(str((await r.json())["id"]))
    return ids


# --- load --------------------------------------------------------------------------------------


class Scenario:
    """One request shape: a method, a URL chooser, a body, headers, and the expected status."""

    def __init__(
        self,
        method: str,
        urls: list[str],
        body: dict[str, Any] | None,
        headers: dict[str, str],
        expect: int,
    ) -> None:
        self.method, self.urls, self.body, self.headers, self.expect = (
            method,
            urls,
            body,
            headers,
            expect,
        )


async def drive(scenario: Scenario, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` loops, each one request at a time until the deadline; latencies in ms."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        began = time.perf_counter()
        deadline = began + seconds

        async def client(rng: random.Random) -> None:
            while time.perf_counter() < deadline:
                url = rng.choice(scenario.urls)
                sent = time.perf_counter()
                try:
                    async with http.request(
                        scenario.method, url, json=scenario.body, headers=scenario.headers
                    ) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    key = type(exc).__name__
                    errors[key] = errors.get(key, 0) + 1
                    continue
                if status == scenario.expect:
                    latencies.append((time.perf_counter() - sent) * 1000)
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1

        # Bounded: a stuck server cannot hold the benchmark past duration + request timeout.
        tasks = [client(random.Random(i)) for i in range(clients)]
        await asyncio.wait_for(asyncio.gather(*tasks), seconds + 30)
        elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# --- main --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, children: Children, database_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="permisos-bench-mail-") as mail:
        outbox = Path(mail)
        ours_child, ours = await start_ours(children, database_url, outbox, args.api_log_level)
        floor_child, floor = await start_floor(children, database_url)
        async with aiohttp.ClientSession() as http:
            token = await bearer_token(http, ours, outbox)
            auth = {"Authorization": f"Bearer {token}"}
            app_ids = await seed(http, f"{ours}/v1/applications", APPLICATION, auth, args.seed)
            item_ids = await seed(http, f"{floor}/items", ITEM, {}, args.seed)

    scenarios = {
        ("read", "ours"): Scenario(
            "GET", [f"{ours}/v1/applications/{i}" for i in app_ids], None, auth, 200
        ),
        ("read", "floor"): Scenario("GET", [f"{floor}/items/{i}" for i in item_ids], None, {}, 200),
        ("create", "ours"): Scenario("POST", [f"{ours}/v1/applications"], APPLICATION, auth, 201),
        ("create", "floor"): Scenario("POST", [f"{floor}/items"], ITEM, {}, 201),
    }
    figures: dict[str, dict[str, Any]] = {}
    for (op, server), scenario in scenarios.items():
        await drive(scenario, args.clients, args.warmup)
        child = ours_child if server == "ours" else floor_child
        cpu_before = child.cpu_seconds()
        result = await drive(scenario, args.clients, args.duration)
        result["server_cpu_seconds"] = round(child.cpu_seconds() - cpu_before, 2)
        figures.setdefault(op, {})[server] = result
        print(
            f"  {op:6} {server:5} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:6.1f} ms"
            f"  p99 {result['p99_ms']:6.1f} ms  errors {result['errors']}",
            flush=True,
        )
    for pair in figures.values():
        ours_f, floor_f = pair["ours"], pair["floor"]
        pair["ratios"] = {
            "rps": ratio(ours_f["rps"], floor_f["rps"]),
            "p50": ratio(ours_f["p50_ms"], floor_f["p50_ms"]),
            "p99": ratio(ours_f["p99_ms"], floor_f["p99_ms"]),
        }
    return figures


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(
        f"API throughput: {args.clients} concurrent clients, {args.duration:.0f} s per scenario, "
        f"uvicorn 1 worker, pool {POOL_SIZE}, PostgreSQL on 127.0.0.1"
    )
    print(
        f"NOTE: the load client, both servers and PostgreSQL share this machine's "
        f"{os.cpu_count()} CPU(s); figures are relative, the ratios are the point."
    )
    print()
    header = f"{'scenario':<8} {'server':<6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    print(header)
    print("-" * len(header))
    for op, pair in figures.items():
        for server in ("ours", "floor"):
            f = pair[server]
            print(
                f"{op:<8} {server:<6} {f['rps']:>9.1f} {f['p50_ms']:>8.1f} "
                f"{f['p99_ms']:>8.1f} {f['errors']:>7}"
            )
        r = pair["ratios"]
        print(
            f"{op:<8} {'ratio':<6} {fmt_ratio(r['rps']):>9} {fmt_ratio(r['p50']):>8} "
            f"{fmt_ratio(r['p99']):>8}   (ours/floor)"
        )
    print()
    print(
        "ours (a) = GET /v1/applications/{id} with a Bearer token (session lookup + row), "
        "(b) = POST /v1/applications (validation, pricing, insert);"
    )
    print(
        "floor (a) = GET /items/{id} (one primary-key read), (b) = POST /items (one insert); "
        f"our API logs each request at {args.api_log_level}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each scenario")
    parser.add_argument("--seed", type=int, default=200, help="rows seeded for the reads")
    parser.add_argument(
        "--api-log-level", default="INFO", help="our API's log level (INFO is its default)"
    )
    args = parser.parse_args()
    if not 1 <= args.clients <= 512 or not 0 < args.duration <= 300:
        parser.error("--clients must be 1..512 and --duration 0..300 seconds")

    LOGS.mkdir(parents=True, exist_ok=True)
    children = Children()
    # A durable server of the benchmark's own (fsync on, as in production), removed at the end.
    server = PostgresServer(log_path=LOGS / "postgres.log")
    try:
        from permisos_api.migrate import upgrade

        server.start()
        with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "permisos_bench"')
        database_url = server.url("permisos_bench")
        upgrade(database_url)
        figures = asyncio.run(run(args, children, database_url))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    finally:
        children.stop_all()
        server.stop()

    report(figures, args)
    result = {
        "benchmark": "api_throughput",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "load client, servers and PostgreSQL share the machine's CPUs",
        },
        "settings": {
            "clients": args.clients,
            "duration_seconds": args.duration,
            "warmup_seconds": args.warmup,
            "seeded_rows": args.seed,
            "pool_size": POOL_SIZE,
            "uvicorn_workers": 1,
            "api_log_level": args.api_log_level,
        },
        "figures": figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "api_throughput.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
