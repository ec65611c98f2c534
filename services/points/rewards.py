"""Rewards and their redemption (`/rewards`, `/pickup`, `linli rewards …`).

A redemption takes one from the reward's stock and the price from the resident's balance in
one transaction, each by a conditional update (`stock > 0`, `balance >= price`), so no
interleaving of residents pressing at once sells more than the stock or overdraws anyone; the
points go to the store at once and are held there. Staff confirm the pickup by its code; an
unclaimed redemption expires and its points and its unit of stock come back.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import Redemption, Reward
from services import audit
from services.points import ledger
from services.points.ledger import POINTS, STORE, Overdrawn, Posting

# Pickup codes: no 0/O, 1/I/L, so that staff read them off a phone without a doubt.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
HELD, PICKED_UP, EXPIRED = "held", "picked_up", "expired"
REDEEM_REASON, REFUND_REASON = "reward.redeemed", "reward.expired"


class Refusal(enum.Enum):
    UNKNOWN = "unknown"  # no such reward
    UNAVAILABLE = "unavailable"  # not active, or outside its window
    OUT_OF_STOCK = "out_of_stock"
    TOO_FEW_POINTS = "too_few_points"


async def add(
    session: AsyncSession,
    *,
    name_zh: str,
    name_en: str,
    price: int,
    stock: int,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    actor_id: int | None = None,
) -> Reward:
    """A reward in the catalog, added by staff (`actor_id`) or the operator; audited."""
    if price <= 0 or stock < 0 or ends_at <= starts_at:
        raise ValueError("a reward has a price above 0, a stock of 0 or more, and a window")
    reward = Reward(
        name_zh=name_zh,
        name_en=name_en,
        price=price,
        stock=stock,
        starts_at=starts_at,
        ends_at=ends_at,
        active=True,
        created_at=now,
    )
    session.add(reward)
    await session.flush()
    await audit.staff_action(session, "reward.add", actor_id, now, reward=reward.id)
    return reward


@dataclass(frozen=True)
class Redeemed:
    redemption: Redemption
    replayed: bool = False  # the same request again: the first redemption, nothing more


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


async def redeem(
    session: AsyncSession,
    person_id: int,
    reward_id: int,
    now: datetime,
    *,
    key: str,
    pickup_days: int = 14,
) -> Redeemed | Refusal:
    """One of the reward for the resident, once per `key`: the same request again, also while
    the first is still being made (a button pressed twice), gets the first redemption."""
    earlier = await _by_key(session, key)
    if earlier is not None:
        return Redeemed(earlier, replayed=True)
    try:
        async with session.begin_nested():
            price = await session.scalar(
                update(Reward)
                .where(
                    Reward.id == reward_id,
                    Reward.active,
                    Reward.starts_at <= now,
                    Reward.ends_at > now,
                    Reward.stock > 0,
                )
                .values(stock=Reward.stock - 1)
                .returning(Reward.price)
            )
            if price is None:
                return await _why_not(session, reward_id, now)
            account = await ledger.account_of(session, person_id, POINTS, now)
            store = await ledger.system(session, STORE, POINTS)
            paid = await ledger.transfer(
                session,
                f"redeem:{key}",
                REDEEM_REASON,
                [Posting(account, -price), Posting(store, price)],
                now,
                reference=f"reward:{reward_id}",
            )
            redemption = Redemption(
                idempotency_key=key,
                reward_id=reward_id,
                person_id=person_id,
                price=price,
                code=new_code(),
                status=HELD,
                transfer_id=paid.id,
                created_at=now,
                expires_at=now + timedelta(days=pickup_days),
            )
            session.add(redemption)
            await session.flush()
    except Overdrawn:
        return Refusal.TOO_FEW_POINTS
    except IntegrityError:
        # The same key made a redemption meanwhile (its transfer was waited for and replayed):
        # this one is undone with its savepoint, and the first one answers.
        earlier = await _by_key(session, key)
        if earlier is None:
            raise
        return Redeemed(earlier, replayed=True)
    return Redeemed(redemption)


async def _by_key(session: AsyncSession, key: str) -> Redemption | None:
    return await session.scalar(select(Redemption).where(Redemption.idempotency_key == key))


async def _why_not(session: AsyncSession, reward_id: int, now: datetime) -> Refusal:
    reward = await session.get(Reward, reward_id)
    if reward is None:
        return Refusal.UNKNOWN
    if not reward.active or not reward.starts_at <= now < reward.ends_at:
        return Refusal.UNAVAILABLE
    return Refusal.OUT_OF_STOCK


class PickupRefusal(enum.Enum):
    UNKNOWN = "unknown"
    ALREADY = "already"  # picked up before
    EXPIRED = "expired"


async def pick_up(
    session: AsyncSession, code: str, staff_id: int, now: datetime
) -> Redemption | PickupRefusal:
    """Staff hand the reward over: the held redemption with this code is done, once."""
    code = tidy_code(code)
    done = await session.scalar(
        update(Redemption)
        .where(Redemption.code == code, Redemption.status == HELD, Redemption.expires_at > now)
        .values(status=PICKED_UP, settled_at=now, picked_up_by=staff_id)
        .returning(Redemption.id)
    )
    found = await session.scalar(select(Redemption).where(Redemption.code == code))
    if found is None:
        return PickupRefusal.UNKNOWN
    if done is not None:
        await audit.staff_action(
            session, "reward.pickup", staff_id, now, redemption=found.id, person=found.person_id
        )
        return found
    return PickupRefusal.ALREADY if found.status == PICKED_UP else PickupRefusal.EXPIRED


async def expire_due(session: AsyncSession, now: datetime) -> int:
    """Held redemptions past their pickup time: points back to the resident, stock back to
    the reward, once each (the status moves under the same conditional update). How many.
    The scheduler's tick runs it."""
    due = (
        await session.scalars(
            select(Redemption.id).where(Redemption.status == HELD, Redemption.expires_at <= now)
        )
    ).all()
    if not due:
        return 0  # every tick: nothing more to read
    store = await ledger.system(session, STORE, POINTS)
    expired = 0
    for redemption_id in due:
        claimed = (
            await session.execute(
                update(Redemption)
                .where(Redemption.id == redemption_id, Redemption.status == HELD)
                .values(status=EXPIRED, settled_at=now)
                .returning(Redemption.person_id, Redemption.reward_id, Redemption.price)
            )
        ).first()
        if claimed is None:
            continue  # picked up or expired meanwhile
        person_id, reward_id, price = claimed
        # The reward's row before the resident's account, as a redemption takes them: two
        # transactions taking both never wait for each other in a circle.
        await session.execute(
            update(Reward).where(Reward.id == reward_id).values(stock=Reward.stock + 1)
        )
        account = await ledger.account_of(session, person_id, POINTS, now)
        refund = await ledger.transfer(
            session,
            f"refund:redemption:{redemption_id}",
            REFUND_REASON,
            [Posting(store, -price), Posting(account, price)],
            now,
            reference=f"reward:{reward_id}",
        )
        await session.execute(
            update(Redemption)
            .where(Redemption.id == redemption_id)
            .values(refund_transfer_id=refund.id)
        )
        expired += 1
    return expired


async def catalog(
    session: AsyncSession, now: datetime, *, everything: bool = False
) -> list[Reward]:
    """What residents can redeem now (active, inside its window, in stock), cheapest first;
    `everything`: every reward not closed, for staff to change (out of stock, not yet or no
    longer in its window)."""
    query = select(Reward).where(Reward.active).order_by(Reward.price, Reward.id)
    if not everything:
        query = query.where(Reward.starts_at <= now, Reward.ends_at > now, Reward.stock > 0)
    return list((await session.scalars(query)).all())


async def all_rewards(session: AsyncSession) -> list[Reward]:
    return list((await session.scalars(select(Reward).order_by(Reward.id))).all())


async def held_by(session: AsyncSession, person_id: int, now: datetime) -> list[Redemption]:
    """The resident's redemptions waiting for pickup, soonest to expire first."""
    return list(
        (
            await session.scalars(
                select(Redemption)
                .where(
                    Redemption.person_id == person_id,
                    Redemption.status == HELD,
                    Redemption.expires_at > now,
                )
                .order_by(Redemption.expires_at, Redemption.id)
            )
        ).all()
    )


async def set_stock(
    session: AsyncSession, reward_id: int, stock: int, now: datetime, *, actor_id: int | None
) -> Reward | None:
    """Staff counted the shelf: the stock is this many now (one statement, so a redemption at
    the same moment is counted before or after it, never lost in between); audited."""
    if stock < 0:
        raise ValueError("a stock is 0 or more")
    changed = await _change(session, reward_id, stock=stock)
    if changed is not None:
        await audit.staff_action(
            session, "reward.stock", actor_id, now, reward=reward_id, stock=stock
        )
    return changed


async def close(
    session: AsyncSession, reward_id: int, now: datetime, *, actor_id: int | None
) -> Reward | None:
    """No longer offered; redemptions already held can still be picked up. Audited."""
    changed = await _change(session, reward_id, active=False)
    if changed is not None:
        await audit.staff_action(session, "reward.close", actor_id, now, reward=reward_id)
    return changed


async def _change(session: AsyncSession, reward_id: int, **values: object) -> Reward | None:
    """The reward as the UPDATE left it (None: no such reward)."""
    return await session.scalar(
        update(Reward)
        .where(Reward.id == reward_id)
        .values(**values)
        .returning(Reward)
        .execution_options(populate_existing=True)
    )


async def by_code(session: AsyncSession, code: str) -> Redemption | None:
    return await session.scalar(select(Redemption).where(Redemption.code == tidy_code(code)))


def tidy_code(typed: str) -> str:
    """A code as staff type or read it: spaces, dashes and case do not matter."""
    return "".join(ch for ch in typed.upper() if ch.isalnum())


async def redeemed_counts(session: AsyncSession) -> dict[int, int]:
    """Redemptions per reward that hold or took a unit of its stock (not the expired)."""
    rows = await session.execute(
        select(Redemption.reward_id, func.count())
        .where(Redemption.status != EXPIRED)
        .group_by(Redemption.reward_id)
    )
    return {reward_id: int(n) for reward_id, n in rows.all()}
