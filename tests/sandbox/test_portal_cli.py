"""`python -m permisos_sandbox.portal`: announces its address, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp


async def test_cli_serves_until_sigterm() -> None:
    env = {**os.environ, "PERMISOS_PORTAL_USERS": "robot:clave1,otra:clave2"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "permisos_sandbox.portal",
        "--port",
        "0",
        "--processing-seconds",
        "0.5",
        "--latency-ms",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()
        assert line.startswith("portal listening on http://127.0.0.1:")
        url = line.removeprefix("portal listening on ")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(url + "/__control/config") as resp:
                assert (await resp.json())["processing_seconds"] == 0.5
            async with http.get(url + "/login") as resp:
                text = await resp.text()
            token = text.split('name="csrf_token" value="')[1].split('"')[0]
            form = {"usuario": "robot", "contrasena": "clave1", "csrf_token": token}
            async with http.post(url + "/login", data=form, allow_redirects=False) as resp:
                assert resp.headers["Location"] == "/tramites"  # accounts from the environment
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0
    # One JSON log line per request, without the password or the query string.
    assert '"message": "POST /login 303' in stderr.decode()
    assert "clave1" not in stderr.decode()
