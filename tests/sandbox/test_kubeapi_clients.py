"""The project's own clients against the emulator: lightkube, and a small Kopf operator."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

from .conftest import WIDGETS, Kube, widget

Widget = create_namespaced_resource("example.com", "v1", "Widget", "widgets")


async def test_lightkube_crud_status_and_watch(kube: Kube) -> None:
    client = AsyncClient(config=KubeConfig.from_file(kube.kubeconfig), namespace="default")
    created = await client.create(
        Widget(metadata=ObjectMeta(name="lk", labels={"a": "b"}), spec={"size": "large"})
    )
    assert created.metadata.uid and created.spec["color"] == "blue"
    try:
        await client.create(Widget(metadata=ObjectMeta(name="lk"), spec={"size": "large"}))
        raise AssertionError("expected AlreadyExists")
    except ApiError as exc:
        assert exc.status.code == 409 and exc.status.reason == "AlreadyExists"
    patched = await client.patch(
        Widget.Status, "lk", {"status": {"phase": "Running"}}, patch_type=PatchType.MERGE
    )
    assert patched.status["phase"] == "Running"
    names = [w.metadata.name async for w in client.list(Widget, labels={"a": "b"})]
    assert names == ["lk"]
    events: list[tuple[str, str]] = []

    async def consume() -> None:
        async for kind, obj in client.watch(ConfigMap, namespace="default"):
            events.append((kind, obj.metadata.name))
            if len(events) == 2:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    await client.create(ConfigMap(metadata=ObjectMeta(name="c1"), data={"k": "v"}))
    await client.delete(ConfigMap, "c1")
    await asyncio.wait_for(task, 5)
    assert events == [("ADDED", "c1"), ("DELETED", "c1")]
    scale = await client.get(Widget.Scale, "lk")
    assert scale.spec.replicas == 1
    await client.close()


async def test_kopf_operator_handles_create_and_delete(kube: Kube) -> None:
    registry = kopf.OperatorRegistry()
    handled: list[str] = []

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=kube.url, insecure=True)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.watching.server_timeout = 5
        settings.posting.level = logging.INFO

    @kopf.on.create("example.com", "v1", "widgets", registry=registry)
    def created(name: str, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        handled.append(f"create:{name}")
        kopf.info(body, reason="Made", message="the widget was made")
        patch.status["phase"] = "Running"

    @kopf.on.delete("example.com", "v1", "widgets", registry=registry)
    def deleted(name: str, **_: Any) -> None:
        handled.append(f"delete:{name}")

    stop = asyncio.Event()
    ready = asyncio.Event()
    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "default"},
    }
    await kube.create("/apis/kopf.dev/v1/clusterkopfpeerings", peering)
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            clusterwide=True,
            peering_name="default",
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await kube.create(WIDGETS, widget("k"))
        obj: dict[str, Any] = {}
        for _ in range(200):
            _, obj = await kube.request("GET", f"{WIDGETS}/k")
            if (obj.get("status") or {}).get("phase") == "Running":
                break
            await asyncio.sleep(0.05)
        assert obj["status"]["phase"] == "Running" and obj["metadata"]["finalizers"]
        assert handled == ["create:k"]
        _, peers = await kube.request("GET", "/apis/kopf.dev/v1/clusterkopfpeerings/default")
        assert peers.get("status"), "Kopf announced itself in the peering object"
        messages: list[str] = []
        for _ in range(100):
            _, events = await kube.request(
                "GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dk"
            )
            messages = [e["message"] for e in events["items"]]
            if "the widget was made" in messages:
                break
            await asyncio.sleep(0.1)
        assert "the widget was made" in messages
        await kube.request("DELETE", f"{WIDGETS}/k")
        for _ in range(200):
            status, _ = await kube.request("GET", f"{WIDGETS}/k")
            if status == 404:
                break
            await asyncio.sleep(0.05)
        assert status == 404 and handled == ["create:k", "delete:k"]
    finally:
        stop.set()
        await asyncio.wait_for(operator, 15)
