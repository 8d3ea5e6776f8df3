"""Server-side printing: meta.k8s.io/v1 Table responses, as `kubectl get` asks for them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .resources import ResourceType

JSON = dict[str, Any]
_TOKEN = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[(\d+|\*)\]|\[\?\(@((?:\.[A-Za-z0-9_-]+)+)\s*(==|!=)\s*(.+?)\)\]"
)


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluates the simple JSONPath subset CRD printer columns use; returns all matches."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    current: list[Any] = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            return []
        pos = m.end()
        name, index, filter_path, op, literal = m.groups()
        nxt: list[Any] = []
        for value in current:
            if name is not None and isinstance(value, dict) and name in value:
                nxt.append(value[name])
            elif index is not None and isinstance(value, list):
                if index == "*":
                    nxt.extend(value)
                elif int(index) < len(value):
                    nxt.append(value[int(index)])
            elif filter_path is not None and isinstance(value, list):
                wanted = literal.strip().strip("'\"")
                for item in value:
                    found = jsonpath(item, filter_path)
                    equal = bool(found) and str(found[0]) == wanted
                    if equal == (op == "=="):
                        nxt.append(item)
        current = nxt
    return current


def human_duration(seconds: float) -> str:
    """Go's duration.HumanDuration, which kube uses for ages."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _column(
    name: str, kind: str = "string", description: str = "", priority: int = 0, fmt: str = ""
) -> JSON:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


_NAME = _column("Name", fmt="name", description="Name must be unique within a namespace.")
_AGE = _column(
    "Age",
    description="CreationTimestamp is the server time when this object was created.",
)


def _custom(rt: ResourceType, version: str) -> tuple[list[JSON], Callable[[JSON], list[Any]]]:
    columns = rt.printer_columns.get(version) or []
    if not columns:
        columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    defs = [_NAME] + [
        _column(
            c["name"],
            c.get("type", "string"),
            c.get("description", ""),
            c.get("priority", 0),
            c.get("format", ""),
        )
        for c in columns
    ]

    def cells(obj: JSON) -> list[Any]:
        row: list[Any] = [obj["metadata"]["name"]]
        for c in columns:
            found = jsonpath(obj, c["jsonPath"])
            if not found:
                row.append(None)
            elif c.get("type") == "date":
                row.append(age(found[0]))
            elif c.get("type", "string") == "string":
                value = found[0]
                row.append(value if isinstance(value, str) else _go_print(value))
            else:
                row.append(found[0])
        return row

    return defs, cells


def _go_print(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _pod_cells(obj: JSON) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for s in statuses:
        state = s.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if obj["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return [
        obj["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        str(restarts),
        age(obj["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _job_cells(obj: JSON) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = "Running"
    if conditions.get("Complete") == "True":
        state = "Complete"
    elif conditions.get("Failed") == "True":
        state = "Failed"
    elif spec.get("suspend"):
        state = "Suspended"
    duration = ""
    start, end = status.get("startTime"), status.get("completionTime")
    if start:
        try:
            t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
            t1 = datetime.fromisoformat(end.replace("Z", "+00:00")) if end else datetime.now(UTC)
            duration = human_duration((t1 - t0).total_seconds())
        except ValueError:
            duration = ""
    return [
        obj["metadata"]["name"],
        state,
        f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}",
        duration,
        age(obj["metadata"].get("creationTimestamp")),
    ]


def _event_cells(obj: JSON) -> list[Any]:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    last = (
        obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    )
    return [
        age(last),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message") or obj.get("note") or "",
    ]


def _builtin(rt: ResourceType) -> tuple[list[JSON], Callable[[JSON], list[Any]]]:
    def name_age(obj: JSON) -> list[Any]:
        return [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"))]

    if rt.key == "pods":
        defs = [
            _NAME,
            _column(
                "Ready",
                description="The aggregate readiness state of this pod for accepting traffic.",
            ),
            _column("Status", description="The aggregate status of the containers in this pod."),
            _column(
                "Restarts",
                description="The number of times the containers in this pod have been restarted.",
            ),
            _AGE,
            _column("IP", priority=1),
            _column("Node", priority=1),
        ]
        return defs, _pod_cells
    if rt.key == "jobs.batch":
        defs = [
            _NAME,
            _column("Status"),
            _column("Completions", description="The desired number of successfully finished pods."),
            _column("Duration", description="Time required to complete the job."),
            _AGE,
        ]
        return defs, _job_cells
    if rt.kind == "Event":
        defs = [
            _column("Last Seen"),
            _column("Type"),
            _column("Reason"),
            _column("Object"),
            _column("Message"),
        ]
        return defs, _event_cells
    if rt.key == "namespaces":
        return [_NAME, _column("Status"), _AGE], lambda o: [
            o["metadata"]["name"],
            (o.get("status") or {}).get("phase", ""),
            age(o["metadata"].get("creationTimestamp")),
        ]
    if rt.key in ("configmaps", "secrets"):
        extra = [_column("Type")] if rt.key == "secrets" else []
        return [_NAME, *extra, _column("Data", "integer"), _AGE], lambda o: [
            o["metadata"]["name"],
            *([o.get("type", "Opaque")] if rt.key == "secrets" else []),
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            age(o["metadata"].get("creationTimestamp")),
        ]
    if rt.key == "leases.coordination.k8s.io":
        return [_NAME, _column("Holder"), _AGE], lambda o: [
            o["metadata"]["name"],
            (o.get("spec") or {}).get("holderIdentity", ""),
            age(o["metadata"].get("creationTimestamp")),
        ]
    if rt.key == "customresourcedefinitions.apiextensions.k8s.io":
        return [_NAME, _column("Created At", "date")], lambda o: [
            o["metadata"]["name"],
            o["metadata"].get("creationTimestamp"),
        ]
    return [_NAME, _AGE], name_age


def table(
    rt: ResourceType, version: str, objects: list[JSON], list_meta: JSON, include: str
) -> JSON:
    defs, cells = _custom(rt, version) if rt.custom else _builtin(rt)
    rows = []
    for obj in objects:
        row: JSON = {"cells": cells(obj)}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    }
