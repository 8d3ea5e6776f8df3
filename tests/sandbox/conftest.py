"""Fixtures of the sandbox's contract tests: the portal simulator and a client for its pages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, async_playwright

from permisos_sandbox.portal import PortalConfig, PortalSimulator

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
PORTAL_USERS = {"operador": "secreto"}
VALID_CURP = "HEGG560427MVZRRL04"  # RENAPO's published example; its check digit is 4
VOID_TAGS = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()


class Doc(HTMLParser):
    """Just enough of the DOM to find elements by tag, id, class and attribute, with their text."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in VOID_TAGS:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag)
            and (cls is None or cls in e.classes)
            and all(e.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Element:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"expected one {tag} {cls} {attrs}, found {len(found)}"
        return found[0]

    @property
    def h1(self) -> str:
        return self.one("h1").text.strip()

    def csrf(self) -> str:
        return self.all("input", name="csrf_token")[0].attrs["value"]

    def field_errors(self) -> dict[str, str]:
        return {e.attrs["data-campo"]: e.text.strip() for e in self.all(cls="campo-error")}


def applicant_form(**overrides: str) -> dict[str, str]:
    return {
        "referencia": "app-0001",
        "nombre": "Gabriela",
        "primer_apellido": "Hernández",
        "segundo_apellido": "García",
        "curp": VALID_CURP,
        "correo": "gabriela@example.com",
        "telefono": "5512345678",
        **overrides,
    }


def vehicle_form(**overrides: str) -> dict[str, str]:
    return {
        "marca": "NIS",
        "linea": "NIS-01",
        "tipo_servicio": "particular",
        "ano_modelo": "2022",
        "placas": "ABC1234",
        "niv": "",
        **overrides,
    }


@dataclass
class PortalClient:
    """A plain HTTP client walking the portal the way PAGES.md describes it."""

    sim: PortalSimulator
    http: aiohttp.ClientSession

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Doc, aiohttp.ClientResponse]:
        async with self.http.get(self.sim.url + path, allow_redirects=False, **kwargs) as resp:
            return resp.status, Doc(await resp.text()), resp

    async def post(
        self, path: str, data: dict[str, str]
    ) -> tuple[int, Doc, aiohttp.ClientResponse]:
        async with self.http.post(self.sim.url + path, data=data, allow_redirects=False) as resp:
            return resp.status, Doc(await resp.text()), resp

    async def submit(self, path: str, data: dict[str, str]) -> tuple[int, Doc, str]:
        """GETs the form's page for its CSRF token, then POSTs; returns status, page, Location."""
        _, page, _ = await self.get(path)
        status, doc, resp = await self.post(path, {**data, "csrf_token": page.csrf()})
        return status, doc, resp.headers.get("Location", "")

    async def login(self, usuario: str = "operador", contrasena: str = "secreto") -> str:
        status, _, location = await self.submit(
            "/login", {"usuario": usuario, "contrasena": contrasena}
        )
        assert status == 303
        return location

    async def fill(self, applicant: dict[str, str], vehicle: dict[str, str]) -> None:
        status, doc, location = await self.submit("/tramites/nuevo/solicitante", applicant)
        assert (status, location) == (303, "/tramites/nuevo/vehiculo"), doc.field_errors()
        status, doc, location = await self.submit("/tramites/nuevo/vehiculo", vehicle)
        assert (status, location) == (303, "/tramites/nuevo/revision"), doc.field_errors()

    async def confirm(self) -> str:
        _, review, _ = await self.get("/tramites/nuevo/revision")
        form = review.one("form", id="confirmar")
        status, _, resp = await self.post(form.attrs["action"], {"csrf_token": review.csrf()})
        assert status == 303
        return resp.headers["Location"]

    async def apply(self, referencia: str = "app-0001", **vehicle: str) -> str:
        """One whole submission; returns its status page's path."""
        await self.fill(applicant_form(referencia=referencia), vehicle_form(**vehicle))
        return await self.confirm()

    async def wait_ready(self, status_path: str, timeout: float = 5.0) -> Doc:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            async with self.http.get(self.sim.url + status_path + ".json") as resp:
                state = (await resp.json())["estado"]
            if state != "procesando" or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        _, doc, _ = await self.get(status_path)
        return doc


@pytest.fixture
async def portal() -> AsyncIterator[PortalSimulator]:
    sim = PortalSimulator(PortalConfig(processing_seconds=0.3), users=dict(PORTAL_USERS))
    await sim.start(host="127.0.0.1", port=0)
    yield sim
    await sim.stop()


@pytest.fixture
async def portal_client(portal: PortalSimulator) -> AsyncIterator[PortalClient]:
    # unsafe=True: aiohttp's jar otherwise ignores cookies from an IP address like 127.0.0.1.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield PortalClient(portal, http)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, for the stand-ins' pages driven as a person's browser drives them."""
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()
