"""hardening: unique scoped roles, conversation versions, outbox back-off, replies kept until sent

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:12:50.617625
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NULL scope columns compared through COALESCE: granting an unscoped role twice now collides.
SCOPE_INDEX = "uq_role_assignment_scope"
SCOPE_COLUMNS = [
    "person_id",
    "role",
    sa.text("coalesce(building_id, 0)"),
    sa.text("coalesce(grid_id, 0)"),
    sa.text("coalesce(department, '')"),
]


def upgrade() -> None:
    # An update is claimed when its transaction ends, with its replies, kept until sent.
    with op.batch_alter_table("processed_update", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chat_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("replies", sa.JSON(none_as_null=True), nullable=True))
    op.create_index(
        "ix_processed_update_unsent",
        "processed_update",
        ["received_at"],
        unique=False,
        sqlite_where=sa.text("replies IS NOT NULL"),
        postgresql_where=sa.text("replies IS NOT NULL"),
    )

    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_outbox_message_next_attempt_at"), ["next_attempt_at"], unique=False
        )

    # Duplicates stored before the index existed: keep the oldest row of each role and scope.
    op.execute(
        """
        DELETE FROM role_assignment
        WHERE id NOT IN (
            SELECT min(id) FROM role_assignment
            GROUP BY person_id, role, coalesce(building_id, 0), coalesce(grid_id, 0),
                     coalesce(department, '')
        )
        """
    )
    with op.batch_alter_table("role_assignment", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_role_assignment_person_id_role_building_id_grid_id"), type_="unique"
        )
    op.create_index(SCOPE_INDEX, "role_assignment", SCOPE_COLUMNS, unique=True)


def downgrade() -> None:
    op.drop_index(SCOPE_INDEX, table_name="role_assignment")
    with op.batch_alter_table("role_assignment", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_role_assignment_person_id_role_building_id_grid_id"),
            ["person_id", "role", "building_id", "grid_id"],
        )

    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_message_next_attempt_at"))
        batch_op.drop_column("next_attempt_at")

    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_column("version")

    op.drop_index("ix_processed_update_unsent", table_name="processed_update")
    with op.batch_alter_table("processed_update", schema=None) as batch_op:
        batch_op.drop_column("replies")
        batch_op.drop_column("chat_id")
