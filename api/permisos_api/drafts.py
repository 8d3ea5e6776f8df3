"""An application before payment: filed (checked against the catalog and priced by its service
type). The JSON API (`routes/applications.py`) and the web form (`web/applying.py`) both file
through here."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from . import fields
from .context import Services
from .models import Application, ApplicationStatus
from .problems import FieldError, validation_problem
from .schemas import ApplicationIn


def canonical_line(make: str, line: str) -> str:
    """The catalog's spelling of the line; a validation problem when the make has no such line."""
    found = fields.line_of_make(make, line)
    if found is None:
        raise validation_problem(
            [FieldError(field="line", rule="line_of_make", detail=f"Not a line of {make}")]
        )
    return found


def file_application(
    db: Session, svc: Services, owner_id: uuid.UUID, body: ApplicationIn
) -> Application:
    values: dict[str, Any] = body.model_dump()
    values["line"] = canonical_line(values["make"], values["line"])
    app = Application(
        **values,
        owner_id=owner_id,
        status=ApplicationStatus.draft.value,
        amount_centavos=svc.settings.price_centavos(body.service_type),
        currency="MXN",
    )
    db.add(app)
    db.commit()
    # A new application has no permit yet: saying so spares reading its permit_* a query.
    set_committed_value(app, "permit", None)
    svc.metrics.applications_created.labels(body.service_type).inc()
    return app
