"""ballot leaves appended at commit: ballot.leaf becomes ballot.entry and ballot.receipt, a
trigger appends a written ballot's leaf to its poll's log when it commits; poll.log_size goes

Why: a ballot's place in the log used to be taken by updating the poll's row (log_size) from
the ballot's first write to its commit, so every ballot of a poll waited for the one before it
to finish, the bot's round trips included, and the one row took an update per ballot. Now the
ballot row carries its leaf (entry and hash, both known before the commit: an entry no longer
names its place, and a change names the receipt it replaces), and the database appends it,
numbered after the log's last leaf, inside the commit; one poll's ballots are placed one at a
time there only. A close takes the same per-poll lock, so a ballot is either in the log before
the close or not at all. Entries written before this migration keep their "n" and the index
they replace; `linli audit poll` reads both.

An anonymous poll's ballot also keeps who cast it as a keyed token (caster) and the points it
owes them (award): the close awards them all at once, so that no award beside a person says
when they voted (services/voting/awards.py). The tally reads a new index on (poll, choices).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 17:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# services/voting/polls.py LOG_LOCK: the advisory lock's first key (the poll id is the second).
LOG_LOCK = 7011

# PostgreSQL: at the commit (a deferred constraint trigger), after every other write of the
# transaction; the poll's lock is then held only for the rest of the commit.
PG_APPEND = f"""
CREATE FUNCTION ballot_leaf_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({LOG_LOCK}, NEW.poll_id);
    IF (SELECT status FROM poll WHERE id = NEW.poll_id) IS DISTINCT FROM 'open' THEN
        RAISE EXCEPTION 'poll % is closed: its log takes no more leaves', NEW.poll_id
            USING ERRCODE = 'check_violation';
    END IF;
    -- The last leaf by a backward walk of the index, not max(): PL/pgSQL soon plans this
    -- statement once for any poll, and that plan's max() read every leaf of the poll.
    INSERT INTO ballot_event (poll_id, "index", entry, digest, at)
    VALUES (
        NEW.poll_id,
        coalesce(
            (SELECT "index" FROM ballot_event WHERE poll_id = NEW.poll_id
             ORDER BY "index" DESC LIMIT 1),
            0
        ) + 1,
        NEW.entry,
        NEW.receipt,
        NEW.updated_at
    );
    RETURN NULL;
END
$$
"""
PG_APPENDED = """
CREATE CONSTRAINT TRIGGER ballot_leaf_appended AFTER INSERT OR UPDATE OF receipt ON ballot
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ballot_leaf_append()
"""


# SQLite: one writer at a time, so at once is as good as at the commit; one trigger per event.
def sqlite_appended(event: str) -> str:
    return f"""
CREATE TRIGGER ballot_leaf_appended_{event.split()[0].lower()} AFTER {event} ON ballot
FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'poll is closed: its log takes no more leaves')
    WHERE (SELECT status FROM poll WHERE id = NEW.poll_id) IS NOT 'open';
    INSERT INTO ballot_event (poll_id, "index", entry, digest, at)
    SELECT NEW.poll_id, coalesce(max("index"), 0) + 1, NEW.entry, NEW.receipt, NEW.updated_at
    FROM ballot_event WHERE poll_id = NEW.poll_id;
END
"""


SQLITE_EVENTS = ("INSERT", "UPDATE OF receipt")
LEAVES_OF_BALLOTS = """
UPDATE ballot SET
    entry = (SELECT e.entry FROM ballot_event e
             WHERE e.poll_id = ballot.poll_id AND e."index" = ballot.leaf),
    receipt = (SELECT e.digest FROM ballot_event e
               WHERE e.poll_id = ballot.poll_id AND e."index" = ballot.leaf)
"""
BALLOTS_LEAVES = """
UPDATE ballot SET leaf = (
    SELECT e."index" FROM ballot_event e
    WHERE e.poll_id = ballot.poll_id AND e.digest = ballot.receipt
)
"""
LOG_SIZES = """
UPDATE poll SET log_size = (SELECT count(*) FROM ballot_event e WHERE e.poll_id = poll.id)
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("ballot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("receipt", sa.String(length=64), nullable=True))
        # An anonymous ballot's caster (a keyed token) and the points owed at the close.
        batch_op.add_column(sa.Column("caster", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("award", sa.Integer(), server_default="0", nullable=False))
    op.execute(LEAVES_OF_BALLOTS)
    with op.batch_alter_table("ballot", schema=None) as batch_op:
        batch_op.alter_column("entry", existing_type=sa.Text(), nullable=False)
        batch_op.alter_column("receipt", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("leaf")
        # The rows got wider (the entry): the tally reads this index alone.
        batch_op.create_index("ix_ballot_poll_id_choices", ["poll_id", "choices"], unique=False)
    # Natively, not by a batch rebuild: SQLite would drop the old poll table under the ballots
    # that reference it (foreign keys are on).
    op.execute("ALTER TABLE poll DROP COLUMN log_size")
    if postgres:
        op.execute(PG_APPEND)
        op.execute(PG_APPENDED)
    else:
        for event in SQLITE_EVENTS:
            op.execute(sqlite_appended(event))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP TRIGGER ballot_leaf_appended ON ballot")
        op.execute("DROP FUNCTION ballot_leaf_append()")
    else:
        for event in SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER ballot_leaf_appended_{event.split()[0].lower()}")
    op.add_column("poll", sa.Column("log_size", sa.Integer(), nullable=False, server_default="0"))
    op.execute(LOG_SIZES)
    with op.batch_alter_table("ballot", schema=None) as batch_op:
        batch_op.drop_index("ix_ballot_poll_id_choices")
        batch_op.add_column(sa.Column("leaf", sa.Integer(), nullable=True))
    op.execute(BALLOTS_LEAVES)
    with op.batch_alter_table("ballot", schema=None) as batch_op:
        batch_op.alter_column("leaf", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("award")
        batch_op.drop_column("caster")
        batch_op.drop_column("receipt")
        batch_op.drop_column("entry")
