"""outbox rows for group chats, group cards; groups the bot has left

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A group the bot was removed from (or that answered 403) gets nothing more.
    with op.batch_alter_table("group_chat", schema=None) as batch_op:
        batch_op.add_column(sa.Column("left_at", sa.DateTime(timezone=True), nullable=True))

    # An outbox row goes to a person or to a group chat (exactly one); a group's card (a poll
    # with its turnout) has one row per group, rewritten while it waits.
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_chat_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("card_key", sa.String(length=64), nullable=True))
        batch_op.alter_column("person_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index(
            batch_op.f("ix_outbox_message_group_chat_id"), ["group_chat_id"], unique=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_outbox_message_card_key_group_chat_id"), ["card_key", "group_chat_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_message_group_chat_id_group_chat"),
            "group_chat",
            ["group_chat_id"],
            ["id"],
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_outbox_message_one_target"),
            "(person_id IS NULL) <> (group_chat_id IS NULL)",
        )

    # A shared card's buttons are found again by what they are about.
    with op.batch_alter_table("action_ticket", schema=None) as batch_op:
        batch_op.create_index(
            "ix_action_ticket_kind_subject_id", ["kind", "subject_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("action_ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_action_ticket_kind_subject_id")

    op.execute("DELETE FROM outbox_message WHERE person_id IS NULL")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_outbox_message_one_target"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_outbox_message_group_chat_id_group_chat"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("uq_outbox_message_card_key_group_chat_id"), type_="unique"
        )
        batch_op.drop_index(batch_op.f("ix_outbox_message_group_chat_id"))
        batch_op.alter_column("person_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("card_key")
        batch_op.drop_column("group_chat_id")

    with op.batch_alter_table("group_chat", schema=None) as batch_op:
        batch_op.drop_column("left_at")
