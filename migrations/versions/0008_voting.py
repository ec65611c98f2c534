"""polls ballots and their log

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 04:20:38.348563
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Polls, one current ballot per eligible unit (unique), and every ballot event as a leaf
    # of the poll's Merkle tree (DESIGN.md "Votes").
    op.create_table(
        "poll",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("question", sa.String(length=300), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("max_choices", sa.Integer(), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("per_household", sa.Boolean(), nullable=False),
        sa.Column("quorum_percent", sa.Integer(), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("log_size", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("root", sa.String(length=64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["building_id"], ["building.id"], name=op.f("fk_poll_building_id_building")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["person.id"], name=op.f("fk_poll_created_by_person")
        ),
        sa.ForeignKeyConstraint(["grid_id"], ["grid.id"], name=op.f("fk_poll_grid_id_grid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_poll")),
    )
    with op.batch_alter_table("poll", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_poll_deadline"), ["deadline"], unique=False)
        batch_op.create_index(batch_op.f("ix_poll_status"), ["status"], unique=False)

    op.create_table(
        "ballot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("poll_id", sa.Integer(), nullable=False),
        sa.Column("voter", sa.String(length=80), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("choices", sa.BigInteger(), nullable=False),
        sa.Column("proxy", sa.Boolean(), nullable=False),
        sa.Column("leaf", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_ballot_person_id_person")
        ),
        sa.ForeignKeyConstraint(["poll_id"], ["poll.id"], name=op.f("fk_ballot_poll_id_poll")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ballot")),
        sa.UniqueConstraint("poll_id", "voter", name=op.f("uq_ballot_poll_id_voter")),
    )
    op.create_table(
        "ballot_event",
        sa.Column("poll_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["poll.id"], name=op.f("fk_ballot_event_poll_id_poll")
        ),
        sa.PrimaryKeyConstraint("poll_id", "index", name=op.f("pk_ballot_event")),
    )
    with op.batch_alter_table("ballot_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ballot_event_digest"), ["digest"], unique=False)
    # Proxy votes: who may vote for whom, in one poll or in a month's votes.
    op.create_table(
        "proxy_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("proxy_id", sa.Integer(), nullable=False),
        sa.Column("poll_id", sa.Integer(), nullable=True),
        sa.Column("month", sa.String(length=7), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["poll_id"], ["poll.id"], name=op.f("fk_proxy_grant_poll_id_poll")),
        sa.ForeignKeyConstraint(
            ["proxy_id"], ["person.id"], name=op.f("fk_proxy_grant_proxy_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["person.id"], name=op.f("fk_proxy_grant_resident_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proxy_grant")),
    )
    with op.batch_alter_table("proxy_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proxy_grant_proxy_id"), ["proxy_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_proxy_grant_resident_id"), ["resident_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("proxy_grant")
    with op.batch_alter_table("ballot_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ballot_event_digest"))

    op.drop_table("ballot_event")
    op.drop_table("ballot")
    with op.batch_alter_table("poll", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_poll_status"))
        batch_op.drop_index(batch_op.f("ix_poll_deadline"))

    op.drop_table("poll")
