"""payments, payment_events, outbox, permit_history; payment and permit columns on applications

The schema contract the payments side, the outbox dispatcher and the operator-side phase mirror
share (api/README.md, "Payments and permits").

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:49:24.752084
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    """The column default "now"."""
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=_now(),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=_now(),
            nullable=False,
        ),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_outbox_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("application_id", "kind", name=op.f("uq_outbox_application_id_kind")),
    )
    op.create_index(
        "ix_outbox_dispatched_at_next_attempt_at",
        "outbox",
        ["dispatched_at", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "payment_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("amount_centavos", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("stripe_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=_now(),
            nullable=False,
        ),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_payment_events_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
    )
    op.create_index(
        op.f("ix_payment_events_application_id"), "payment_events", ["application_id"], unique=False
    )
    op.create_index(
        op.f("ix_payment_events_payment_intent_id"),
        "payment_events",
        ["payment_intent_id"],
        unique=False,
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("stripe_payment_intent_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("amount_centavos", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), server_default=sa.text("'MXN'"), nullable=False),
        sa.Column("voucher_number", sa.String(length=32), nullable=True),
        sa.Column("voucher_url", sa.String(length=512), nullable=True),
        sa.Column("voucher_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("decline_code", sa.String(length=64), nullable=True),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_id", sa.String(length=64), nullable=True),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "manual_refund_required", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_payments_application_id_applications"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payments_idempotency_key")),
        sa.UniqueConstraint(
            "stripe_payment_intent_id", name=op.f("uq_payments_stripe_payment_intent_id")
        ),
    )
    op.create_index(
        op.f("ix_payments_application_id"), "payments", ["application_id"], unique=False
    )
    op.create_index(
        "ix_payments_status_updated", "payments", ["status", "updated_at"], unique=False
    )
    op.create_table(
        "permit_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("message", sa.String(length=1024), nullable=True),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("transitioned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=_now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_permit_history_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permit_history")),
        sa.UniqueConstraint(
            "application_id",
            "phase",
            "attempt",
            "transitioned_at",
            name=op.f("uq_permit_history_application_id_phase_attempt_transitioned_at"),
        ),
    )
    op.create_index(
        op.f("ix_permit_history_application_id"), "permit_history", ["application_id"], unique=False
    )
    op.add_column("applications", sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("applications", sa.Column("payment_method", sa.String(length=8), nullable=True))
    op.add_column("applications", sa.Column("permit_request", sa.String(length=63), nullable=True))
    op.add_column("applications", sa.Column("permit_phase", sa.String(length=16), nullable=True))
    op.add_column("applications", sa.Column("permit_reason", sa.String(length=64), nullable=True))
    op.add_column(
        "applications", sa.Column("permit_message", sa.String(length=1024), nullable=True)
    )
    op.add_column(
        "applications",
        sa.Column("permit_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "applications", sa.Column("permit_updated_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("applications", sa.Column("folio", sa.String(length=64), nullable=True))
    op.add_column("applications", sa.Column("permit_artifacts", sa.JSON(), nullable=True))
    op.create_index(
        "ix_applications_status_updated", "applications", ["status", "updated_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_applications_status_updated", table_name="applications")
    op.drop_column("applications", "permit_artifacts")
    op.drop_column("applications", "folio")
    op.drop_column("applications", "permit_updated_at")
    op.drop_column("applications", "permit_attempts")
    op.drop_column("applications", "permit_message")
    op.drop_column("applications", "permit_reason")
    op.drop_column("applications", "permit_phase")
    op.drop_column("applications", "permit_request")
    op.drop_column("applications", "payment_method")
    op.drop_column("applications", "paid_at")
    op.drop_index(op.f("ix_permit_history_application_id"), table_name="permit_history")
    op.drop_table("permit_history")
    op.drop_index("ix_payments_status_updated", table_name="payments")
    op.drop_index(op.f("ix_payments_application_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_index(op.f("ix_payment_events_payment_intent_id"), table_name="payment_events")
    op.drop_index(op.f("ix_payment_events_application_id"), table_name="payment_events")
    op.drop_table("payment_events")
    op.drop_index("ix_outbox_dispatched_at_next_attempt_at", table_name="outbox")
    op.drop_table("outbox")
