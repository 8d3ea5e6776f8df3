"""Deletion: finalizers, deletionTimestamp, owner-reference garbage collection, namespaces."""

from __future__ import annotations

import asyncio
from typing import Any

from .conftest import WIDGETS, Kube, widget

MERGE = "application/merge-patch+json"
CMS = "/api/v1/namespaces/default/configmaps"


def owned_cm(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "ownerReferences": [ref]},
    }


async def eventually_gone(kube: Kube, path: str) -> None:
    for _ in range(100):
        status, _ = await kube.request("GET", path)
        if status == 404:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} still exists")


async def test_delete_without_finalizers_returns_object_and_removes_it(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("w"))
    status, body = await kube.request("DELETE", f"{WIDGETS}/w")
    assert status == 200 and body["kind"] == "Widget"
    status, _ = await kube.request("GET", f"{WIDGETS}/w")
    assert status == 404
    status, err = await kube.request("DELETE", f"{WIDGETS}/w")
    assert status == 404 and err["reason"] == "NotFound"


async def test_builtin_delete_returns_success_status(kube: Kube) -> None:
    await kube.create(CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    status, body = await kube.request("DELETE", f"{CMS}/c")
    assert status == 200 and body["kind"] == "Status" and body["status"] == "Success"
    assert body["details"]["name"] == "c"


async def test_finalizers_hold_the_object_until_removed(kube: Kube) -> None:
    body = widget("w")
    body["metadata"]["finalizers"] = ["example.com/cleanup"]
    created = await kube.create(WIDGETS, body)
    status, deleting = await kube.request("DELETE", f"{WIDGETS}/w")
    assert status == 202
    meta = deleting["metadata"]
    assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 0
    assert meta["generation"] == created["metadata"]["generation"] + 1
    status, still = await kube.request("GET", f"{WIDGETS}/w")
    assert status == 200 and still["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]
    status, err = await kube.request(
        "PATCH", f"{WIDGETS}/w", {"metadata": {"finalizers": ["example.com/cleanup", "new"]}}, MERGE
    )
    assert status == 422 and "no new finalizers" in err["message"]
    status, last = await kube.request(
        "PATCH", f"{WIDGETS}/w", {"metadata": {"finalizers": None}}, MERGE
    )
    assert status == 200 and last["metadata"]["name"] == "w"
    status, _ = await kube.request("GET", f"{WIDGETS}/w")
    assert status == 404


async def test_background_cascade_deletes_dependents(kube: Kube) -> None:
    owner = await kube.create(WIDGETS, widget("owner"))
    await kube.create(CMS, owned_cm("child", owner))
    grandchild_owner = (await kube.request("GET", f"{CMS}/child"))[1]
    await kube.create(CMS, owned_cm("grandchild", grandchild_owner))
    await kube.create(
        CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bystander"}}
    )
    await kube.request("DELETE", f"{WIDGETS}/owner")
    await eventually_gone(kube, f"{CMS}/child")
    await eventually_gone(kube, f"{CMS}/grandchild")
    status, _ = await kube.request("GET", f"{CMS}/bystander")
    assert status == 200


async def test_orphan_policy_keeps_dependents(kube: Kube) -> None:
    owner = await kube.create(WIDGETS, widget("owner"))
    await kube.create(CMS, owned_cm("child", owner))
    status, _ = await kube.request(
        "DELETE",
        f"{WIDGETS}/owner",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"},
    )
    assert status == 200
    await asyncio.sleep(0.05)
    status, child = await kube.request("GET", f"{CMS}/child")
    assert status == 200 and "ownerReferences" not in child["metadata"]


async def test_foreground_deletes_dependents_first(kube: Kube) -> None:
    owner = await kube.create(WIDGETS, widget("owner"))
    await kube.create(CMS, owned_cm("child", owner))
    status, deleting = await kube.request("DELETE", f"{WIDGETS}/owner?propagationPolicy=Foreground")
    assert status == 202 and "foregroundDeletion" in deleting["metadata"]["finalizers"]
    await eventually_gone(kube, f"{CMS}/child")
    await eventually_gone(kube, f"{WIDGETS}/owner")


async def test_job_pods_cascade_when_owner_of_job_goes(kube: Kube) -> None:
    owner = await kube.create(WIDGETS, widget("pr"))
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "pr-a1",
            "ownerReferences": [
                {
                    "apiVersion": "example.com/v1",
                    "kind": "Widget",
                    "name": "pr",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "r", "image": "runner:1"}],
                }
            },
        },
    }
    created = await kube.create("/apis/batch/v1/namespaces/default/jobs", job)
    labels = created["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "pr-a1"
    assert (
        created["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"]
        == created["metadata"]["uid"]
    )
    await kube.request("DELETE", f"{WIDGETS}/pr")
    await eventually_gone(kube, "/apis/batch/v1/namespaces/default/jobs/pr-a1")
    bad = {
        **job,
        "metadata": {"name": "bad"},
        "spec": {"template": {"spec": {"containers": [{"name": "r", "image": "i"}]}}},
    }
    status, err = await kube.request("POST", "/apis/batch/v1/namespaces/default/jobs", bad)
    assert (
        status == 422 and err["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"
    )


async def test_namespace_deletion_removes_its_content(kube: Kube) -> None:
    await kube.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}}
    )
    await kube.create("/apis/example.com/v1/namespaces/tmp/widgets", widget("w"))
    status, ns = await kube.request("DELETE", "/api/v1/namespaces/tmp")
    assert status == 200 and ns["status"]["phase"] == "Terminating"
    await eventually_gone(kube, "/apis/example.com/v1/namespaces/tmp/widgets/w")
    await eventually_gone(kube, "/api/v1/namespaces/tmp")
    status, _ = await kube.request("DELETE", "/api/v1/namespaces/default")
    assert status == 403


async def test_delete_collection_with_selector(kube: Kube) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        await kube.create(
            CMS,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"app": app}},
            },
        )
    status, _ = await kube.request("DELETE", f"{CMS}?labelSelector=app%3Dx")
    assert status == 200
    _, listed = await kube.request("GET", CMS)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c"]
