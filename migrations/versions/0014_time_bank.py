"""time bank: help requests paid in minutes, elderly residents the pool covers, and its cap

Why (issue 12): residents ask neighbours for help (`/timebank`), a volunteer takes a request
and the requester confirms the real time, which moves that many minutes from them to the
volunteer in the ledger. Elderly residents whom staff mark (timebank_elder) have the help their
own minutes cannot pay covered by the time-bank pool, up to a monthly cap per person: the
minutes covered per person and month (timebank_coverage) are taken by a conditional update that
never passes the cap.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 05:19:15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "timebank_coverage",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("minutes", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "minutes >= 0", name=op.f("ck_timebank_coverage_minutes_never_negative")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_timebank_coverage_person_id_person")
        ),
        sa.PrimaryKeyConstraint("person_id", "month", name=op.f("pk_timebank_coverage")),
    )
    op.create_table(
        "timebank_elder",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("marked_by", sa.Integer(), nullable=True),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["marked_by"], ["person.id"], name=op.f("fk_timebank_elder_marked_by_person")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_timebank_elder_person_id_person")
        ),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_timebank_elder")),
    )
    op.create_table(
        "timebank_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("what", sa.String(length=200), nullable=False),
        sa.Column("estimate_minutes", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("volunteer_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("own_minutes", sa.Integer(), nullable=True),
        sa.Column("pool_minutes", sa.Integer(), nullable=True),
        sa.Column("transfer_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "estimate_minutes > 0", name=op.f("ck_timebank_request_estimate_positive")
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["person.id"], name=op.f("fk_timebank_request_requester_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["points_transfer.id"],
            name=op.f("fk_timebank_request_transfer_id_points_transfer"),
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_id"], ["person.id"], name=op.f("fk_timebank_request_volunteer_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timebank_request")),
    )
    with op.batch_alter_table("timebank_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_timebank_request_requester_id"), ["requester_id"], unique=False
        )
        batch_op.create_index("ix_timebank_request_status_id", ["status", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_timebank_request_volunteer_id"), ["volunteer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("timebank_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timebank_request_volunteer_id"))
        batch_op.drop_index("ix_timebank_request_status_id")
        batch_op.drop_index(batch_op.f("ix_timebank_request_requester_id"))
    op.drop_table("timebank_request")
    op.drop_table("timebank_elder")
    op.drop_table("timebank_coverage")
