"""The applicants' HTTP client under chaos: it retries as a real client would (a refused or
dropped connection, a 503 with Retry-After) and records every answer the API gave, so the checks
can judge each one afterwards."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import httpx

# Ids in paths become placeholders: the record names the route, never an application.
_IDS = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "{id}"),
    (re.compile(r"\b(pi|pm|evt|ch|re)_[A-Za-z0-9]+"), "{stripe_id}"),
)
# The longest a client keeps trying one request: longer than any single fault (the
# kube-apiserver's 60 s outage stops the Service forward from finding endpoints).
RETRY_FOR_SECONDS = 240.0
# A Retry-After longer than this is waited in steps of it (the answer may come sooner).
MAX_WAIT_SECONDS = 10.0


def route_of(path: str) -> str:
    for pattern, placeholder in _IDS:
        path = pattern.sub(placeholder, path)
    return path


@dataclass(frozen=True)
class Call:
    """One try of one request: the API's answer, or the transport error instead (status None)."""

    method: str
    route: str
    started: float  # time.time(), as the fault windows
    ended: float
    status: int | None
    retry_after: str | None = None
    error: str | None = None


@dataclass
class CallLog:
    calls: list[Call] = field(default_factory=list)

    def add(self, call: Call) -> None:
        self.calls.append(call)


class RetryingTransport(httpx.AsyncBaseTransport):
    """Tries a request again after a connection error or a 503 with Retry-After, for up to
    RETRY_FOR_SECONDS; records every try in `log`. A dropped connection may have reached the
    server: the load's steps then read back what happened (as a real client must)."""

    def __init__(self, log: CallLog, retry_for: float = RETRY_FOR_SECONDS) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._log = log
        self._retry_for = retry_for

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self._retry_for
        route = route_of(request.url.path)
        pause = 0.5
        while True:
            started = time.time()
            try:
                response = await self._inner.handle_async_request(request)
            except httpx.TransportError as error:
                self._log.add(
                    Call(request.method, route, started, time.time(), None, None, _name(error))
                )
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            retry_after = response.headers.get("retry-after")
            self._log.add(
                Call(request.method, route, started, time.time(), response.status_code, retry_after)
            )
            wait = _seconds(retry_after) if response.status_code == 503 else None
            if wait is None or time.monotonic() + wait > deadline:
                return response
            await response.aclose()
            await asyncio.sleep(min(wait, MAX_WAIT_SECONDS))

    async def aclose(self) -> None:
        await self._inner.aclose()


def _name(error: Exception) -> str:
    return type(error).__name__


def _seconds(retry_after: str | None) -> float | None:
    if retry_after is None:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        return None  # an HTTP date: not what this API sends; the answer goes to the caller
