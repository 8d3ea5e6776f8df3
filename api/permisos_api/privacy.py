"""The erasure of an application's personal data, one way for every path that erases.

Used by the ARCO account deletion (`DELETE /v1/me`, `routes/account.py`) and by
`python -m permisos_api.cleanup` (abandoned, never-paid applications). Names, CURP, email and
phone are replaced by fixed placeholders and `anonymized_at` is set; the row stays, and so do its
vehicle data, payments, payment events and permit history (fiscal records; no card data, no
names).

Imports only SQLAlchemy and the models, so that the cleanup CronJob starts without the web
framework.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, update
from sqlalchemy.orm import Session

from .models import Application

# What an anonymized application holds instead of personal data.
PLACEHOLDERS: dict[str, str] = {
    "first_name": "ELIMINADO",
    "last_name": "ELIMINADO",
    "maternal_surname": "",
    "curp": "XXXX000000XXXXXX00",
    "email": "eliminado@invalid",
    "phone": "0000000000",
}


def erase_applications(
    db: Session,
    ids: Collection[uuid.UUID] | Select[uuid.UUID],
    now: datetime,
    *,
    where: tuple[ColumnElement[bool], ...] = (),
    values: dict[str, Any] | None = None,
) -> set[uuid.UUID]:
    """Erases the personal data of the applications `ids` (a collection, or a SELECT of ids)
    that are not anonymized yet and satisfy every condition of `where`; returns the ids erased.

    `anonymized_at` and `updated_at` become `now`; `values` sets further columns in the same
    UPDATE (the cleanup's status change). A single statement, conditional on `anonymized_at IS
    NULL`: an application is erased once, and its first erasure's time stays. Bulk: ORM objects
    already loaded in `db` are not refreshed.
    """
    if not isinstance(ids, Select):
        ids = list(ids)
        if not ids:
            return set()
    statement = (
        update(Application)
        .where(Application.id.in_(ids), Application.anonymized_at.is_(None), *where)
        .values(**PLACEHOLDERS, anonymized_at=now, updated_at=now, **(values or {}))
        .returning(Application.id)
        .execution_options(synchronize_session=False)
    )
    return set(db.scalars(statement))
