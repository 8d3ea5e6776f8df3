"""Contract tests of the local control plane: the real kube-apiserver, etcd, controllers and
scheduler of the pinned release, and what the platform relies on them for (the CRDs and their
CEL rules, RBAC, Pod Security, the Job controller, the scheduler, the audit log)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from permisos_sandbox.cluster import ControlPlane
from tests.cluster import CRDS, eventually, kubectl

RELEASE = "v1.37.2"


@pytest.fixture
async def namespace(control_plane: ControlPlane) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await kubectl(control_plane.admin_kubeconfig, "create", "namespace", name)
    return name


@pytest.fixture
async def crds(control_plane: ControlPlane) -> None:
    admin = control_plane.admin_kubeconfig
    await kubectl(admin, "apply", "--server-side", "-f", str(CRDS))
    await kubectl(admin, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))


async def get_json(kubeconfig: Path, *args: str) -> dict[str, Any]:
    _, out, _ = await kubectl(kubeconfig, "get", "-o", "json", *args)
    found: dict[str, Any] = json.loads(out)
    return found


async def apply(
    kubeconfig: Path, manifest: dict[str, Any], *, check: bool = True
) -> tuple[int, str]:
    path = kubeconfig.parent / f"manifest-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    code, out, err = await kubectl(kubeconfig, "apply", "-f", str(path), check=check)
    return code, out + err


async def test_the_server_reports_the_pinned_release(control_plane: ControlPlane) -> None:
    _, out, _ = await kubectl(control_plane.admin_kubeconfig, "version", "-o", "json")
    server = json.loads(out)["serverVersion"]
    assert server["gitVersion"] == RELEASE
    assert (server["major"], server["minor"]) == ("1", "37")
    # Started once for the session, in seconds, part by part.
    assert set(control_plane.started_in) >= {"etcd", "kube-apiserver", "total"}


async def test_the_crds_are_served_with_their_cel_rules(
    control_plane: ControlPlane, crds: None, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    request = {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "PermitRequest",
        "metadata": {"name": "app-1", "namespace": namespace},
        "spec": {"applicationId": "app-1", "secretName": "app-1-applicant"},
    }
    await apply(admin, request)
    created = await get_json(admin, "permitrequest", "app-1", "-n", namespace)
    assert created["spec"]["pool"] == "default"  # the schema's default, set by the apiserver

    too_long = {**request, "metadata": {"name": "a" * 57, "namespace": namespace}}
    code, out = await apply(admin, too_long, check=False)
    assert code != 0 and "metadata.name must be at most 56 characters" in out

    moved = {**request, "spec": {**request["spec"], "applicationId": "app-2"}}
    code, out = await apply(admin, moved, check=False)
    assert code != 0 and "applicationId is immutable" in out

    elsewhere = {**request, "spec": {**request["spec"], "secretName": "other-applicant"}}
    code, out = await apply(admin, elsewhere, check=False)
    assert code != 0 and "secretName is immutable" in out

    await apply(admin, {**request, "spec": {**request["spec"], "cancel": True}})
    code, out = await apply(
        admin, {**request, "spec": {**request["spec"], "cancel": False}}, check=False
    )
    assert code != 0 and "a cancelled PermitRequest cannot be resumed" in out

    backwards = {
        **request,
        "metadata": {"name": "app-3", "namespace": namespace},
        "spec": {
            "applicationId": "app-3",
            "secretName": "app-3-applicant",
            "retryPolicy": {"backoffSeconds": 60, "maxBackoffSeconds": 10},
        },
    }
    code, out = await apply(admin, backwards, check=False)
    assert code != 0 and "maxBackoffSeconds must not be less than backoffSeconds" in out

    pool = {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "RunnerPool",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {},
    }
    await apply(admin, pool)
    defaulted = (await get_json(admin, "runnerpool", "default", "-n", namespace))["spec"]
    assert defaulted["retryPolicy"] == {
        "maxAttempts": 5,
        "backoffSeconds": 30,
        "maxBackoffSeconds": 900,
    }
    pool["spec"] = {"retryPolicy": {"backoffSeconds": 1000}}  # above the defaulted maximum
    code, out = await apply(admin, pool, check=False)
    assert code != 0 and "maxBackoffSeconds must not be less than backoffSeconds" in out

    long_pool = {**pool, "spec": {}, "metadata": {"name": "p" * 57, "namespace": namespace}}
    code, out = await apply(admin, long_pool, check=False)
    assert code != 0 and "metadata.name must be at most 56 characters" in out

    # kubectl explain reads the schema's descriptions from the real OpenAPI document.
    _, out, _ = await kubectl(admin, "explain", "runnerpools.spec.replicas")
    assert "kubectl scale" in out


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"priority": 200}, "spec.priority", "less than or equal to 100"),
        ({"applicationId": None}, "spec.applicationId", "Required"),
        (
            {
                "vehicle": {
                    "plates": "abc",
                    "make": "N",
                    "line": "V",
                    "modelYear": 2020,
                    "serviceType": "particular",
                }
            },
            "spec.vehicle.plates",
            "should match",
        ),
        (
            {
                "vehicle": {
                    "plates": "ABC1234",
                    "make": "N",
                    "line": "V",
                    "modelYear": 2020,
                    "serviceType": "avion",
                }
            },
            "spec.vehicle.serviceType",
            "Unsupported value",
        ),
        (
            {"retryPolicy": {"backoffSeconds": 60, "maxBackoffSeconds": 10}},
            "spec.retryPolicy",
            "maxBackoffSeconds must not be less than backoffSeconds",
        ),
    ],
)
async def test_invalid_permitrequests_are_refused_naming_the_field(
    control_plane: ControlPlane,
    crds: None,
    namespace: str,
    spec: dict[str, Any],
    field: str,
    words: str,
) -> None:
    request = {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "PermitRequest",
        "metadata": {"name": "req-invalid", "namespace": namespace},
        "spec": {"applicationId": "req-invalid", "secretName": "req-invalid-applicant", **spec},
    }
    request["spec"] = {k: v for k, v in request["spec"].items() if v is not None}
    code, out = await apply(control_plane.admin_kubeconfig, request, check=False)
    assert code != 0 and field in out and words in out, out


async def test_kubectl_shows_the_printer_columns_and_scales_a_pool(
    control_plane: ControlPlane, crds: None, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    await apply(
        admin,
        {
            "apiVersion": "permisosdigitales.mx/v1alpha1",
            "kind": "PermitRequest",
            "metadata": {"name": "app-1", "namespace": namespace},
            "spec": {"applicationId": "app-1", "secretName": "app-1-applicant"},
        },
    )
    status = {
        "status": {
            "phase": "Succeeded",
            "attempts": 1,
            "result": {"folio": "F-123"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "PermitIssued",
                    "message": "ok",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    }
    await kubectl(
        admin,
        *("patch", "pr", "app-1", "-n", namespace, "--subresource=status", "--type=merge"),
        *("-p", json.dumps(status)),
    )
    _, out, _ = await kubectl(admin, "get", "permitrequests", "-n", namespace)
    header, row = (line.split() for line in out.splitlines()[:2])
    assert header[:5] == ["NAME", "PHASE", "ATTEMPTS", "FOLIO", "REASON"]
    assert row[:5] == ["app-1", "Succeeded", "1", "F-123", "PermitIssued"]
    _, out, _ = await kubectl(admin, "get", "pr", "-o", "wide", "-n", namespace)
    assert "POOL" in out.splitlines()[0] and "default" in out

    pool = {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "RunnerPool",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {"replicas": 2, "image": "permisos/browser-runner"},
    }
    await apply(admin, pool)
    await kubectl(admin, "scale", "runnerpool", "default", "--replicas=5", "-n", namespace)
    _, out, _ = await kubectl(admin, "get", "runnerpools", "-n", namespace)
    header, row = (line.split() for line in out.splitlines()[:2])
    assert header[:3] == ["NAME", "LIMIT", "RUNNING"]
    assert row[:2] == ["default", "5"]


async def test_rbac_refuses_a_user_without_a_binding_and_audits_who_did_what(
    control_plane: ControlPlane, namespace: str
) -> None:
    nobody = control_plane.kubeconfig_for("nobody@example.test")
    code, _, err = await kubectl(nobody, "get", "configmaps", "-n", namespace, check=False)
    assert code != 0 and "Forbidden" in err and "nobody@example.test" in err

    admin = control_plane.admin_kubeconfig
    await kubectl(
        admin, "create", "role", "reader", "--verb=list", "--resource=configmaps", "-n", namespace
    )
    await kubectl(
        admin,
        "create",
        "rolebinding",
        "reader",
        "--role=reader",
        "--user=nobody@example.test",
        "-n",
        namespace,
    )
    await kubectl(nobody, "get", "configmaps", "-n", namespace)

    def seen() -> list[tuple[str, int]]:
        return [
            (e["verb"], e["responseStatus"]["code"])
            for e in control_plane.audit_events()
            if e["user"].get("username") == "nobody@example.test"
            and e.get("objectRef", {}).get("namespace") == namespace
        ]

    async def both() -> list[tuple[str, int]] | None:
        found = seen()
        return found if {("list", 403), ("list", 200)} <= set(found) else None

    await eventually(both, timeout=10)


async def test_a_job_gets_a_pod_that_waits_for_a_node(
    control_plane: ControlPlane, namespace: str
) -> None:
    """No node agent here: the Job controller creates the pod, the scheduler finds no node."""
    admin = control_plane.admin_kubeconfig
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "hello", "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }
    await apply(admin, job)

    async def unschedulable() -> dict[str, Any] | None:
        pods = (await get_json(admin, "pods", "-n", namespace, "-l", "job-name=hello"))["items"]
        for pod in pods:
            for condition in pod["status"].get("conditions", []):
                if (
                    condition["type"] == "PodScheduled"
                    and condition.get("reason") == "Unschedulable"
                ):
                    return pod
        return None

    pod = await eventually(unschedulable, timeout=30)
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert pod["status"]["phase"] == "Pending"


async def test_pod_security_restricted_is_enforced_with_the_apiservers_message(
    control_plane: ControlPlane, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    await kubectl(
        admin, "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    root_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        # Nothing set: may run as root, escalate privileges, keep capabilities, no seccomp.
        "metadata": {"name": "root", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    code, out = await apply(admin, root_pod, check=False)
    assert code != 0 and 'violates PodSecurity "restricted:latest"' in out
    assert "allowPrivilegeEscalation != false" in out and "runAsNonRoot != true" in out


def test_stopping_leaves_no_process_and_no_file(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path, log=lambda line: None).start()
    directory = cp.directory
    processes = [c.process for c in cp._components]
    assert directory.is_dir() and all(p.poll() is None for p in processes)
    cp.stop()
    assert all(p.poll() is not None for p in processes)
    assert not directory.exists()


def test_the_audit_log_is_read_without_the_event_being_written(tmp_path: Path) -> None:
    # kube-apiserver appends an event while a test reads the log: the line not yet ended
    # is left for the next read instead of failing to parse.
    cp = ControlPlane(tmp_path, log=lambda line: None)
    cp.directory = tmp_path
    cp.audit_log.parent.mkdir(parents=True)
    whole = {"kind": "Event", "auditID": "a", "verb": "get"}
    cp.audit_log.write_text(json.dumps(whole) + '\n{"kind":"Event","auditID":"b","ve')
    assert cp.audit_events() == [whole]
    with cp.audit_log.open("a") as log:
        log.write('rb":"list"}\n')
    assert [e["auditID"] for e in cp.audit_events()] == ["a", "b"]
