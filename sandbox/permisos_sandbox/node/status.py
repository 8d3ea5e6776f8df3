"""Pod status as the kubelet and the scheduler write it: phase, conditions, container states."""

from __future__ import annotations

from typing import Any

from permisos.kube import JSON, fmt_time, now

from .config import NODE_IP

UNSCHEDULABLE = "0/1 nodes are available: 1 Too many pods."


def condition(
    type_: str, status: bool, reason: str | None = None, message: str | None = None
) -> JSON:
    cond: JSON = {
        "type": type_,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": fmt_time(now()),
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def keep_transitions(old: list[JSON] | None, new: list[JSON]) -> list[JSON]:
    """A condition whose status did not change keeps its lastTransitionTime."""
    before = {c.get("type"): c for c in old or []}
    out = []
    for cond in new:
        prior = before.get(cond["type"])
        if prior is not None and prior.get("status") == cond["status"]:
            cond = {**cond, "lastTransitionTime": prior.get("lastTransitionTime")}
        out.append(cond)
    return out


def unschedulable(pod: JSON) -> JSON:
    """What the scheduler says about a pod that does not fit: Pending, PodScheduled False."""
    old = (pod.get("status") or {}).get("conditions")
    return {
        "phase": "Pending",
        "conditions": keep_transitions(
            old, [condition("PodScheduled", False, "Unschedulable", UNSCHEDULABLE)]
        ),
    }


def container_status(
    container: JSON, state: JSON, container_id: str = "", extra: JSON | None = None
) -> JSON:
    """`extra` overrides what the state alone implies: restartCount, lastState, and ready
    and started as the container's probes decide them."""
    running = "running" in state
    status: JSON = {
        "name": container.get("name", ""),
        "image": container.get("image", ""),
        "imageID": "",
        "restartCount": 0,
        "ready": running,
        "started": running,
        "state": state,
        "lastState": {},
        **(extra or {}),
    }
    if container_id:
        status["containerID"] = container_id
    return status


def pod_status(
    pod: JSON,
    phase: str,
    states: dict[str, JSON],
    *,
    start_time: str,
    container_ids: dict[str, str] | None = None,
    reason: str | None = None,
    message: str | None = None,
    extras: dict[str, JSON] | None = None,
    pod_ip: str | None = NODE_IP,
) -> JSON:
    """The whole status of an admitted pod, from its phase and each container's state."""
    containers = (pod.get("spec") or {}).get("containers") or []
    ids = container_ids or {}
    more = extras or {}
    statuses = [
        container_status(
            c,
            states.get(str(c.get("name")), _waiting()),
            ids.get(str(c["name"]), ""),
            more.get(str(c["name"])),
        )
        for c in containers
    ]
    terminal = phase in ("Succeeded", "Failed")
    unready = [s["name"] for s in statuses if not s["ready"]]
    if terminal:
        ready_reason: tuple[bool, str | None, str | None] = (False, "PodCompleted", None)
    elif unready:
        ready_reason = (
            False,
            "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]",
        )
    else:
        ready_reason = (True, None, None)
    old = (pod.get("status") or {}).get("conditions")
    conditions = keep_transitions(
        old,
        [
            condition("PodReadyToStartContainers", not terminal),
            condition("Initialized", True),
            condition("Ready", *ready_reason),
            condition("ContainersReady", *ready_reason),
            condition("PodScheduled", True),
        ],
    )
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        **({"podIP": pod_ip, "podIPs": [{"ip": pod_ip}]} if pod_ip else {}),
        "startTime": start_time,
        "containerStatuses": statuses,
        # A merge patch removes what an earlier status said and this one does not.
        "reason": reason,
        "message": message,
    }
    return status


def _waiting(reason: str = "ContainerCreating", message: str | None = None) -> JSON:
    waiting: JSON = {"reason": reason}
    if message:
        waiting["message"] = message
    return {"waiting": waiting}


def waiting(reason: str = "ContainerCreating", message: str | None = None) -> JSON:
    return _waiting(reason, message)


def running(started_at: str) -> JSON:
    return {"running": {"startedAt": started_at}}


def terminated(
    exit_code: int,
    reason: str,
    *,
    message: str = "",
    started_at: str | None = None,
    finished_at: str | None = None,
    container_id: str = "",
) -> JSON:
    state: JSON = {"exitCode": exit_code, "reason": reason}
    if message:
        state["message"] = message
    if started_at:
        state["startedAt"] = started_at
    state["finishedAt"] = finished_at or fmt_time(now())
    if container_id:
        state["containerID"] = container_id
    return {"terminated": state}
