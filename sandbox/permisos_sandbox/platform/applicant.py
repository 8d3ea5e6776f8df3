"""An applicant, through the public HTTP API only: what the demo, the end-to-end test and the
benchmark do. The only things it touches besides the API are the outside world's stand-ins: the
mail outbox (the applicant's inbox) and the payments simulator's store counter (paying at OXXO)."""

from __future__ import annotations

import asyncio
import email
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

PASSWORD = "Correcto-caballo-42"  # noqa: S105 (a demo applicant's password)
FINAL_STATUSES = ("permit_ready", "permit_failed", "refunded")
# The API's settings (`extra_api_env`) for many applicants from this machine's one address: its
# per-address limits (10 registrations, 50 logins per 15 minutes) would refuse them.
ONE_ADDRESS_LIMITS = {
    "PERMISOS_API_REGISTER_LIMIT_PER_ADDRESS": "100000",
    "PERMISOS_API_LOGIN_LIMIT_PER_ADDRESS": "100000",
}
KINDS = ("permit", "certificate", "placard")


class DemoError(RuntimeError):
    """A step of the applicant's path did not go as it should; the message says which."""


def _expect(response: httpx.Response, status: int, step: str) -> dict[str, Any]:
    if response.status_code != status:
        raise DemoError(f"{step}: HTTP {response.status_code} (expected {status}): {response.text}")
    body: dict[str, Any] = response.json() if response.content else {}
    return body


@dataclass
class Progress:
    """One change seen while following a permit: the application's status and permit phase."""

    at: float
    status: str
    phase: str | None
    reason: str | None
    attempts: int


@dataclass
class Applicant:
    api_url: str
    outbox: Path
    email: str
    application: dict[str, Any]
    http: httpx.AsyncClient = field(init=False)
    token: str = ""
    application_id: str = ""
    intent_id: str = ""
    # How requests travel (the chaos load's retrying, recording one); httpx's own by default.
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.api_url, timeout=30.0, transport=self.transport)

    async def close(self) -> None:
        await self.http.aclose()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def register_and_verify(self, mail_within: float = 15.0) -> None:
        r = await self.http.post(
            "/v1/auth/register", json={"email": self.email, "password": PASSWORD}
        )
        _expect(r, 202, "register")
        token = await self._mailed_token("/verificar", mail_within)  # the page the link opens
        _expect(await self.http.get("/v1/auth/verify", params={"token": token}), 200, "verify")

    async def login(self) -> None:
        r = await self.http.post(
            "/v1/auth/login",
            json={"email": self.email, "password": PASSWORD, "issue_bearer": True},
        )
        self.token = _expect(r, 200, "login")["token"]

    async def apply(self) -> dict[str, Any]:
        r = await self.http.post("/v1/applications", json=self.application, headers=self.auth)
        body = _expect(r, 201, "apply")
        self.application_id = body["id"]
        return body

    async def pay_card(
        self, payment_method: str = "pm_card_visa", return_url: str | None = None
    ) -> dict[str, Any]:
        """With `return_url`, a card that needs 3-D Secure answers a challenge page to open."""
        body = {"method": "card", "payment_method": payment_method}
        return await self._pay(body | ({"return_url": return_url} if return_url else {}))

    async def pay_oxxo(self) -> dict[str, Any]:
        return await self._pay({"method": "oxxo"})

    async def _pay(self, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1/applications/{self.application_id}/payments"
        created = _expect(await self.http.post(path, json=body, headers=self.auth), 201, "pay")
        self.intent_id = created["intent_id"]
        return created

    async def pay_voucher_at_store(self, payments_url: str) -> None:
        """The applicant pays the OXXO voucher in cash; Stripe then tells the API by webhook."""
        async with httpx.AsyncClient(timeout=10.0) as http:
            r = await http.post(f"{payments_url}/__control/oxxo/{self.intent_id}/pay")
        _expect(r, 200, "pay the voucher at the store")

    async def get(self) -> dict[str, Any]:
        r = await self.http.get(f"/v1/applications/{self.application_id}", headers=self.auth)
        return _expect(r, 200, "read the application")

    async def history(self) -> list[dict[str, Any]]:
        r = await self.http.get(
            f"/v1/applications/{self.application_id}/permit-history", headers=self.auth
        )
        items: list[dict[str, Any]] = _expect(r, 200, "read the permit history")["items"]
        return items

    async def follow(
        self,
        within: float,
        on_change: Callable[[Progress], None] | None = None,
        every: float = 0.25,
    ) -> dict[str, Any]:
        """Polls the application until its permit is ready or failed; reports each change."""
        deadline = time.monotonic() + within
        seen: tuple[Any, ...] = ()
        while True:
            app = await self.get()
            now = (app["status"], app["permit_phase"], app["permit_reason"], app["permit_attempts"])
            if now != seen:
                seen = now
                if on_change is not None:
                    on_change(Progress(time.monotonic(), *now))
            if app["status"] in FINAL_STATUSES:
                return app
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the permit was not ready within {within:.0f}s "
                    f"(status {app['status']}, phase {app['permit_phase']})"
                )
            await asyncio.sleep(every)

    async def permits(self) -> dict[str, Any]:
        r = await self.http.get(
            f"/v1/applications/{self.application_id}/permits", headers=self.auth
        )
        return _expect(r, 200, "list the permit's PDFs")

    async def download(self, folder: Path) -> list[Path]:
        """Downloads the three PDFs, checking each against the checksum the API lists."""
        listing = await self.permits()
        listed = sorted(item["kind"] for item in listing["items"])
        if listed != sorted(KINDS):
            raise DemoError(f"the API lists {listed or 'no PDFs'}, not the three of a permit")
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        paths = []
        for item in listing["items"]:
            r = await self.http.get(
                f"/v1/applications/{self.application_id}/permits/{item['kind']}",
                headers=self.auth,
                follow_redirects=True,
            )
            _expect_pdf(r, item)
            path = folder / f"{item['kind']}-{listing['folio']}.pdf"
            await asyncio.to_thread(path.write_bytes, r.content)
            paths.append(path)
        return paths

    async def _mailed_token(self, path: str, within: float = 15.0) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for message in _mail_to(self.outbox, self.email):
                for part in message.walk():
                    body = part.get_payload(decode=True)
                    if part.get_content_type() != "text/plain" or not isinstance(body, bytes):
                        continue
                    found = re.search(re.escape(path) + r"\?token=(\S+)", body.decode())
                    if found:
                        return unquote(found.group(1))
            await asyncio.sleep(0.1)
        raise DemoError(f"no mail with a {path} link reached {self.outbox} within {within:.0f}s")


# Each mail parsed once: a file is renamed into the outbox whole and never changes, and a load
# of applicants waiting at once would otherwise parse the whole outbox ten times a second each.
_PARSED: dict[Path, email.message.Message] = {}


def _mail_to(outbox: Path, to: str) -> list[email.message.Message]:
    found = []
    for path in sorted(outbox.glob("*.eml")):
        message = _PARSED.get(path)
        if message is None:
            message = _PARSED[path] = email.message_from_bytes(path.read_bytes())
        if message["To"] == to:
            found.append(message)
    return found


def _expect_pdf(response: httpx.Response, item: dict[str, Any]) -> None:
    if response.status_code != 200:
        raise DemoError(f"download {item['kind']}: HTTP {response.status_code}")
    if not response.content.startswith(b"%PDF-"):
        raise DemoError(f"download {item['kind']}: not a PDF")
    if hashlib.sha256(response.content).hexdigest() != item["sha256"]:
        raise DemoError(f"download {item['kind']}: its SHA-256 is not the one the API lists")
