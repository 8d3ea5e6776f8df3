"""kubectl against the emulator: tables with printer columns, describe, scale, explain."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import yaml

from tests.cluster import kubectl

from .conftest import ROOT, WIDGETS, Kube, widget

MERGE = "application/merge-patch+json"
PRS = "/apis/permisosdigitales.mx/v1alpha1/namespaces/default/permitrequests"


def rows(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


async def test_table_response_shape(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("w", replicas=2))
    ready = {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "reason": "AllGood"}],
        }
    }
    await kube.request("PATCH", f"{WIDGETS}/w/status", ready, MERGE)
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    status, table = await kube.request("GET", WIDGETS, headers={"Accept": accept})
    assert status == 200 and table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Phase",
        "Replicas",
        "Ready",
        "Age",
    ]
    cells = table["rows"][0]["cells"]
    assert cells[:4] == ["w", "Running", 2, "AllGood"]
    assert re.fullmatch(r"\d+s", cells[4])
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


async def test_kubectl_get_shows_printer_columns(kube: Kube) -> None:
    await kube.create(WIDGETS, widget("w", replicas=2))
    await kube.request("PATCH", f"{WIDGETS}/w/status", {"status": {"phase": "Running"}}, MERGE)
    _, out, _ = await kube.kubectl("get", "widgets")
    table = rows(out)
    assert table[0] == ["NAME", "PHASE", "REPLICAS", "READY", "AGE"]
    assert table[1][:3] == ["w", "Running", "2"]
    _, out, _ = await kube.kubectl("get", "wd", "w", "-o", "yaml")
    assert yaml.safe_load(out)["spec"]["color"] == "blue"
    _, out, _ = await kube.kubectl("get", "gadgets", "-o", "name")
    assert out.strip() == "widget.example.com/w"


async def test_kubectl_permitrequests_get_describe_explain(kube: Kube) -> None:
    pr = {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "PermitRequest",
        "metadata": {"name": "app-1"},
        "spec": {"applicationId": "app-1", "secretName": "app-1-pii", "priority": 5},
    }
    created = await kube.create(PRS, pr)
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
    code, body = await kube.request("PATCH", f"{PRS}/app-1/status", status, MERGE)
    assert code == 200, body
    _, out, _ = await kube.kubectl("get", "permitrequests")
    table = rows(out)
    assert table[0][:5] == ["NAME", "PHASE", "ATTEMPTS", "FOLIO", "REASON"]
    assert table[1][:5] == ["app-1", "Succeeded", "1", "F-123", "PermitIssued"]
    _, out, _ = await kube.kubectl("get", "pr", "-o", "wide")
    assert "POOL" in out and "default" in out
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "app-1.1"},
        "involvedObject": {
            "apiVersion": "permisosdigitales.mx/v1alpha1",
            "kind": "PermitRequest",
            "name": "app-1",
            "namespace": "default",
            "uid": created["metadata"]["uid"],
        },
        "reason": "JobCreated",
        "message": "attempt 1 started as Job app-1-a1",
        "type": "Normal",
        "source": {"component": "permisos-operator"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
    }
    await kube.create("/api/v1/namespaces/default/events", event)
    _, out, _ = await kube.kubectl("describe", "permitrequest", "app-1")
    assert "Name:         app-1" in out
    events = out.split("Events:")[1]
    assert "JobCreated" in events and "attempt 1 started as Job app-1-a1" in events
    assert "permisos-operator" in events
    _, out, _ = await kube.kubectl("explain", "runnerpools.spec.replicas")
    assert "FIELD: replicas <integer>" in out and "kubectl scale" in out


async def test_kubectl_create_apply_patch_delete(kube: Kube, tmp_path: Path) -> None:
    manifest = tmp_path / "w.yaml"
    manifest.write_text(yaml.safe_dump(widget("w", replicas=1)))
    _, out, _ = await kube.kubectl("apply", "-f", str(manifest))
    assert "widget.example.com/w created" in out
    manifest.write_text(yaml.safe_dump(widget("w", replicas=3)))
    _, out, _ = await kube.kubectl("apply", "-f", str(manifest))
    assert "configured" in out
    await kube.kubectl("patch", "widget", "w", "--type=merge", "-p", '{"spec":{"color":"red"}}')
    await kube.kubectl("label", "widget", "w", "team=a")
    _, obj = await kube.request("GET", f"{WIDGETS}/w")
    assert obj["spec"]["replicas"] == 3 and obj["spec"]["color"] == "red"
    assert obj["metadata"]["labels"] == {"team": "a"}
    code, _, err = await kube.kubectl(
        "patch", "widget", "w", "--type=merge", "-p", '{"spec":{"replicas":500}}', check=False
    )
    assert code != 0 and "less than or equal to 100" in err
    _, out, _ = await kube.kubectl("get", "widgets", "-l", "team=a", "-o", "name")
    assert out.strip() == "widget.example.com/w"
    _, out, _ = await kube.kubectl("delete", "widget", "w")
    assert 'widget.example.com "w" deleted' in out
    code, _, err = await kube.kubectl("get", "widget", "w", check=False)
    assert code != 0 and "NotFound" in err


async def test_kubectl_builtin_tables(kube: Kube) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    await kube.create("/api/v1/namespaces/default/pods", pod)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
            }
        },
    }
    await kube.create("/apis/batch/v1/namespaces/default/jobs", job)
    _, out, _ = await kube.kubectl("get", "pods")
    assert rows(out)[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows(out)[1][:4] == ["p", "0/1", "Pending", "0"]
    _, out, _ = await kube.kubectl("get", "jobs")
    assert rows(out)[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert rows(out)[1][:3] == ["j", "Running", "0/1"]
    _, out, _ = await kube.kubectl("get", "namespaces")
    assert "default" in out and "Active" in out
    manifest = kube.kubeconfig.parent / "cm.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cm"},
                "data": {"a": "b"},
            }
        )
    )
    await kube.kubectl("create", "-f", str(manifest))
    _, out, _ = await kube.kubectl("get", "configmap", "cm", "-o", "jsonpath={.data.a}")
    assert out == "b"
    _, out, _ = await kube.kubectl("describe", "pod", "p")
    assert "Name:" in out and "Pending" in out
    # Typed kubectl generators send protobuf, which the emulator refuses with a proper Status.
    code, _, err = await kube.kubectl(
        "create", "configmap", "gen", "--from-literal=a=b", check=False
    )
    assert code != 0 and "unknown format" in err


async def test_cli_serves_and_writes_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "permisos_sandbox.kubeapi", "--host", "127.0.0.1", "--port", "0",
        "--crds", str(ROOT / "crds"), "--kubeconfig", str(kubeconfig),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert re.fullmatch(r"kubeapi listening on http://127\.0\.0\.1:\d+\n", line)
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["current-context"] == "permisos-local"
        assert config["contexts"][0]["context"]["namespace"] == "default"
        assert config["clusters"][0]["cluster"]["server"] == line.split()[-1]
        _, _, err = await kubectl(kubeconfig, "get", "runnerpools")
        assert "No resources found" in err
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
