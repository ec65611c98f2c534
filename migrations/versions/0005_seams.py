"""seams: chat menus, card messages, shared tickets

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 17:11:57.424313
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The platform message that shows a card in a chat, so that its updates edit it.
    op.create_table(
        "card_message",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("has_image", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "channel", "chat_id", "kind", "subject", name=op.f("pk_card_message")
        ),
    )
    # The last numbered menu shown in each chat: a digit answers it on any worker.
    op.create_table(
        "chat_menu",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "chat_id", name=op.f("pk_chat_menu")),
    )
    # Shared cards: no person, the chat they were posted in instead.
    with op.batch_alter_table("action_ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("chat_id", sa.String(length=64), nullable=True))
        batch_op.alter_column("person_id", existing_type=sa.INTEGER(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("action_ticket", schema=None) as batch_op:
        batch_op.alter_column("person_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("chat_id")
        batch_op.drop_column("channel")
    op.drop_table("chat_menu")
    op.drop_table("card_message")
