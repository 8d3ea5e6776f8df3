"""Watches: atomic list-then-watch, resuming, 410 Expired, timeouts, bookmarks and selectors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from .conftest import WIDGETS, Kube, widget

MERGE = "application/merge-patch+json"
CMS = "/api/v1/namespaces/default/configmaps"


class Stream:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self, timeout: float = 2.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.resp.content.readline(), timeout)
        assert line, "stream ended"
        event: dict[str, Any] = json.loads(line)
        return event

    async def take(self, count: int, skip_bookmarks: bool = True) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        while len(seen) < count:
            event = await self.next()
            if skip_bookmarks and event["type"] == "BOOKMARK":
                continue
            seen.append((event["type"], event["object"]["metadata"]["name"]))
        return seen


@asynccontextmanager
async def watch(kube: Kube, path: str, **params: str) -> AsyncIterator[Stream]:
    async with kube.http.get(f"{kube.url}{path}", params={"watch": "true", **params}) as resp:
        assert resp.status == 200
        yield Stream(resp)


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}}


async def test_watch_without_rv_sends_existing_then_live(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("a"))
    await kube.create(WIDGETS, widget("b"))
    async with watch(kube, WIDGETS) as stream:
        assert await stream.take(2) == [("ADDED", "a"), ("ADDED", "b")]
        await kube.create(WIDGETS, widget("c"))
        await kube.request("PATCH", f"{WIDGETS}/a", {"spec": {"replicas": 2}}, MERGE)
        await kube.request("DELETE", f"{WIDGETS}/b")
        assert await stream.take(3) == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]


async def test_list_then_watch_from_list_rv_loses_nothing(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("a"))
    _, listed = await kube.request("GET", WIDGETS)
    rv = listed["metadata"]["resourceVersion"]
    # Changes between the list and the watch must be delivered from history.
    await kube.create(WIDGETS, widget("b"))
    await kube.request("PATCH", f"{WIDGETS}/a", {"metadata": {"labels": {"x": "1"}}}, MERGE)
    async with watch(kube, WIDGETS, resourceVersion=rv) as stream:
        assert await stream.take(2) == [("ADDED", "b"), ("MODIFIED", "a")]
        event_rvs = []
        await kube.create(WIDGETS, widget("c"))
        event = await stream.next()
        event_rvs.append(int(event["object"]["metadata"]["resourceVersion"]))
        assert event_rvs[0] > int(rv)


async def test_concurrent_writers_never_lose_events(kube: Kube) -> None:
    async def writer(prefix: str) -> None:
        for i in range(15):
            await kube.create(CMS, cm(f"{prefix}{i}"))

    task = asyncio.create_task(writer("early"))
    await asyncio.sleep(0.01)
    async with watch(kube, CMS) as stream:
        await task
        await writer("late")
        names = {name for _, name in await stream.take(30)}
    assert names == {f"early{i}" for i in range(15)} | {f"late{i}" for i in range(15)}


async def test_expired_resource_version_is_410_error_event(kube: Kube) -> None:
    first = await kube.create(CMS, cm("first"))
    for i in range(60):  # history_limit is 50 in the fixture
        await kube.request("PATCH", f"{CMS}/first", {"data": {"n": str(i)}}, MERGE)
    async with watch(kube, CMS, resourceVersion=first["metadata"]["resourceVersion"]) as stream:
        event = await stream.next()
        assert event["type"] == "ERROR"
        status = event["object"]
        assert (
            status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
        )
        assert await stream.resp.content.readline() == b""


async def test_timeout_seconds_ends_stream_cleanly(kube: Kube) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with watch(kube, CMS, timeoutSeconds="1") as stream:
        assert await asyncio.wait_for(stream.resp.content.readline(), 3) == b""
    assert 0.9 <= loop.time() - started < 2.5


async def test_bookmarks(kube: Kube) -> None:
    await kube.create(CMS, cm("a"))
    async with watch(kube, CMS, allowWatchBookmarks="true") as stream:
        assert (await stream.next())["type"] == "ADDED"
        event = await stream.next()
        assert event["type"] == "BOOKMARK"
        obj = event["object"]
        assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1"
        assert int(obj["metadata"]["resourceVersion"]) >= 1 and set(obj["metadata"]) == {
            "resourceVersion"
        }
    params = {
        "allowWatchBookmarks": "true",
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "resourceVersion": "1",
    }
    async with watch(kube, CMS, **params) as stream:
        assert (await stream.next())["type"] == "ADDED"
        event = await stream.next()
        assert event["type"] == "BOOKMARK"
        assert event["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_label_selector_transitions(kube: Kube) -> None:
    await kube.create(CMS, cm("a", app="x"))
    await kube.create(CMS, cm("b", app="y"))
    async with watch(kube, CMS, labelSelector="app=x") as stream:
        assert await stream.take(1) == [("ADDED", "a")]
        await kube.request("PATCH", f"{CMS}/b", {"metadata": {"labels": {"app": "x"}}}, MERGE)
        await kube.request("PATCH", f"{CMS}/a", {"metadata": {"labels": {"app": "z"}}}, MERGE)
        await kube.request("PATCH", f"{CMS}/a", {"data": {"k": "v"}}, MERGE)
        await kube.request("PATCH", f"{CMS}/b", {"data": {"k": "v"}}, MERGE)
        assert await stream.take(3) == [("ADDED", "b"), ("DELETED", "a"), ("MODIFIED", "b")]


async def test_field_selector_and_namespaces(kube: Kube) -> None:
    await kube.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
    )
    async with (
        watch(kube, "/api/v1/configmaps") as everywhere,
        watch(kube, CMS, fieldSelector="metadata.name=b") as only_b,
    ):
        await kube.create("/api/v1/namespaces/other/configmaps", cm("a"))
        await kube.create(CMS, cm("a"))
        await kube.create(CMS, cm("b"))
        assert await everywhere.take(3) == [("ADDED", "a"), ("ADDED", "a"), ("ADDED", "b")]
        assert await only_b.take(1) == [("ADDED", "b")]


async def test_deleted_event_has_newer_resource_version(kube: Kube) -> None:
    created = await kube.create(CMS, cm("a"))
    async with watch(kube, CMS, resourceVersion=created["metadata"]["resourceVersion"]) as stream:
        await kube.request("DELETE", f"{CMS}/a")
        event = await stream.next()
        assert event["type"] == "DELETED"
        assert int(event["object"]["metadata"]["resourceVersion"]) > int(
            created["metadata"]["resourceVersion"]
        )


async def test_server_stop_closes_streams(kube: Kube) -> None:
    async with watch(kube, CMS) as stream:
        stop = asyncio.create_task(kube.server.stop())
        assert await asyncio.wait_for(stream.resp.content.read(), 5) == b""
        await asyncio.wait_for(stop, 5)
