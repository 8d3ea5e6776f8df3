"""Status and scale subresources change only their part of the object."""

from __future__ import annotations

from .conftest import WIDGETS, Kube, widget

MERGE = "application/merge-patch+json"


async def test_create_drops_status_and_main_writes_ignore_it(kube: Kube) -> None:
    body = widget("w")
    body["status"] = {"phase": "Done"}
    created = await kube.create(WIDGETS, body)
    assert "status" not in created
    _, patched = await kube.request(
        "PATCH", f"{WIDGETS}/w", {"status": {"phase": "Running"}, "spec": {"replicas": 2}}, MERGE
    )
    assert "status" not in patched and patched["spec"]["replicas"] == 2


async def test_status_writes_change_only_status(kube: Kube) -> None:
    created = await kube.create(WIDGETS, widget("w"))
    patch = {
        "status": {"phase": "Running"},
        "spec": {"replicas": 9},
        "metadata": {"labels": {"x": "y"}},
    }
    status, obj = await kube.request("PATCH", f"{WIDGETS}/w/status", patch, MERGE)
    assert status == 200
    assert obj["status"] == {"phase": "Running"}
    assert obj["spec"]["replicas"] == 1 and "labels" not in obj["metadata"]
    assert obj["metadata"]["generation"] == 1
    assert int(obj["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    status, got = await kube.request("GET", f"{WIDGETS}/w/status")
    assert status == 200 and got["status"]["phase"] == "Running"
    put = {**obj, "status": {"phase": "Done", "replicas": 2}}
    status, obj = await kube.request("PUT", f"{WIDGETS}/w/status", put)
    assert status == 200 and obj["status"] == {"phase": "Done", "replicas": 2}
    stale = {**created, "status": {"phase": "Pending"}}
    status, err = await kube.request("PUT", f"{WIDGETS}/w/status", stale)
    assert status == 409 and err["reason"] == "Conflict"


async def test_status_writes_are_validated(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("w"))
    status, err = await kube.request(
        "PATCH", f"{WIDGETS}/w/status", {"status": {"phase": "Exploded"}}, MERGE
    )
    assert status == 422 and err["details"]["causes"][0]["field"] == "status.phase"
    assert 'Unsupported value: "Exploded"' in err["message"]


async def test_scale_subresource(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("w", replicas=2))
    await kube.request(
        "PATCH", f"{WIDGETS}/w/status", {"status": {"replicas": 1, "selector": "app=w"}}, MERGE
    )
    status, scale = await kube.request("GET", f"{WIDGETS}/w/scale")
    assert status == 200
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 1, "selector": "app=w"}
    status, scaled = await kube.request(
        "PATCH", f"{WIDGETS}/w/scale", {"spec": {"replicas": 5}}, MERGE
    )
    assert status == 200 and scaled["spec"]["replicas"] == 5
    put = {**scaled, "spec": {"replicas": 6}}
    status, scaled = await kube.request("PUT", f"{WIDGETS}/w/scale", put)
    assert status == 200 and scaled["spec"]["replicas"] == 6
    _, obj = await kube.request("GET", f"{WIDGETS}/w")
    assert obj["spec"]["replicas"] == 6 and obj["status"]["replicas"] == 1
    assert obj["metadata"]["generation"] == 3
    status, err = await kube.request(
        "PATCH", f"{WIDGETS}/w/scale", {"spec": {"replicas": 1000}}, MERGE
    )
    assert status == 422 and "less than or equal to 100" in err["message"]


async def test_kubectl_scale(kube: Kube) -> None:
    rp = {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "RunnerPool",
        "metadata": {"name": "default"},
        "spec": {"replicas": 2},
    }
    await kube.create("/apis/permisosdigitales.mx/v1alpha1/namespaces/default/runnerpools", rp)
    _, out, _ = await kube.kubectl("scale", "runnerpool/default", "--replicas=3")
    assert "scaled" in out
    _, obj = await kube.request(
        "GET", "/apis/permisosdigitales.mx/v1alpha1/namespaces/default/runnerpools/default"
    )
    assert obj["spec"]["replicas"] == 3
    await kube.create(WIDGETS, widget("w"))
    await kube.kubectl("scale", "wd/w", "--replicas=4")
    _, obj = await kube.request("GET", f"{WIDGETS}/w")
    assert obj["spec"]["replicas"] == 4


async def test_pod_status_subresource(kube: Kube) -> None:
    pods = "/api/v1/namespaces/default/pods"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"},
    }
    created = await kube.create(pods, pod)
    assert created["status"]["phase"] == "Pending"
    assert created["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    terminated = {
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {"name": "c", "state": {"terminated": {"exitCode": 0, "message": "{}"}}}
            ],
        }
    }
    _, obj = await kube.request("PATCH", f"{pods}/p/status", terminated, MERGE)
    assert obj["status"]["phase"] == "Succeeded"
