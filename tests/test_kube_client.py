"""`permisos.kube`, the JSON-level client on the official `kubernetes` package, against the real
kube-apiserver: reads, writes, patches, the API's errors, watches and an unprivileged user."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from permisos.kube import MERGE_PATCH, Kube, KubeError
from permisos_sandbox.cluster import ControlPlane
from tests.cluster import eventually


@pytest.fixture
async def admin(control_plane: ControlPlane) -> AsyncIterator[Kube]:
    kube = await Kube.from_kubeconfig(control_plane.admin_kubeconfig)
    yield kube
    await kube.close()


@pytest.fixture
async def namespace(admin: Kube) -> str:
    """A new namespace, once the root CA publisher has put kube-root-ca.crt in it (it does so
    in its own time), so the tests see it settled."""
    name = f"kc-{uuid.uuid4().hex[:8]}"
    await admin.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    await eventually(lambda: admin.get(f"/api/v1/namespaces/{name}/configmaps/kube-root-ca.crt"))
    return name


async def test_create_read_patch_and_delete_a_configmap(admin: Kube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    created = await admin.request(
        "POST", path, body={"metadata": {"name": "settings"}, "data": {"level": "INFO"}}
    )
    assert created["metadata"]["uid"]
    patched = await admin.request(
        "PATCH",
        f"{path}/settings",
        body={"data": {"level": "DEBUG"}},
        content_type=MERGE_PATCH,
    )
    assert patched["data"] == {"level": "DEBUG"}
    assert (await admin.get(f"{path}/settings") or {})["data"]["level"] == "DEBUG"
    listed = await admin.request("GET", path, query={"labelSelector": None, "limit": 10})
    assert [i["metadata"]["name"] for i in listed["items"]] == ["kube-root-ca.crt", "settings"]
    await admin.request("DELETE", f"{path}/settings")
    assert await admin.get(f"{path}/settings") is None


async def test_the_api_s_errors_carry_its_status(admin: Kube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    await admin.request("POST", path, body={"metadata": {"name": "twice"}})
    with pytest.raises(KubeError) as conflict:
        await admin.request("POST", path, body={"metadata": {"name": "twice"}})
    assert (conflict.value.status, conflict.value.reason) == (409, "AlreadyExists")
    assert 'configmaps "twice" already exists' in conflict.value.message

    with pytest.raises(KubeError) as invalid:
        await admin.request("POST", path, body={"metadata": {"name": "Not_A_Name"}})
    assert (invalid.value.status, invalid.value.reason) == (422, "Invalid")


async def test_a_watch_streams_changes_from_a_resource_version(admin: Kube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    version = (await admin.request("GET", path))["metadata"]["resourceVersion"]
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        async for kind, obj in admin.watch(path, resource_version=version, timeout_seconds=20):
            # Only ours: the root CA publisher adds kube-root-ca.crt to a new namespace in its
            # own time, sometimes after the listing above.
            if kind in ("ADDED", "MODIFIED", "DELETED") and obj["metadata"]["name"] == "watched":
                seen.append((kind, obj["metadata"]["name"]))
                if kind == "DELETED":
                    return

    watcher = asyncio.create_task(follow())
    await admin.request("POST", path, body={"metadata": {"name": "watched"}})
    await admin.request(
        "PATCH", f"{path}/watched", body={"data": {"a": "1"}}, content_type=MERGE_PATCH
    )
    await admin.request("DELETE", f"{path}/watched")
    await asyncio.wait_for(watcher, 20)
    assert seen == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]


async def test_a_user_without_a_role_is_refused(
    control_plane: ControlPlane, namespace: str
) -> None:
    nobody = await Kube.from_kubeconfig(control_plane.kubeconfig_for("nobody"))
    try:
        with pytest.raises(KubeError) as refused:
            await nobody.get(f"/api/v1/namespaces/{namespace}/secrets")
        assert (refused.value.status, refused.value.reason) == (403, "Forbidden")
        assert 'User "nobody" cannot list resource "secrets"' in refused.value.message
    finally:
        await nobody.close()
