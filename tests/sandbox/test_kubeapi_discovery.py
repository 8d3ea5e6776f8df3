"""Discovery and OpenAPI: what kubectl, client-go and Kopf read before doing anything."""

from __future__ import annotations

from .conftest import Kube


async def test_version_and_core_discovery(kube: Kube) -> None:
    status, version = await kube.request("GET", "/version")
    assert status == 200
    assert version["gitVersion"].startswith("v1.32")
    assert (version["major"], version["minor"]) == ("1", "32")
    _, api = await kube.request("GET", "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    _, core = await kube.request("GET", "/api/v1")
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["pods"]["namespaced"] is True and "pods/status" in by_name
    for name in ("secrets", "configmaps", "events"):
        assert "watch" in by_name[name]["verbs"]


async def test_group_list_includes_builtin_and_crd_groups(kube: Kube) -> None:
    _, groups = await kube.request("GET", "/apis")
    assert groups["kind"] == "APIGroupList"
    names = {g["name"]: g for g in groups["groups"]}
    for group in (
        "batch",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
        "kopf.dev",
    ):
        assert group in names
    assert (
        names["permisosdigitales.mx"]["preferredVersion"]["groupVersion"]
        == "permisosdigitales.mx/v1alpha1"
    )
    status, group = await kube.request("GET", "/apis/example.com")
    assert status == 200 and group["kind"] == "APIGroup"
    assert group["versions"] == [{"groupVersion": "example.com/v1", "version": "v1"}]
    status, missing = await kube.request("GET", "/apis/nothing.example")
    assert status == 404 and missing["kind"] == "Status" and missing["reason"] == "NotFound"


async def test_crd_resource_list_has_subresources_and_names(kube: Kube) -> None:
    _, doc = await kube.request("GET", "/apis/example.com/v1")
    by_name = {r["name"]: r for r in doc["resources"]}
    widgets = by_name["widgets"]
    assert widgets["kind"] == "Widget" and widgets["singularName"] == "widget"
    assert widgets["shortNames"] == ["wd"] and widgets["categories"] == ["gadgets"]
    assert widgets["namespaced"] is True
    assert set(widgets["verbs"]) >= {"create", "get", "list", "watch", "patch", "update", "delete"}
    assert by_name["widgets/status"]["verbs"] == ["get", "patch", "update"]
    scale = by_name["widgets/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert by_name["gizmos"]["namespaced"] is False
    _, project = await kube.request("GET", "/apis/permisosdigitales.mx/v1alpha1")
    names = {r["name"] for r in project["resources"]}
    assert {"permitrequests", "permitrequests/status", "runnerpools/scale"} <= names


async def test_runtime_crd_creation_is_served_and_deletion_removes_it(kube: Kube) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "sprockets.example.org"},
        "spec": {
            "group": "example.org",
            "scope": "Namespaced",
            "names": {"kind": "Sprocket", "plural": "sprockets"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    created = await kube.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    conditions = {c["type"]: c["status"] for c in created["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert created["spec"]["names"]["singular"] == "sprocket"
    path = "/apis/example.org/v1/namespaces/default/sprockets"
    obj = await kube.create(
        path,
        {"apiVersion": "example.org/v1", "kind": "Sprocket", "metadata": {"name": "s"}, "x": 1},
    )
    assert obj["x"] == 1
    status, _ = await kube.request(
        "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/sprockets.example.org"
    )
    assert status == 200
    status, body = await kube.request("GET", path)
    assert status == 404 and body["reason"] == "NotFound"


async def test_openapi_v3_documents_crd_schema(kube: Kube) -> None:
    _, index = await kube.request("GET", "/openapi/v3")
    url = index["paths"]["apis/example.com/v1"]["serverRelativeURL"]
    status, doc = await kube.request("GET", url)
    assert status == 200
    schemas = doc["components"]["schemas"]
    widget = schemas["com.example.v1.Widget"]
    assert widget["x-kubernetes-group-version-kind"] == [
        {"group": "example.com", "version": "v1", "kind": "Widget"}
    ]
    assert widget["properties"]["spec"]["properties"]["size"]["enum"] == [
        "small",
        "medium",
        "large",
    ]
    patch = doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])


async def test_kubectl_api_resources_and_explain(kube: Kube) -> None:
    _, out, _ = await kube.kubectl("api-resources", "--api-group=example.com")
    assert "widgets" in out and "wd" in out and "Widget" in out
    _, out, _ = await kube.kubectl("explain", "widgets.spec")
    assert "KIND:       Widget" in out
    assert "What the widget should be." in out
    assert "How big the widget is." in out and "-required-" in out
    _, out, _ = await kube.kubectl("explain", "permitrequests.spec")
    assert "GROUP:      permisosdigitales.mx" in out and "applicationId" in out
