"""Job status as the Job controller of Kubernetes 1.31+ writes it: counts, the interim
`SuccessCriteriaMet` / `FailureTarget` conditions, then `Complete` / `Failed`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .kube import JSON, fmt_time, now
from .settings import TRACKING_FINALIZER

COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_LIMIT = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("DeadlineExceeded", "Job was active longer than specified deadline")
SUSPENDED = ("JobSuspended", "Job suspended")
RESUMED = ("JobResumed", "Job resumed")


@dataclass(frozen=True)
class Target:
    """How the Job will end, decided before its last pods are gone."""

    kind: str  # SuccessCriteriaMet | FailureTarget
    reason: str
    message: str

    @property
    def final(self) -> str:
        return "Complete" if self.kind == "SuccessCriteriaMet" else "Failed"


def job_condition(type_: str, status: bool, reason: str, message: str) -> JSON:
    stamp = fmt_time(now())
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def true_condition(job: Mapping[str, Any], type_: str) -> JSON | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def finished(job: Mapping[str, Any]) -> JSON | None:
    """The Job's Complete or Failed condition, if it has ended."""
    return true_condition(job, "Complete") or true_condition(job, "Failed")


def target_of(job: Mapping[str, Any]) -> Target | None:
    for kind in ("SuccessCriteriaMet", "FailureTarget"):
        cond = true_condition(job, kind)
        if cond is not None:
            return Target(kind, str(cond.get("reason", "")), str(cond.get("message", "")))
    return None


def set_condition(conditions: list[JSON], new: JSON) -> list[JSON]:
    """Adds or updates a condition; an unchanged status keeps its transition time."""
    out = []
    found = False
    for cond in conditions:
        if cond.get("type") == new["type"]:
            found = True
            if cond.get("status") == new["status"] and cond.get("reason") == new["reason"]:
                out.append(cond)
            else:
                out.append(new)
        else:
            out.append(cond)
    if not found:
        out.append(new)
    return out


def pod_phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def has_finalizer(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


@dataclass
class Tally:
    """What the Job's pods add up to, with the ones not yet in the counts kept by uid
    (`status.uncountedTerminatedPods`), so a restart between the two writes never counts a pod
    twice or not at all."""

    succeeded: int
    failed: int
    uncounted_succeeded: list[str]
    uncounted_failed: list[str]
    active: list[JSON]
    terminating: list[JSON]
    ready: int
    replace_terminating: bool = True

    @property
    def total_succeeded(self) -> int:
        return self.succeeded + len(self.uncounted_succeeded)

    @property
    def total_failed(self) -> int:
        return self.failed + len(self.uncounted_failed)

    @property
    def uncounted(self) -> set[str]:
        return {*self.uncounted_succeeded, *self.uncounted_failed}


def tally(job: Mapping[str, Any], pods: Iterable[JSON], deleting: set[str]) -> Tally:
    status = job.get("status") or {}
    spec = job.get("spec") or {}
    # podReplacementPolicy TerminatingOrFailed (the default): a pod being deleted that has not
    # succeeded counts as failed at once, and is replaced without waiting for it to stop.
    early = spec.get("podReplacementPolicy", "TerminatingOrFailed") != "Failed"
    uncounted = status.get("uncountedTerminatedPods") or {}
    by_uid = {str(p["metadata"].get("uid")): p for p in pods}
    counts = {
        "succeeded": int(status.get("succeeded") or 0),
        "failed": int(status.get("failed") or 0),
    }
    pending: dict[str, list[str]] = {}
    for kind in ("succeeded", "failed"):
        pending[kind] = []
        for uid in uncounted.get(kind) or []:
            pod = by_uid.get(uid)
            if pod is None or not has_finalizer(pod):
                counts[kind] += 1  # its finalizer is gone: it is settled
            else:
                pending[kind].append(uid)
    seen = {*pending["succeeded"], *pending["failed"]}
    active: list[JSON] = []
    terminating: list[JSON] = []
    for uid, pod in by_uid.items():
        phase = pod_phase(pod)
        outcome: str | None = None
        if phase in ("Succeeded", "Failed"):
            outcome = "succeeded" if phase == "Succeeded" else "failed"
        elif pod["metadata"].get("deletionTimestamp") or uid in deleting:
            terminating.append(pod)
            outcome = "failed" if early else None
        else:
            active.append(pod)
        if outcome and has_finalizer(pod) and uid not in seen:
            pending[outcome].append(uid)
    return Tally(
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        uncounted_succeeded=pending["succeeded"],
        uncounted_failed=pending["failed"],
        active=active,
        terminating=terminating,
        ready=sum(1 for p in active if is_ready(p)),
        replace_terminating=early,
    )


def holding(pod: Mapping[str, Any], node: str) -> bool:
    """Whether the tracking finalizer stays: while the kubelet of this node is still stopping
    a deleted pod. The emulator deletes at once what has no finalizer (it has no graceful
    deletion), so this keeps a stopping pod visible as Terminating, as kube shows it."""
    spec = pod.get("spec") or {}
    return (
        bool(pod["metadata"].get("deletionTimestamp"))
        and pod_phase(pod) not in ("Succeeded", "Failed")
        and spec.get("nodeName") == node
    )


def status_fields(t: Tally) -> JSON:
    """The counters as Kubernetes shows them: `active`, `succeeded`, `failed` omitted when
    zero; `ready`, `terminating` and `uncountedTerminatedPods` always present."""
    uncounted: JSON = {}
    if t.uncounted_succeeded:
        uncounted["succeeded"] = t.uncounted_succeeded
    if t.uncounted_failed:
        uncounted["failed"] = t.uncounted_failed
    fields: JSON = {
        "active": len(t.active),
        "ready": t.ready,
        "terminating": len(t.terminating),
        "succeeded": t.succeeded,
        "failed": t.failed,
        "uncountedTerminatedPods": uncounted,
    }
    for omitted in ("active", "succeeded", "failed"):
        if not fields[omitted]:
            del fields[omitted]
    return fields


COUNTERS = ("active", "ready", "terminating", "succeeded", "failed", "uncountedTerminatedPods")


def merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`; {} when they are equal."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: JSON = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            sub = merge_patch(old[key], value)
            patch[key] = value if sub == {} and isinstance(value, dict) else sub
    return patch
