"""reports: report, media, timeline, followers; pending point awards

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 03:12:58.905912
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_award",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_pending_award_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_award")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_pending_award_idempotency_key")),
    )
    with op.batch_alter_table("pending_award", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_award_person_id"), ["person_id"], unique=False)

    op.create_table(
        "report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=True),
        sa.Column("reporter_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("place", sa.String(length=100), nullable=True),
        sa.Column("place_detail", sa.String(length=200), nullable=False),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("reject_reason", sa.String(length=500), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_comment", sa.String(length=500), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["person.id"], name=op.f("fk_report_assignee_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["building_id"], ["building.id"], name=op.f("fk_report_building_id_building")
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"], ["report.id"], name=op.f("fk_report_duplicate_of_id_report")
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"], ["person.id"], name=op.f("fk_report_reporter_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report")),
        sa.UniqueConstraint("number", name=op.f("uq_report_number")),
    )
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_assignee_id"), ["assignee_id"], unique=False)
        batch_op.create_index(
            "ix_report_category_building_state", ["category", "building_id", "state"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_report_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_reporter_id"), ["reporter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_state"), ["state"], unique=False)

    op.create_table(
        "report_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["person.id"], name=op.f("fk_report_event_actor_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["report.id"], name=op.f("fk_report_event_report_id_report")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_event")),
    )
    with op.batch_alter_table("report_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_event_report_id"), ["report_id"], unique=False)

    op.create_table(
        "report_follower",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_report_follower_person_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["report.id"], name=op.f("fk_report_follower_report_id_report")
        ),
        sa.PrimaryKeyConstraint("report_id", "person_id", name=op.f("pk_report_follower")),
    )
    op.create_table(
        "report_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("media_key", sa.String(length=64), nullable=False),
        sa.Column("thumb_key", sa.String(length=64), nullable=True),
        sa.Column("phash", sa.String(length=32), nullable=True),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["report.id"], name=op.f("fk_report_media_report_id_report")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_media")),
    )
    with op.batch_alter_table("report_media", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_media_report_id"), ["report_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("report_media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_media_report_id"))

    op.drop_table("report_media")
    op.drop_table("report_follower")
    with op.batch_alter_table("report_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_event_report_id"))

    op.drop_table("report_event")
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_state"))
        batch_op.drop_index(batch_op.f("ix_report_reporter_id"))
        batch_op.drop_index(batch_op.f("ix_report_due_at"))
        batch_op.drop_index("ix_report_category_building_state")
        batch_op.drop_index(batch_op.f("ix_report_assignee_id"))

    op.drop_table("report")
    with op.batch_alter_table("pending_award", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_award_person_id"))

    op.drop_table("pending_award")
