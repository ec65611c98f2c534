"""the tally's index on ballot leads with the voter too: (poll_id, voter, choices)

Why: casting looks a unit's ballot up by poll and voter. With the tally's index on (poll_id,
choices) beside the unique one on (poll_id, voter), PostgreSQL, planning while a poll's ballots
had no statistics yet (a poll's first minutes, when most votes come in), sometimes took the
tally's index, matched the poll alone and read every ballot of it to find one: casting ran at
half speed or less for the whole poll. Every index on ballot that starts with the poll now also
matches the voter, and this one still holds all the tally reads, so the tally reads no rows.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 02:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ballot_poll_id_voter_choices", "ballot", ["poll_id", "voter", "choices"], unique=False
    )
    op.drop_index("ix_ballot_poll_id_choices", table_name="ballot")


def downgrade() -> None:
    op.create_index("ix_ballot_poll_id_choices", "ballot", ["poll_id", "choices"], unique=False)
    op.drop_index("ix_ballot_poll_id_voter_choices", table_name="ballot")
