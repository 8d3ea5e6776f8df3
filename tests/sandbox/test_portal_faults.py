"""Fault injection as PAGES.md describes it: what a client sees when the portal misbehaves."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pypdf import PdfReader

from permisos.maintenance import Schedule
from permisos_sandbox.portal import PortalSimulator

from .conftest import PortalClient


async def _ready_document(portal_client: PortalClient, referencia: str) -> str:
    await portal_client.login()
    status_path = await portal_client.apply(referencia)
    done = await portal_client.wait_ready(status_path)
    return done.all("a", cls="documento")[0].attrs["href"]


async def test_maintenance_page_on_every_page(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    await portal_client.login()
    portal.config.maintenance = True
    for path in ("/login", "/tramites", "/consulta?referencia=x", "/catalogos/lineas?marca=NIS"):
        status, page, resp = await portal_client.get(path)
        assert status == 503, path
        assert page.h1 == "Sitio en mantenimiento"
        assert resp.headers["Retry-After"]
    async with portal_client.http.get(portal.url + "/__control/health") as resp:
        assert resp.status == 200  # the control API stays reachable
    portal.config.maintenance = False
    assert (await portal_client.get("/tramites"))[0] == 200


@pytest.mark.parametrize("error_status", [500, 503])
async def test_error_rate_one_fails_every_request(
    portal: PortalSimulator, portal_client: PortalClient, error_status: int
) -> None:
    async with portal_client.http.put(
        portal.url + "/__control/config", json={"error_rate": 1, "error_status": error_status}
    ) as resp:
        assert resp.status == 200
    for path in ("/login", "/tramites", "/consulta"):
        status, page, resp = await portal_client.get(path)
        assert status == error_status
        assert resp.content_type == "text/html"
        assert page.h1 in {"Error interno del servidor", "Servicio no disponible"}
        assert "Intente más tarde" in page.one("main").text


async def test_error_rate_is_a_rate_and_repeats_with_a_seed(portal: PortalSimulator) -> None:
    async def statuses() -> list[int]:
        async with aiohttp.ClientSession() as http:
            async with http.put(portal.url + "/__control/config", json={"seed": 7}) as resp:
                assert resp.status == 200
            seen = []
            for _ in range(40):
                async with http.get(portal.url + "/login") as resp:
                    seen.append(resp.status)
            return seen

    portal.config.error_rate = 0.5
    first = await statuses()
    assert 5 < first.count(503) < 35 and 5 < first.count(200) < 35
    assert await statuses() == first


async def test_latency_is_added_to_every_response(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    portal.config.latency_ms = 200
    started = time.perf_counter()
    status, _, _ = await portal_client.get("/login")
    assert status == 200
    assert time.perf_counter() - started >= 0.2


async def test_aborted_download_is_truncated(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    href = await _ready_document(portal_client, "app-abort")
    portal.config.download = "abort"
    with pytest.raises(aiohttp.ClientPayloadError):
        async with portal_client.http.get(portal.url + href) as resp:
            assert resp.status == 200  # the headers promised a whole PDF
            assert int(resp.headers["Content-Length"]) > 1000
            await resp.read()
    # Back to normal, the same document downloads whole.
    portal.config.download = "normal"
    async with portal_client.http.get(portal.url + href) as resp:
        assert len(PdfReader(io.BytesIO(await resp.read())).pages) == 1


async def test_slow_download_takes_its_time_and_arrives_whole(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    href = await _ready_document(portal_client, "app-slow")
    portal.config.download = "slow"
    portal.config.download_delay_seconds = 0.5
    started = time.perf_counter()
    async with portal_client.http.get(portal.url + href) as resp:
        first = await resp.content.readany()
        first_at = time.perf_counter() - started
        body = first + await resp.read()
    assert time.perf_counter() - started >= 0.45
    assert first_at < 0.4  # it trickles, rather than stalling and then sending everything
    assert body.startswith(b"%PDF") and len(PdfReader(io.BytesIO(body)).pages) == 1


async def test_modal_notice_over_the_page(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    portal.config.modal_rate = 1
    status, page, _ = await portal_client.get("/login")
    assert status == 200
    modal = page.one("div", id="aviso")
    assert "modal" in modal.classes
    assert page.one("button", id="cerrar-aviso").text.strip() == "Entendido"
    assert page.one("form", id="login")  # the page is still there, under the notice
    portal.config.modal_rate = 0
    assert not (await portal_client.get("/login"))[1].all(id="aviso")


async def test_sessions_expire_mid_flow_through_the_config(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    await portal_client.login()
    status_path = await portal_client.apply("app-mid")
    portal.config.expire_sessions_now = True
    await asyncio.sleep(0)
    async with portal_client.http.get(
        portal.url + status_path + ".json", allow_redirects=False
    ) as resp:
        assert (resp.status, resp.headers["Location"]) == (303, "/login?expirada=1")


async def test_scheduled_maintenance_hours_close_the_portal_until_the_window_ends(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    now = datetime.now(UTC)
    begins, ends = now - timedelta(minutes=1), now + timedelta(minutes=3)
    hours = {
        "time_zone": "UTC",
        "windows": [{"start": f"{begins:%H:%M}", "end": f"{ends:%H:%M}"}],
    }
    async with portal_client.http.put(
        portal.url + "/__control/config", json={"maintenance_hours": hours}
    ) as resp:
        assert resp.status == 200, await resp.text()
    status, page, resp = await portal_client.get("/login")
    assert status == 503 and page.h1 == "Sitio en mantenimiento"
    # Retry-After: the seconds left in the window (its end is on a whole minute).
    left = (ends.replace(second=0, microsecond=0) - now).total_seconds()
    assert abs(int(resp.headers["Retry-After"]) - left) <= 2
    # A closed date (today, in the portal's zone) closes it all day.
    today = {"time_zone": "UTC", "closed_dates": [f"{datetime.now(UTC):%Y-%m-%d}"]}
    portal.config.maintenance_hours = Schedule.model_validate(today)
    status, _, resp = await portal_client.get("/login")
    assert status == 503 and int(resp.headers["Retry-After"]) > 0
    portal.config.maintenance_hours = Schedule()
    assert (await portal_client.get("/login"))[0] == 200
    async with portal_client.http.put(
        portal.url + "/__control/config", json={"maintenance_hours": {"time_zone": "Mars/Olympus"}}
    ) as resp:
        assert resp.status == 400 and "unknown time zone" in await resp.text()


async def test_rate_limit_answers_429_with_retry_after_beyond_the_limit(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    portal.config.rate_limit_per_minute = 3
    answered = [(await portal_client.get("/login"))[0] for _ in range(3)]
    assert answered == [200, 200, 200]
    status, page, resp = await portal_client.get("/login")
    assert status == 429 and page.h1 == "Demasiadas solicitudes"
    assert 55 <= int(resp.headers["Retry-After"]) <= 60  # when the first of the minute leaves
    async with portal_client.http.get(portal.url + "/__control/health") as control:
        assert control.status == 200  # the control API is never throttled
    portal.config.rate_limit_per_minute = None
    assert (await portal_client.get("/login"))[0] == 200


@pytest.mark.parametrize(
    ("change", "path", "gone", "instead"),
    [
        ("login", "/login", ("form", {"id": "login"}), ("form", {"id": "acceso"})),
        ("consulta", "/consulta", ("form", {"id": "consulta"}), ("form", {"id": "busqueda"})),
        (
            "solicitante",
            "/tramites/nuevo/solicitante",
            ("input", {"name": "curp"}),
            ("input", {"name": "clave_curp"}),
        ),
    ],
)
async def test_a_changed_portal_renames_what_the_runner_looks_for(
    portal: PortalSimulator,
    portal_client: PortalClient,
    change: str,
    path: str,
    gone: tuple[str, dict[str, str]],
    instead: tuple[str, dict[str, str]],
) -> None:
    await portal_client.login()
    async with portal_client.http.put(
        portal.url + "/__control/config", json={"changed": [change]}
    ) as resp:
        assert resp.status == 200
    status, page, _ = await portal_client.get(path)
    assert status == 200
    assert page.all(gone[0], **gone[1]) == []
    assert len(page.all(instead[0], **instead[1])) == 1
    portal.config.changed = []
    _, page, _ = await portal_client.get(path)
    assert len(page.all(gone[0], **gone[1])) == 1
