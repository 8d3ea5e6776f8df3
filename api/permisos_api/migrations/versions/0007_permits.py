"""permits: each PermitRequest of an application in a row of its own (the first, then one per
admin retry), instead of eleven permit columns on applications that a retry reset by hand

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 18:00:00.000000
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# applications' column -> permits' column (the state, copied either way).
MOVED = {
    "permit_phase": "phase",
    "permit_reason": "reason",
    "permit_message": "message",
    "permit_attempts": "attempts",
    "permit_updated_at": "updated_at",
    "permit_waiting_reason": "waiting_reason",
    "permit_queue_position": "queue_position",
    "permit_estimated_start_at": "estimated_start_at",
    "folio": "folio",
    "permit_artifacts": "artifacts",
    "permit_notice_sent_at": "notice_sent_at",
}
TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "phase": sa.String(16),
    "reason": sa.String(64),
    "message": sa.String(1024),
    "attempts": sa.Integer(),
    "updated_at": sa.DateTime(timezone=True),
    "waiting_reason": sa.String(64),
    "queue_position": sa.Integer(),
    "estimated_start_at": sa.DateTime(timezone=True),
    "folio": sa.String(64),
    "artifacts": sa.JSON(),
    "notice_sent_at": sa.DateTime(timezone=True),
}


def _name(application_id: object, retry: int) -> str:
    return str(application_id) if retry == 0 else f"{application_id}-r{retry}"


def upgrade() -> None:
    permits = op.create_table(
        "permits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("retry", sa.Integer(), nullable=False),
        sa.Column("request_name", sa.String(63), nullable=False),
        *(
            sa.Column(
                column,
                kind,
                nullable=column != "attempts",
                server_default=sa.text("0") if column == "attempts" else None,
            )
            for column, kind in TYPES.items()
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id", "retry"),
        sa.UniqueConstraint("request_name"),
    )
    applications = sa.table(
        "applications",
        sa.column("id", sa.Uuid()),
        sa.column("permit_request", sa.String(63)),
        sa.column("permit_retries", sa.Integer()),
        *(sa.column(old, TYPES[new]) for old, new in MOVED.items()),
    )
    bind = op.get_bind()
    # The current permit of every application that had one (earlier retries' states were
    # overwritten by their successors; the permit history keeps their transitions).
    rows = bind.execute(
        sa.select(applications).where(
            sa.or_(
                applications.c.permit_request.is_not(None),
                applications.c.permit_phase.is_not(None),
            )
        )
    ).mappings()
    copied = [
        {
            "id": uuid.uuid4(),
            "application_id": row["id"],
            "retry": row["permit_retries"],
            "request_name": row["permit_request"] or _name(row["id"], row["permit_retries"]),
            **{new: row[old] for old, new in MOVED.items()},
        }
        for row in rows
    ]
    if copied:
        op.bulk_insert(permits, copied)
    for column in ("permit_request", *MOVED):
        op.drop_column("applications", column)


def downgrade() -> None:
    op.add_column("applications", sa.Column("permit_request", sa.String(63), nullable=True))
    for old, new in MOVED.items():
        op.add_column(
            "applications",
            sa.Column(
                old,
                TYPES[new],
                nullable=new != "attempts",
                server_default=sa.text("0") if new == "attempts" else None,
            ),
        )
    columns = ", ".join(f"{old} = p.{new}" for old, new in MOVED.items())
    op.execute(
        f"UPDATE applications a SET permit_request = p.request_name, {columns} "  # noqa: S608
        "FROM permits p WHERE p.application_id = a.id AND p.retry = a.permit_retries"
    )
    op.drop_table("permits")
