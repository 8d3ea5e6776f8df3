"""The state machine, decision by decision, without any server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from permisos.attempt_result import AttemptResult
from permisos.resources import PermitRequestSpec, PermitRequestStatus, RunnerPoolSpec
from permisos_operator.lifecycle import admit, decide
from permisos_operator.observe import JobObservation

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPEC = PermitRequestSpec(application_id="app-1", secret_name="app-1-pii")
POOL = RunnerPoolSpec.model_validate(
    {"retryPolicy": {"maxAttempts": 3, "backoffSeconds": 10, "maxBackoffSeconds": 15}}
)
ARTIFACTS = [
    {"kind": k, "key": f"permits/app-1/{k}-F1.pdf", "sha256": "a" * 64, "bytes": 10}
    for k in ("permit", "certificate", "placard")
]


def running(attempt: int = 1) -> PermitRequestStatus:
    queued = PermitRequestStatus(phase="Queued", attempts=attempt - 1)
    status, _, _ = admit("app-1", queued, 1, NOW)
    return status


def job(
    *,
    finished: bool = True,
    started: bool = True,
    message: str | None = None,
    exit_code: int | None = 0,
    age: timedelta = timedelta(seconds=5),
    failed_reason: str | None = None,
    waiting: str | None = None,
    attempt: int = 1,
    pods: tuple[tuple[datetime, datetime | None], ...] = (),
) -> JobObservation:
    return JobObservation(
        name=f"app-1-a{attempt}",
        created_at=NOW - age,
        deleting=False,
        finished=finished,
        finished_at=NOW - timedelta(seconds=1) if finished else None,
        failed_reason=failed_reason,
        started=started,
        waiting_reason=waiting,
        waiting_message=None,
        terminated=finished and exit_code is not None,
        exit_code=exit_code,
        termination_message=message,
        pod_spans=pods,
    )


def result(outcome: str, reason: str, **extra: object) -> str:
    return AttemptResult.model_validate(
        {"outcome": outcome, "reason": reason, **extra}
    ).model_dump_json()


def test_a_new_request_is_queued_in_its_pool() -> None:
    step = decide("app-1", 1, SPEC, PermitRequestStatus(), None, POOL, NOW)
    assert step.status is not None and step.status.phase == "Queued"
    assert step.transition is not None and step.transition.reason == "Queued"
    ready = {c.type: c for c in step.status.conditions}
    assert ready["Ready"].status == "False" and ready["Progressing"].status == "True"


def test_a_request_for_a_missing_pool_waits_pending_with_a_reason() -> None:
    step = decide("app-1", 1, SPEC, PermitRequestStatus(), None, None, NOW)
    assert step.status is not None and step.status.phase == "Pending"
    assert step.transition is not None and step.transition.reason == "PoolNotFound"


def test_admission_starts_attempt_one_with_a_named_job() -> None:
    status = running()
    assert (status.phase, status.attempts, status.current_job) == ("Running", 1, "app-1-a1")


def test_running_without_its_job_recreates_the_same_job() -> None:
    step = decide("app-1", 1, SPEC, running(), None, POOL, NOW)
    assert step.create_job == "app-1-a1" and step.status is None


def test_success_records_folio_and_artifacts() -> None:
    message = result("succeeded", "PermitIssued", folio="F1", artifacts=ARTIFACTS)
    step = decide("app-1", 1, SPEC, running(), job(message=message), POOL, NOW)
    assert step.status is not None and step.status.phase == "Succeeded"
    assert step.status.result is not None and step.status.result.folio == "F1"
    assert [a.kind for a in step.status.result.artifacts] == ["permit", "certificate", "placard"]
    assert {c.type: c.status for c in step.status.conditions} == {
        "Ready": "True",
        "Progressing": "False",
        "Admitted": "True",  # its last attempt was admitted; a final phase leaves it so
    }
    assert step.status.current_job is None and step.status.completed_at == NOW


def test_retryable_failure_backs_off_exponentially_up_to_the_cap() -> None:
    message = result("retryable", "StorageUnavailable")
    first = decide("app-1", 1, SPEC, running(1), job(message=message, exit_code=3), POOL, NOW)
    assert first.status is not None and first.status.phase == "Retrying"
    assert first.status.next_attempt_at == NOW + timedelta(seconds=10)
    assert first.requeue_at == NOW + timedelta(seconds=10)
    second = decide(
        "app-1", 1, SPEC, running(2), job(message=message, exit_code=3, attempt=2), POOL, NOW
    )
    assert second.status is not None
    assert second.status.next_attempt_at == NOW + timedelta(seconds=15)  # 20 s capped at 15


def test_backoff_elapsed_requeues_and_not_before() -> None:
    waiting = PermitRequestStatus(
        phase="Retrying", attempts=1, next_attempt_at=NOW + timedelta(seconds=5)
    )
    early = decide("app-1", 1, SPEC, waiting, None, POOL, NOW)
    assert early.status is None and early.requeue_at == NOW + timedelta(seconds=5)
    due = decide("app-1", 1, SPEC, waiting, None, POOL, NOW + timedelta(seconds=5))
    assert due.status is not None and due.status.phase == "Queued"
    assert due.transition is not None and due.transition.reason == "BackoffElapsed"


def test_attempts_exhausted_fails_for_good() -> None:
    message = result("retryable", "StorageUnavailable")
    step = decide(
        "app-1", 1, SPEC, running(3), job(message=message, exit_code=3, attempt=3), POOL, NOW
    )
    assert step.status is not None and step.status.phase == "Failed"
    assert step.transition is not None and step.transition.reason == "AttemptsExhausted"
    assert "StorageUnavailable" in step.transition.message


def test_the_portals_own_failures_are_retried_without_being_charged() -> None:
    """An outage must not use up a request's attempts: ten failures of the portal (unavailable,
    changed, rate-limited) and the request still retries; then its own failures count."""
    status = running(1)
    reasons = ["PortalUnavailable", "PortalChanged", "RateLimited", "DownloadTimeout"] * 3
    for n, reason in enumerate(reasons[:10], start=1):
        message = result("retryable", reason)
        step = decide(
            "app-1", 1, SPEC, status, job(message=message, exit_code=3, attempt=n), POOL, NOW
        )
        assert step.status is not None and step.status.phase == "Retrying", (n, reason)
        assert step.status.portal_attempts == n
        # The base backoff each time: the circuit, not the backoff, paces an outage.
        assert step.status.next_attempt_at == NOW + timedelta(seconds=10)
        status = admit("app-1", step.status.model_copy(update={"phase": "Queued"}), 1, NOW)[0]
    for n in (11, 12, 13):
        message = result("retryable", "StorageUnavailable")
        step = decide(
            "app-1", 1, SPEC, status, job(message=message, exit_code=3, attempt=n), POOL, NOW
        )
        assert step.status is not None
        if n < 13:
            assert step.status.phase == "Retrying"
            status = admit("app-1", step.status.model_copy(update={"phase": "Queued"}), 1, NOW)[0]
    assert step.status.phase == "Failed" and step.status.attempts == 13
    assert step.transition is not None and step.transition.reason == "AttemptsExhausted"
    assert step.transition.message.startswith("3 attempts failed; last: StorageUnavailable")
    assert step.status.portal_attempts == 10


def test_permanent_failure_stops_at_once_with_the_portal_reason() -> None:
    message = result(
        "permanent",
        "PortalRejected",
        message="Las placas ya tienen un permiso",
        evidence=["evidence/app-1/1/screenshot.png"],
    )
    step = decide("app-1", 1, SPEC, running(1), job(message=message, exit_code=4), POOL, NOW)
    assert step.status is not None and step.status.phase == "Failed"
    assert step.transition is not None and step.transition.reason == "PortalRejected"
    assert step.status.last_attempt is not None
    assert step.status.last_attempt.message == "Las placas ya tienen un permiso"
    assert step.status.last_attempt.evidence == ["evidence/app-1/1/screenshot.png"]


def test_unreadable_or_contradictory_results_are_retryable_invalid_result() -> None:
    for message, code in (
        ("not json", 0),
        (None, 1),
        (result("succeeded", "Ok", folio="F", artifacts=ARTIFACTS), 3),
    ):
        step = decide("app-1", 1, SPEC, running(), job(message=message, exit_code=code), POOL, NOW)
        assert step.status is not None and step.status.phase == "Retrying"
        assert step.transition is not None and step.transition.reason == "InvalidResult"


def test_a_finished_job_waits_briefly_for_its_pods_result() -> None:
    pending = job(message=None, exit_code=None)
    step = decide("app-1", 1, SPEC, running(), pending, POOL, NOW)
    assert step.status is None and step.requeue_at == NOW + timedelta(seconds=14)
    later = decide("app-1", 1, SPEC, running(), pending, POOL, NOW + timedelta(seconds=14))
    assert later.transition is not None and later.transition.reason == "InvalidResult"


def test_a_job_past_its_deadline_without_a_message_is_deadline_exceeded() -> None:
    killed = job(message=None, exit_code=137, failed_reason="DeadlineExceeded")
    step = decide("app-1", 1, SPEC, running(), killed, POOL, NOW)
    assert step.transition is not None and step.transition.reason == "DeadlineExceeded"


def test_a_pod_that_never_starts_is_timed_out_and_its_job_deleted() -> None:
    stuck = job(
        finished=False, started=False, waiting="ImagePullBackOff", age=timedelta(seconds=299)
    )
    assert decide("app-1", 1, SPEC, running(), stuck, POOL, NOW).status is None
    late = job(
        finished=False, started=False, waiting="ImagePullBackOff", age=timedelta(seconds=300)
    )
    step = decide("app-1", 1, SPEC, running(), late, POOL, NOW)
    assert step.delete_job == "app-1-a1"
    assert step.transition is not None and step.transition.reason == "StartTimeout"
    assert "ImagePullBackOff" in step.transition.message


def test_cancel_deletes_the_running_job_and_is_final() -> None:
    spec = SPEC.model_copy(update={"cancel": True})
    step = decide("app-1", 1, spec, running(), job(finished=False), POOL, NOW)
    assert step.delete_job == "app-1-a1"
    assert step.status is not None and step.status.phase == "Cancelled"
    assert decide("app-1", 1, spec, step.status, None, POOL, NOW).status is None


def test_runner_seconds_add_up_over_the_attempts_into_the_result() -> None:
    """Cost per permit: each attempt's pod seconds, the running total, and the result's."""
    timeout = result("retryable", "PortalTimeout")
    pod = ((NOW - timedelta(seconds=40), NOW - timedelta(seconds=10)),)  # ran 30 s
    first = decide(
        "app-1", 1, SPEC, running(1), job(message=timeout, exit_code=3, pods=pod), POOL, NOW
    )
    assert first.status is not None and first.status.last_attempt is not None
    assert first.status.last_attempt.runner_seconds == 30
    assert first.status.runner_seconds == 30
    second_running, _, _ = admit(
        "app-1", first.status.model_copy(update={"phase": "Queued"}), 1, NOW
    )
    # Two pods for one Job (the first was evicted): both cost.
    pods = (
        (NOW - timedelta(seconds=20), NOW - timedelta(seconds=15)),
        (NOW - timedelta(seconds=12), NOW - timedelta(seconds=2)),
    )
    message = result("succeeded", "PermitIssued", folio="F1", artifacts=ARTIFACTS)
    done = decide(
        "app-1", 1, SPEC, second_running, job(message=message, attempt=2, pods=pods), POOL, NOW
    )
    assert done.status is not None and done.status.phase == "Succeeded"
    assert done.status.last_attempt is not None and done.status.last_attempt.runner_seconds == 15
    assert done.status.runner_seconds == 45
    assert done.status.result is not None and done.status.result.runner_seconds == 45


def test_an_attempt_given_up_or_cancelled_costs_until_now() -> None:
    started = ((NOW - timedelta(seconds=25), None),)  # its runner never reported an end
    past_deadline = job(finished=False, age=timedelta(hours=2), pods=started)
    step = decide("app-1", 1, SPEC, running(), past_deadline, POOL, NOW)
    assert step.transition is not None and step.transition.reason == "DeadlineExceeded"
    assert step.status is not None and step.status.runner_seconds == 25
    spec = SPEC.model_copy(update={"cancel": True})
    cancelled = decide("app-1", 1, spec, running(), job(finished=False, pods=started), POOL, NOW)
    assert cancelled.status is not None and cancelled.status.runner_seconds == 25


def test_terminal_phases_never_change() -> None:
    for phase in ("Succeeded", "Failed", "Cancelled"):
        status = PermitRequestStatus(phase=phase, attempts=1)
        step = decide("app-1", 1, SPEC, status, job(message="garbage"), POOL, NOW)
        assert step.status is None and step.create_job is None and step.delete_job is None


def test_the_admitted_condition_says_why_a_request_waits() -> None:
    def reason_of(status: PermitRequestStatus | None) -> tuple[str, str]:
        assert status is not None
        found = next(c for c in status.conditions if c.type == "Admitted")
        return found.status, found.reason

    no_pool = decide("app-1", 1, SPEC, PermitRequestStatus(), None, None, NOW)
    assert reason_of(no_pool.status) == ("False", "PoolNotFound")
    queued = decide("app-1", 1, SPEC, PermitRequestStatus(), None, POOL, NOW)
    assert reason_of(queued.status) == ("False", "PoolFull")
    assert reason_of(running()) == ("True", "Admitted")
    message = result("retryable", "PortalTimeout")
    backing_off = decide("app-1", 1, SPEC, running(1), job(message=message, exit_code=3), POOL, NOW)
    assert reason_of(backing_off.status) == ("False", "BackingOff")
