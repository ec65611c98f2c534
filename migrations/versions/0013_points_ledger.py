"""points ledger: accounts, transfers and their entries; rewards and their redemptions

Why (issue 12): points were recorded as pending awards until now. The ledger is double-entry:
a transfer's entries sum to zero per unit, a person's account never goes below zero (a check
constraint, so no interleaving of transfers overdraws one), and entries and transfers are
append-only: the database refuses to update or delete them (a mistake is corrected by a
reversing transfer). System accounts (the community's issuing account, the reward store and
the time-bank pool) keep no balance of their own to update: every award would otherwise wait
for the one before it on that row. A reward's stock, like a balance, is taken by a
conditional update and never goes below zero; a redemption holds its points in the store until
the pickup, or gives them back when it expires. Residents who opt in are named on their
building's leaderboard (leaderboard_member); the others are only counted.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 02:11:35
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("points_transfer", "points_entry")

PG_REFUSE = """
CREATE FUNCTION points_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'points ledger: % is append-only (correct a transfer by reversing it)',
        TG_TABLE_NAME;
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "points_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("system", sa.String(length=16), nullable=True),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(person_id IS NULL) <> (system IS NULL)", name=op.f("ck_points_account_one_owner")
        ),
        sa.CheckConstraint(
            "system IS NOT NULL OR balance >= 0", name=op.f("ck_points_account_never_negative")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_points_account_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_account")),
        sa.UniqueConstraint("person_id", "unit", name=op.f("uq_points_account_person_id_unit")),
        sa.UniqueConstraint("system", "unit", name=op.f("uq_points_account_system_unit")),
        # Room on each page for the new versions of balances that every transfer updates.
        postgresql_with={"fillfactor": "20"},
    )
    op.create_table(
        "points_transfer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("reverses_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["person.id"], name=op.f("fk_points_transfer_actor_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["points_transfer.id"],
            name=op.f("fk_points_transfer_reverses_id_points_transfer"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_transfer")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_points_transfer_idempotency_key")),
    )
    op.create_table(
        "points_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transfer_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_points_entry_not_zero")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["points_account.id"],
            name=op.f("fk_points_entry_account_id_points_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_entry")),
    )
    op.create_index(
        "ix_points_entry_account_id_id", "points_entry", ["account_id", "id"], unique=False
    )
    op.create_index(
        op.f("ix_points_entry_transfer_id"), "points_entry", ["transfer_id"], unique=False
    )
    op.create_table(
        "reward",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name_zh", sa.String(length=60), nullable=False),
        sa.Column("name_en", sa.String(length=60), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("price > 0", name=op.f("ck_reward_price_positive")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_reward_stock_never_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward")),
    )
    op.create_table(
        "redemption",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("transfer_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("picked_up_by", sa.Integer(), nullable=True),
        sa.Column("refund_transfer_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_redemption_person_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["picked_up_by"], ["person.id"], name=op.f("fk_redemption_picked_up_by_person")
        ),
        sa.ForeignKeyConstraint(
            ["refund_transfer_id"],
            ["points_transfer.id"],
            name=op.f("fk_redemption_refund_transfer_id_points_transfer"),
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["reward.id"], name=op.f("fk_redemption_reward_id_reward")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["points_transfer.id"],
            name=op.f("fk_redemption_transfer_id_points_transfer"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemption")),
        sa.UniqueConstraint("code", name=op.f("uq_redemption_code")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_redemption_idempotency_key")),
    )
    op.create_table(
        "leaderboard_member",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_leaderboard_member_person_id_person")
        ),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_leaderboard_member")),
    )
    op.create_table(
        "points_statement",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_points_statement_person_id_person")
        ),
        sa.PrimaryKeyConstraint("person_id", "month", name=op.f("pk_points_statement")),
    )
    op.create_index(op.f("ix_redemption_person_id"), "redemption", ["person_id"], unique=False)
    op.create_index(op.f("ix_redemption_reward_id"), "redemption", ["reward_id"], unique=False)
    op.create_index(op.f("ix_redemption_status"), "redemption", ["status"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_REFUSE)
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION points_append_only()"
            )
    else:
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_append_only_{event.lower()} BEFORE {event} ON "
                    f"{table} BEGIN SELECT RAISE(ABORT, 'points ledger: {table} is "
                    "append-only (correct a transfer by reversing it)'); END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION points_append_only()")
    else:
        for table in APPEND_ONLY:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER {table}_append_only_{event}")
    op.drop_index(op.f("ix_redemption_status"), table_name="redemption")
    op.drop_index(op.f("ix_redemption_reward_id"), table_name="redemption")
    op.drop_index(op.f("ix_redemption_person_id"), table_name="redemption")
    op.drop_table("redemption")
    op.drop_table("leaderboard_member")
    op.drop_table("points_statement")
    op.drop_table("reward")
    op.drop_index(op.f("ix_points_entry_transfer_id"), table_name="points_entry")
    op.drop_index("ix_points_entry_account_id_id", table_name="points_entry")
    op.drop_table("points_entry")
    op.drop_table("points_transfer")
    op.drop_table("points_account")
