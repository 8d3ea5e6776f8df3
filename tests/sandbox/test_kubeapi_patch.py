"""Patches and PUT: the four content types, optimistic concurrency, generation and no-ops."""

from __future__ import annotations

from .conftest import WIDGETS, Kube, widget

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SMP = "application/strategic-merge-patch+json"


async def test_merge_patch_bumps_generation_only_on_spec(kube: Kube) -> None:
    created = await kube.create(WIDGETS, widget("w", replicas=1))
    status, patched = await kube.request("PATCH", f"{WIDGETS}/w", {"spec": {"replicas": 2}}, MERGE)
    assert status == 200 and patched["spec"]["replicas"] == 2
    assert patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    _, labelled = await kube.request(
        "PATCH", f"{WIDGETS}/w", {"metadata": {"labels": {"a": "b"}}}, MERGE
    )
    assert labelled["metadata"]["labels"] == {"a": "b"}
    assert labelled["metadata"]["generation"] == 2
    assert labelled["metadata"]["resourceVersion"] != patched["metadata"]["resourceVersion"]
    _, removed = await kube.request("PATCH", f"{WIDGETS}/w", {"spec": {"color": None}}, MERGE)
    # Removing a defaulted field puts the default back, as kube's defaulting does.
    assert removed["spec"]["color"] == "blue"


async def test_noop_patch_keeps_resource_version(kube: Kube) -> None:
    created = await kube.create(WIDGETS, widget("w", replicas=3))
    status, same = await kube.request("PATCH", f"{WIDGETS}/w", {"spec": {"replicas": 3}}, MERGE)
    assert status == 200
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert same["metadata"]["generation"] == 1


async def test_json_patch_and_failed_test_is_422(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("w", replicas=1))
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
    ]
    status, obj = await kube.request("PATCH", f"{WIDGETS}/w", ops, JSON_PATCH)
    assert status == 200 and obj["spec"]["replicas"] == 5
    status, err = await kube.request("PATCH", f"{WIDGETS}/w", ops, JSON_PATCH)
    assert status == 422 and err["kind"] == "Status" and err["code"] == 422
    _, unchanged = await kube.request("GET", f"{WIDGETS}/w")
    assert unchanged["spec"]["replicas"] == 5


async def test_strategic_merge_rejected_for_custom_resources(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("w"))
    status, err = await kube.request("PATCH", f"{WIDGETS}/w", {"spec": {"replicas": 2}}, SMP)
    assert status == 415 and err["reason"] == "UnsupportedMediaType"


async def test_strategic_merge_merges_keyed_lists_of_builtins(kube: Kube) -> None:
    pods = "/api/v1/namespaces/default/pods"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "finalizers": ["a"]},
        "spec": {
            "containers": [
                {"name": "main", "image": "img:1", "env": [{"name": "A", "value": "1"}]},
                {"name": "side", "image": "side:1"},
            ]
        },
    }
    await kube.create(pods, pod)
    patch = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "containers": [{"name": "main", "image": "img:2", "env": [{"name": "B", "value": "2"}]}]
        },
    }
    status, obj = await kube.request("PATCH", f"{pods}/p", patch, SMP)
    assert status == 200
    containers = {c["name"]: c for c in obj["spec"]["containers"]}
    assert set(containers) == {"main", "side"}
    assert containers["main"]["image"] == "img:2"
    assert [e["name"] for e in containers["main"]["env"]] == ["A", "B"]
    assert obj["metadata"]["finalizers"] == ["a", "b"]
    delete = {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}
    _, obj = await kube.request("PATCH", f"{pods}/p", delete, SMP)
    assert [c["name"] for c in obj["spec"]["containers"]] == ["main"]


async def test_put_with_stale_resource_version_is_409_conflict(kube: Kube) -> None:
    created = await kube.create(WIDGETS, widget("w"))
    first = {**created, "spec": {**created["spec"], "replicas": 4}}
    status, updated = await kube.request("PUT", f"{WIDGETS}/w", first)
    assert (
        status == 200
        and updated["spec"]["replicas"] == 4
        and updated["metadata"]["generation"] == 2
    )
    stale = {**created, "spec": {**created["spec"], "replicas": 7}}
    status, err = await kube.request("PUT", f"{WIDGETS}/w", stale)
    assert status == 409 and err["reason"] == "Conflict" and err["details"]["name"] == "w"
    assert "the object has been modified" in err["message"]
    no_rv = {**updated, "metadata": {"name": "w"}}
    status, err = await kube.request("PUT", f"{WIDGETS}/w", no_rv)
    assert status == 422 and "must be specified for an update" in err["message"]
    status, err = await kube.request("PUT", f"{WIDGETS}/other", updated)
    assert status in (400, 404)


async def test_patch_with_resource_version_precondition(kube: Kube) -> None:
    created = await kube.create(WIDGETS, widget("w"))
    rv = created["metadata"]["resourceVersion"]
    status, _ = await kube.request(
        "PATCH",
        f"{WIDGETS}/w",
        {"metadata": {"resourceVersion": rv}, "spec": {"replicas": 2}},
        MERGE,
    )
    assert status == 200
    status, err = await kube.request(
        "PATCH",
        f"{WIDGETS}/w",
        {"metadata": {"resourceVersion": rv}, "spec": {"replicas": 3}},
        MERGE,
    )
    assert status == 409 and err["reason"] == "Conflict"


async def test_put_on_builtin_without_resource_version_is_allowed(kube: Kube) -> None:
    cms = "/api/v1/namespaces/default/configmaps"
    await kube.create(
        cms,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}},
    )
    status, obj = await kube.request(
        "PUT",
        f"{cms}/c",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}},
    )
    assert status == 200 and obj["data"] == {"a": "2"} and "generation" not in obj["metadata"]


async def test_secret_string_data_is_folded_into_data(kube: Kube) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "stringData": {"curp": "X"},
    }
    obj = await kube.create("/api/v1/namespaces/default/secrets", secret)
    assert obj["data"] == {"curp": "WA=="} and "stringData" not in obj and obj["type"] == "Opaque"


async def test_server_side_apply_creates_then_updates(kube: Kube) -> None:
    body = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: applied\n"
    body += "spec:\n  size: large\n"
    path = f"{WIDGETS}/applied?fieldManager=test"
    status, obj = await kube.request("PATCH", path, body, "application/apply-patch+yaml")
    assert status == 201 and obj["spec"]["size"] == "large"
    status, obj = await kube.request(
        "PATCH", path, body.replace("large", "medium"), "application/apply-patch+yaml"
    )
    assert status == 200 and obj["spec"]["size"] == "medium"
    status, _ = await kube.request(
        "PATCH", f"{WIDGETS}/applied", body, "application/apply-patch+yaml"
    )
    assert status == 400
