"""What a retry and a refund both start from: the application, locked, whose permit failed."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from ..models import Application, ApplicationStatus
from ..problems import ProblemError


def failed_application(db: Session, application_id: uuid.UUID, doing: str) -> Application:
    """Locked until the caller commits; `doing` ("retried", "refunded") words the refusal."""
    app = db.get(Application, application_id, with_for_update=True)
    if app is None:
        raise ProblemError("not-found", "No such application.")
    if app.status != ApplicationStatus.permit_failed:
        raise ProblemError(
            "invalid-state", f"An application in status {app.status} cannot be {doing}."
        )
    return app
