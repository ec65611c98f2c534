"""group chats and their scope

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 04:13:24.945540
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The group chats the bot is in; polls, results and broadcasts go to those of a scope.
    op.create_table(
        "group_chat",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=True),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("linked_by", sa.Integer(), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"], ["building.id"], name=op.f("fk_group_chat_building_id_building")
        ),
        sa.ForeignKeyConstraint(["grid_id"], ["grid.id"], name=op.f("fk_group_chat_grid_id_grid")),
        sa.ForeignKeyConstraint(
            ["linked_by"], ["person.id"], name=op.f("fk_group_chat_linked_by_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_chat")),
        sa.UniqueConstraint("channel", "chat_id", name=op.f("uq_group_chat_channel_chat_id")),
    )


def downgrade() -> None:
    op.drop_table("group_chat")
