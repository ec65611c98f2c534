"""agenda cycle: months, items, support, follow-up; poll purpose

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:39:04.756429
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The monthly 议事厅 cycle; its vote is a poll of the voting service (purpose 'agenda').
    op.create_table(
        "agenda_cycle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("proposals_close_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("voting_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("publish_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("votes_per_voter", sa.Integer(), nullable=False),
        sa.Column("council_items", sa.Integer(), nullable=False),
        sa.Column("per_household", sa.Boolean(), nullable=False),
        sa.Column("poll_id", sa.Integer(), nullable=True),
        sa.Column("voting_opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("chart_key", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["poll.id"], name=op.f("fk_agenda_cycle_poll_id_poll")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agenda_cycle")),
        sa.UniqueConstraint("month", name=op.f("uq_agenda_cycle_month")),
    )
    with op.batch_alter_table("agenda_cycle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agenda_cycle_phase"), ["phase"], unique=False)

    op.create_table(
        "agenda_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("proposer_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=60), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("photo_key", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("moderated_by", sa.Integer(), nullable=True),
        sa.Column("moderated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("option", sa.Integer(), nullable=True),
        sa.Column("votes", sa.Integer(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("selected", sa.Boolean(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["agenda_cycle.id"], name=op.f("fk_agenda_item_cycle_id_agenda_cycle")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["person.id"], name=op.f("fk_agenda_item_decided_by_person")
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["agenda_item.id"],
            name=op.f("fk_agenda_item_merged_into_id_agenda_item"),
        ),
        sa.ForeignKeyConstraint(
            ["moderated_by"], ["person.id"], name=op.f("fk_agenda_item_moderated_by_person")
        ),
        sa.ForeignKeyConstraint(
            ["proposer_id"], ["person.id"], name=op.f("fk_agenda_item_proposer_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agenda_item")),
    )
    with op.batch_alter_table("agenda_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agenda_item_cycle_id"), ["cycle_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_agenda_item_proposer_id"), ["proposer_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_agenda_item_status"), ["status"], unique=False)

    op.create_table(
        "agenda_support",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["agenda_item.id"], name=op.f("fk_agenda_support_item_id_agenda_item")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_agenda_support_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agenda_support")),
        sa.UniqueConstraint(
            "item_id", "person_id", name=op.f("uq_agenda_support_item_id_person_id")
        ),
    )
    with op.batch_alter_table("agenda_support", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agenda_support_item_id"), ["item_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_agenda_support_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "agenda_update",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("photo_key", sa.String(length=128), nullable=True),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"], ["person.id"], name=op.f("fk_agenda_update_by_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["agenda_item.id"], name=op.f("fk_agenda_update_item_id_agenda_item")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agenda_update")),
    )
    with op.batch_alter_table("agenda_update", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agenda_update_item_id"), ["item_id"], unique=False)

    with op.batch_alter_table("poll", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=16), server_default="poll", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("poll", schema=None) as batch_op:
        batch_op.drop_column("purpose")

    with op.batch_alter_table("agenda_update", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agenda_update_item_id"))

    op.drop_table("agenda_update")
    with op.batch_alter_table("agenda_support", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agenda_support_person_id"))
        batch_op.drop_index(batch_op.f("ix_agenda_support_item_id"))

    op.drop_table("agenda_support")
    with op.batch_alter_table("agenda_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agenda_item_status"))
        batch_op.drop_index(batch_op.f("ix_agenda_item_proposer_id"))
        batch_op.drop_index(batch_op.f("ix_agenda_item_cycle_id"))

    op.drop_table("agenda_item")
    with op.batch_alter_table("agenda_cycle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agenda_cycle_phase"))

    op.drop_table("agenda_cycle")
