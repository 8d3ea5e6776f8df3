"""The admin audit log: who did what to which ids. Ids only, never personal data: the log is
read by more people than the database."""

from __future__ import annotations

import logging

from ..auth import Principal

log = logging.getLogger("permisos_api.admin")


def record(admin: Principal, action: str, **ids: object) -> None:
    extra = " ".join(f"{name}={value}" for name, value in ids.items())
    log.info("admin action: admin=%s action=%s %s", admin.user.id, action, extra)
