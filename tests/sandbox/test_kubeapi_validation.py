"""Custom resources are pruned, defaulted and validated against the CRD's schema, CEL included."""

from __future__ import annotations

from typing import Any

from .conftest import WIDGETS, Kube, widget

MERGE = "application/merge-patch+json"


async def invalid(kube: Kube, body: dict[str, Any]) -> dict[str, Any]:
    status, err = await kube.request("POST", WIDGETS, body)
    assert status == 422, err
    assert err["kind"] == "Status" and err["reason"] == "Invalid" and err["code"] == 422
    assert err["details"]["kind"] == "Widget" and err["details"]["group"] == "example.com"
    return err


async def test_defaults_apply_including_nested_and_empty_objects(kube: Kube) -> None:
    obj = await kube.create(WIDGETS, widget("w"))
    assert obj["spec"]["color"] == "blue" and obj["spec"]["replicas"] == 1
    assert obj["spec"]["options"] == {"retries": 3}
    obj = await kube.create(WIDGETS, widget("v", options={"verbose": True}))
    assert obj["spec"]["options"] == {"verbose": True, "retries": 3}


async def test_unknown_fields_are_pruned_except_preserved(kube: Kube) -> None:
    body = widget("w", bogus=1, extra={"anything": {"goes": True}})
    body["toplevel"] = "x"
    status, obj = await kube.request("POST", f"{WIDGETS}?fieldValidation=Ignore", body)
    assert status == 201
    assert "bogus" not in obj["spec"] and "toplevel" not in obj
    assert obj["spec"]["extra"] == {"anything": {"goes": True}}
    status, err = await kube.request(
        "POST", f"{WIDGETS}?fieldValidation=Strict", widget("s", bogus=1)
    )
    assert status == 400 and 'unknown field "spec.bogus"' in err["message"]
    async with kube.http.post(
        f"{kube.url}{WIDGETS}?fieldValidation=Warn", json=widget("x", bogus=1)
    ) as resp:
        assert resp.status == 201 and "spec.bogus" in resp.headers["Warning"]


async def test_maximum_message_matches_kube(kube: Kube) -> None:
    err = await invalid(kube, widget("w", replicas=200))
    assert err["message"] == (
        'Widget.example.com "w" is invalid: spec.replicas: Invalid value: 200: '
        "spec.replicas in body should be less than or equal to 100"
    )
    assert err["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 200: spec.replicas in body should be less than or equal to"
            " 100",
            "field": "spec.replicas",
        }
    ]


async def test_each_schema_keyword_is_enforced(kube: Kube) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {"size": "huge"},
            "spec.size",
            'Unsupported value: "huge": supported values: "small", "medium", "large"',
        ),
        ({"color": "Red"}, "spec.color", "should match '^[a-z]+$'"),
        ({"color": "abcdefghijkl"}, "spec.color", "Too long: may not be more than 10 bytes"),
        ({"replicas": -1}, "spec.replicas", "greater than or equal to 0"),
        ({"replicas": "two"}, "spec.replicas", 'must be of type integer: "string"'),
        ({"owner": ""}, "spec.owner", "should be at least 1 chars long"),
        ({"due": "tomorrow"}, "spec.due", "must be of type date-time"),
        ({"tags": ["a", "b", "c", "d"]}, "spec.tags", "must have at most 3 items"),
        ({"port": True}, "spec.port", "must be of type integer or string"),
    ]
    for spec, field, text in cases:
        err = await invalid(kube, widget("w", **spec))
        causes = err["details"]["causes"]
        assert causes[0]["field"] == field, (spec, causes)
        assert text in err["message"], (spec, err["message"])
    body = widget("w")
    del body["spec"]["size"]
    err = await invalid(kube, body)
    assert err["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.size",
    }


async def test_valid_formats_and_int_or_string(kube: Kube) -> None:
    obj = await kube.create(WIDGETS, widget("w", port="http", due="2026-01-01T00:00:00Z"))
    assert obj["spec"]["port"] == "http"
    await kube.create(WIDGETS, widget("v", port=8080))


async def test_cel_rule_on_create_and_update(kube: Kube) -> None:
    err = await invalid(kube, widget("w", replicas=5, maxReplicas=3))
    assert err["details"]["causes"][0]["field"] == "spec"
    assert 'spec: Invalid value: "object": replicas must not exceed maxReplicas' in err["message"]
    await kube.create(WIDGETS, widget("w", replicas=2, maxReplicas=3))
    status, err = await kube.request("PATCH", f"{WIDGETS}/w", {"spec": {"replicas": 4}}, MERGE)
    assert status == 422 and "replicas must not exceed maxReplicas" in err["message"]


async def test_transition_rule_only_on_update(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("w", owner="alice"))
    status, err = await kube.request("PATCH", f"{WIDGETS}/w", {"spec": {"owner": "bob"}}, MERGE)
    assert status == 422 and "owner is immutable" in err["message"]
    assert err["details"]["causes"][0]["field"] == "spec.owner"
    status, _ = await kube.request("PATCH", f"{WIDGETS}/w", {"spec": {"replicas": 3}}, MERGE)
    assert status == 200


async def test_several_errors_are_listed(kube: Kube) -> None:
    err = await invalid(kube, widget("w", size="huge", replicas=500))
    assert err["message"].startswith('Widget.example.com "w" is invalid: [')
    assert {c["field"] for c in err["details"]["causes"]} == {"spec.size", "spec.replicas"}


async def test_project_permitrequest_validation(kube: Kube) -> None:
    path = "/apis/permisosdigitales.mx/v1alpha1/namespaces/default/permitrequests"
    body = {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "PermitRequest",
        "metadata": {"name": "app-1"},
        "spec": {"applicationId": "app-1", "secretName": "app-1-pii", "priority": 500},
    }
    status, err = await kube.request("POST", path, body)
    assert status == 422 and err["details"]["causes"][0]["field"] == "spec.priority"
    body["spec"]["priority"] = 5
    obj = await kube.create(path, body)
    assert obj["spec"]["pool"] == "default"
    status, err = await kube.request(
        "PATCH", f"{path}/app-1", {"spec": {"applicationId": "app-2"}}, MERGE
    )
    assert status == 422 and "applicationId is immutable" in err["message"]
