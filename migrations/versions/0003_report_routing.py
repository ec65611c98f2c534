"""report routing: department roles; report grid, reminder and escalation times

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:36:05.412793
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # role_assignment.role is a non-native enum without a CHECK constraint (0001), so the new
    # roles (property, property_head, department, department_head) need no DDL of their own.
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grid_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("escalate_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_report_remind_at"), ["remind_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_escalate_at"), ["escalate_at"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_report_grid_id_grid"), "grid", ["grid_id"], ["id"]
        )

    with op.batch_alter_table("role_assignment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("department", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("role_assignment", schema=None) as batch_op:
        batch_op.drop_column("department")

    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_report_grid_id_grid"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_report_escalate_at"))
        batch_op.drop_index(batch_op.f("ix_report_remind_at"))
        batch_op.drop_column("escalate_at")
        batch_op.drop_column("remind_at")
        batch_op.drop_column("grid_id")
