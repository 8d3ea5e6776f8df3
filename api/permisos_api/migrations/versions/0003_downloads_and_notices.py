"""permit_downloads; permit notices; account deletion and anonymization markers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    """The column default "now"."""
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "permit_downloads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "downloaded_at",
            sa.DateTime(timezone=True),
            server_default=_now(),
            nullable=False,
        ),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_permit_downloads_application_id_applications"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_permit_downloads_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permit_downloads")),
    )
    op.create_index(
        op.f("ix_permit_downloads_application_id"),
        "permit_downloads",
        ["application_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_permit_downloads_user_id"), "permit_downloads", ["user_id"], unique=False
    )
    op.add_column(
        "applications",
        sa.Column("permit_notice_sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "applications", sa.Column("anonymized_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("users", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "deleted_at")
    op.drop_column("applications", "anonymized_at")
    op.drop_column("applications", "permit_notice_sent_at")
    op.drop_index(op.f("ix_permit_downloads_user_id"), table_name="permit_downloads")
    op.drop_index(op.f("ix_permit_downloads_application_id"), table_name="permit_downloads")
    op.drop_table("permit_downloads")
