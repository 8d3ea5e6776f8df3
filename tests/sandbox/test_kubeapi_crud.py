"""Create, get and list: status codes, server-set metadata, selectors and pagination."""

from __future__ import annotations

import re

from .conftest import WIDGETS, Kube, widget

CM = "/api/v1/namespaces/default/configmaps"


def configmap(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": {"a": "b"},
    }


async def test_create_returns_201_with_server_metadata(kube: Kube) -> None:
    status, obj = await kube.request("POST", WIDGETS, widget("w1"))
    assert status == 201
    meta = obj["metadata"]
    assert meta["namespace"] == "default" and meta["name"] == "w1"
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert meta["generation"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    second = await kube.create(WIDGETS, widget("w2"))
    assert int(second["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    status, got = await kube.request("GET", f"{WIDGETS}/w1")
    assert status == 200 and got == obj


async def test_create_twice_is_409_already_exists_status(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("dup"))
    status, body = await kube.request("POST", WIDGETS, widget("dup"))
    assert status == 409
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "AlreadyExists" and body["code"] == 409
    assert body["details"] == {"name": "dup", "group": "example.com", "kind": "widgets"}
    assert body["message"] == 'widgets.example.com "dup" already exists'


async def test_namespace_comes_from_url_and_must_match(kube: Kube) -> None:
    await kube.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
    )
    obj = await kube.create("/apis/example.com/v1/namespaces/other/widgets", widget("x"))
    assert obj["metadata"]["namespace"] == "other"
    body = widget("y")
    body["metadata"]["namespace"] = "default"
    status, err = await kube.request("POST", "/apis/example.com/v1/namespaces/other/widgets", body)
    assert status == 400 and err["reason"] == "BadRequest"
    status, err = await kube.request(
        "POST", "/apis/example.com/v1/namespaces/missing/widgets", widget("z")
    )
    assert status == 404 and err["details"]["kind"] == "namespaces"


async def test_generate_name_and_name_validation(kube: Kube) -> None:
    body = widget("")
    body["metadata"] = {"generateName": "gen-"}
    obj = await kube.create(WIDGETS, body)
    assert re.fullmatch(r"gen-[a-z0-9]{5}", obj["metadata"]["name"])
    status, err = await kube.request("POST", WIDGETS, widget("Bad_Name"))
    assert status == 422 and err["reason"] == "Invalid"
    assert err["details"]["causes"][0]["field"] == "metadata.name"
    assert "RFC 1123 subdomain" in err["message"]
    body["metadata"] = {}
    status, err = await kube.request("POST", WIDGETS, body)
    assert status == 422 and "name or generateName is required" in err["message"]


async def test_get_missing_is_404_status(kube: Kube) -> None:
    status, body = await kube.request("GET", f"{WIDGETS}/nope")
    assert status == 404
    assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404
    assert body["message"] == 'widgets.example.com "nope" not found'
    status, body = await kube.request("GET", "/api/v1/namespaces/default/nothings")
    assert status == 404 and body["reason"] == "NotFound"


async def test_list_kind_resource_version_and_all_namespaces(kube: Kube) -> None:
    await kube.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}
    )
    await kube.create(WIDGETS, widget("a1"))
    last = await kube.create("/apis/example.com/v1/namespaces/b/widgets", widget("b1"))
    _, listed = await kube.request("GET", WIDGETS)
    assert listed["kind"] == "WidgetList" and listed["apiVersion"] == "example.com/v1"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a1"]
    assert listed["metadata"]["resourceVersion"] == last["metadata"]["resourceVersion"]
    _, everywhere = await kube.request("GET", "/apis/example.com/v1/widgets")
    assert {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]} == {
        ("default", "a1"),
        ("b", "b1"),
    }
    _, namespaces = await kube.request("GET", "/api/v1/namespaces")
    assert "default" in {n["metadata"]["name"] for n in namespaces["items"]}
    assert namespaces["kind"] == "NamespaceList"


async def test_label_selectors(kube: Kube) -> None:
    await kube.create(CM, configmap("a", {"app": "x", "tier": "web"}))
    await kube.create(CM, configmap("b", {"app": "y", "tier": "db"}))
    await kube.create(CM, configmap("c", {"app": "z"}))
    cases = {
        "app=x": {"a"},
        "app==y": {"b"},
        "app!=x": {"b", "c"},
        "app in (x, z)": {"a", "c"},
        "app notin (x,z)": {"b"},
        "tier": {"a", "b"},
        "!tier": {"c"},
        "app in (x,y),tier=db": {"b"},
    }
    for selector, expected in cases.items():
        async with kube.http.get(f"{kube.url}{CM}", params={"labelSelector": selector}) as resp:
            body = await resp.json()
        assert {i["metadata"]["name"] for i in body["items"]} == expected, selector


async def test_field_selectors_and_unsupported_field(kube: Kube) -> None:
    await kube.create(CM, configmap("a"))
    await kube.create(CM, configmap("b"))
    async with kube.http.get(
        f"{kube.url}{CM}", params={"fieldSelector": "metadata.name=b"}
    ) as resp:
        assert [i["metadata"]["name"] for i in (await resp.json())["items"]] == ["b"]
    async with kube.http.get(
        f"{kube.url}{CM}", params={"fieldSelector": "metadata.name!=b"}
    ) as resp:
        assert [i["metadata"]["name"] for i in (await resp.json())["items"]] == ["a"]
    async with kube.http.get(
        f"{kube.url}/api/v1/configmaps", params={"fieldSelector": "metadata.namespace=default"}
    ) as r:
        assert len((await r.json())["items"]) == 2
    async with kube.http.get(f"{kube.url}{CM}", params={"fieldSelector": "data.a=b"}) as resp:
        assert resp.status == 400 and (await resp.json())["reason"] == "BadRequest"
    pods = "/api/v1/namespaces/default/pods"
    for name, node in (("p1", "n1"), ("p2", "n2")):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        }
        await kube.create(pods, pod)
    async with kube.http.get(
        f"{kube.url}{pods}", params={"fieldSelector": "spec.nodeName=n2,status.phase=Pending"}
    ) as r:
        assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["p2"]


async def test_event_field_selectors_on_involved_object(kube: Kube) -> None:
    events = "/api/v1/namespaces/default/events"
    for name, kind, uid in (("e1", "Widget", "u1"), ("e2", "Pod", "u2")):
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name},
            "involvedObject": {"kind": kind, "name": "w", "namespace": "default", "uid": uid},
            "reason": "Test",
            "message": "m",
            "type": "Normal",
        }
        await kube.create(events, event)
    selector = ",".join(
        f"involvedObject.{k}={v}"
        for k, v in {"name": "w", "namespace": "default", "kind": "Widget", "uid": "u1"}.items()
    )
    async with kube.http.get(f"{kube.url}{events}", params={"fieldSelector": selector}) as resp:
        assert [i["metadata"]["name"] for i in (await resp.json())["items"]] == ["e1"]


async def test_limit_and_continue(kube: Kube) -> None:
    for i in range(5):
        await kube.create(CM, configmap(f"cm{i}"))
    names: list[str] = []
    params = {"limit": "2"}
    pages = 0
    while True:
        async with kube.http.get(f"{kube.url}{CM}", params=params) as resp:
            body = await resp.json()
        pages += 1
        names += [i["metadata"]["name"] for i in body["items"]]
        token = body["metadata"].get("continue")
        if not token:
            break
        params = {"limit": "2", "continue": token}
    assert names == [f"cm{i}" for i in range(5)] and pages == 3


async def test_core_events_posted_like_kopf_are_accepted(kube: Kube) -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "kopf-event-"},
        "involvedObject": {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "name": "w",
            "namespace": "default",
        },
        "action": "Logging",
        "reason": "Logging",
        "message": "hello",
        "type": "Normal",
        "source": {"component": "kopf"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "eventTime": None,
        "reportingComponent": "kopf",
    }
    obj = await kube.create("/api/v1/namespaces/default/events", event)
    assert obj["metadata"]["name"].startswith("kopf-event-")
    status, _ = await kube.request("GET", "/apis/events.k8s.io/v1/namespaces/default/events")
    assert status == 200


async def test_unsupported_method_is_405_status(kube: Kube) -> None:
    status, body = await kube.request("PUT", WIDGETS, widget("x"))
    assert status == 405 and body["reason"] == "MethodNotAllowed"
