"""Confirmed submissions, their asynchronous processing and the count per `referencia`.

Processing is a deadline, not a background task: a submission is `procesando` until
`processing_seconds` after confirmation, then `listo` (or `rechazado` when `reject_next` caught
it). Reading the state settles it, so nothing needs cancelling when the server stops.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

VALIDITY_DAYS = 30
PROCESANDO, LISTO, RECHAZADO = "procesando", "listo", "rechazado"


@dataclass
class Submission:
    id: str
    referencia: str
    applicant: dict[str, str]
    vehicle: dict[str, str]
    created_at: datetime
    ready_at: float  # monotonic deadline
    reject_reason: str | None
    folio: str | None = None
    estado: str = PROCESANDO
    valid_from: date | None = None
    valid_until: date | None = None
    documents: dict[str, bytes] = field(default_factory=dict)

    @property
    def plates(self) -> str:
        return self.vehicle["placas"]

    def summary(self) -> dict[str, str | None]:
        """What the control API shows: no personal data."""
        return {
            "id": self.id,
            "referencia": self.referencia,
            "estado": self.estado,
            "folio": self.folio,
            "placas": self.plates,
            "creado": self.created_at.isoformat(timespec="seconds"),
        }


class SubmissionStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_id: dict[str, Submission] = {}
        self._folio_seq = 0

    def reset(self) -> None:
        self._by_id.clear()
        self._folio_seq = 0

    def create(
        self,
        referencia: str,
        applicant: dict[str, str],
        vehicle: dict[str, str],
        processing_seconds: float,
        reject_reason: str | None,
    ) -> Submission:
        submission = Submission(
            id=secrets.token_hex(6),
            referencia=referencia,
            applicant=dict(applicant),
            vehicle=dict(vehicle),
            created_at=datetime.now(UTC),
            ready_at=self._clock() + processing_seconds,
            reject_reason=reject_reason,
        )
        self._by_id[submission.id] = submission
        return submission

    def _settle(self, submission: Submission) -> Submission:
        if submission.estado != PROCESANDO or self._clock() < submission.ready_at:
            return submission
        if submission.reject_reason:
            submission.estado = RECHAZADO
            return submission
        self._folio_seq += 1
        today = datetime.now(UTC).date()
        submission.folio = f"PC-{today.year}-{self._folio_seq:06d}"
        submission.valid_from = today
        submission.valid_until = today + timedelta(days=VALIDITY_DAYS)
        submission.estado = LISTO
        return submission

    def get(self, submission_id: str) -> Submission | None:
        submission = self._by_id.get(submission_id)
        return None if submission is None else self._settle(submission)

    def by_referencia(self, referencia: str) -> list[Submission]:
        return [self._settle(s) for s in self._by_id.values() if s.referencia == referencia]

    def count(self, referencia: str) -> int:
        return sum(1 for s in self._by_id.values() if s.referencia == referencia)

    def plates_taken(self, plates: str, referencia: str) -> bool:
        """Plates of an issued permit, unless the same client reference asks again."""
        return any(
            self._settle(s).estado == LISTO and s.plates == plates and s.referencia != referencia
            for s in self._by_id.values()
        )
