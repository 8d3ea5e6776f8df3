"""A permit's row in `permits`, made by whichever writer meets the PermitRequest first: the
dispatcher when it creates it, the mirror when it sees it (a retry's row is made by the retry
service itself, before either)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, Engine

from permisos.database import upsert

from .models import Permit


def ensure_permit(
    conn: Connection,
    engine: Engine,
    application_id: uuid.UUID,
    retry: int,
    request_name: str,
    now: datetime,
) -> None:
    """Idempotent: a row that exists (by name, or by application and retry) is left alone."""
    conn.execute(
        upsert(engine, Permit)
        .values(
            id=uuid.uuid4(),
            application_id=application_id,
            retry=retry,
            request_name=request_name,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )
