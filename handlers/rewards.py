"""`/rewards`: the catalog, a reward redeemed for points (its pickup code and QR code), the
codes still waiting; for staff also adding a reward, changing its stock and closing it.
`/pickup CODE`: staff hand a reward over (services/points/rewards.py)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from handlers.flow import CancellableFlow, Context, Notifier, Step
from handlers.i18n import N_, Translator
from handlers.messages import Outgoing
from handlers.notices import NoticeKind
from handlers.reports.rules import REPORTER_ROLES
from handlers.start_links import StartLinks
from models import Redemption, Reward, Role
from services import people
from services.media.storage import MediaStorage
from services.notices import Notice
from services.points import ledger, rewards
from services.points.ledger import POINTS

PICKED_UP = "reward.picked_up"  # to the resident: staff handed their reward over
REWARD, CODES, ADD, CHANGE, REDEEM = "r:", "codes", "add", "change", "redeem"
SET_STOCK, CLOSE, CONFIRM = "stock", "close", "confirm"
MAX_NAME = 60
MAX_PRICE = 1_000_000
MAX_STOCK = 100_000
DAYS = (7, 30, 90, 365)


@dataclass(frozen=True)
class RewardRules:
    timezone: str
    pickup_days: int
    storage: MediaStorage
    links: StartLinks


def name_of(t: Translator, reward: Reward) -> str:
    return reward.name_zh if t.locale.startswith("zh") else reward.name_en


def shown_code(code: str) -> str:
    """Read off a phone in two halves: K7M2 9QXP."""
    return f"{code[:4]} {code[4:]}"


def qr_png(data: str) -> bytes:
    import qrcode  # drawn only when a code is shown

    image = qrcode.make(data, box_size=8, border=4)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


class RewardsFlow(CancellableFlow):
    name = "rewards"
    command = "rewards"
    description = N_("Rewards you can get for your points")
    roles = REPORTER_ROLES
    private_only = True
    steps: ClassVar[dict[str, Step]] = {
        "menu": Step(ask="_menu"),
        "confirm": Step(),
        "name_zh": Step(ask="_ask_name_zh", text=True),
        "name_en": Step(ask="_ask_name_en", text=True),
        "price": Step(ask="_ask_price", text=True),
        "stock": Step(ask="_ask_stock", text=True),
        "days": Step(ask="_ask_days", text=True),
        "add_confirm": Step(ask="_ask_add_confirm"),
        "pick": Step(ask="_ask_pick"),
        "change": Step(),
        "new_stock": Step(text=True),
    }

    def __init__(self, rules: RewardRules) -> None:
        self.rules = rules
        self.zone = ZoneInfo(rules.timezone)

    def _date(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m-%d")

    async def begin(self, ctx: Context, args: str) -> None:
        await self._menu(ctx)

    async def _staff(self, ctx: Context) -> bool:
        return (await ctx.roles()).may_use(frozenset({Role.STAFF}))

    async def _menu(self, ctx: Context) -> None:
        balance = await ledger.balance(ctx.session, ctx.person.id, POINTS)
        held = await rewards.held_by(ctx.session, ctx.person.id, ctx.now)
        offered = await rewards.catalog(ctx.session, ctx.now)
        lines = [ctx._("Your points: {points}").format(points=balance)]
        if held:
            lines += ["", ctx._("Waiting for you at the community service centre:")]
            for redemption in held:
                reward = await ctx.session.get(Reward, redemption.reward_id)
                lines.append(
                    ctx._("• {reward}: code {code}, until {date}").format(
                        reward=name_of(ctx.t, reward) if reward else "",
                        code=shown_code(redemption.code),
                        date=self._date(redemption.expires_at),
                    )
                )
        lines.append("")
        if offered:
            lines.append(ctx._("Rewards (choose one to redeem it):"))
            for reward in offered:
                lines.append(
                    ctx._("• {reward}: {price} points ({stock} left)").format(
                        reward=name_of(ctx.t, reward), price=reward.price, stock=reward.stock
                    )
                )
        else:
            lines.append(ctx._("No rewards are on offer right now. Points keep: come back later."))
        options = [
            (
                ctx._("{reward} · {price}").format(
                    reward=name_of(ctx.t, reward), price=reward.price
                ),
                f"{REWARD}{reward.id}",
            )
            for reward in offered
        ]
        if held:
            options.append((ctx._("Show my pickup codes"), CODES))
        if await self._staff(ctx):
            options += [(ctx._("Add a reward"), ADD), (ctx._("Change a reward"), CHANGE)]
        if not options:
            ctx.finish()
            ctx.say("\n".join(lines))
            return
        self._ask(ctx, "menu", "\n".join(lines), options)

    async def step_menu(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        choice = ctx.choice or ""
        if choice == CODES:
            ctx.finish()
            for redemption in await rewards.held_by(ctx.session, ctx.person.id, ctx.now):
                ctx.replies.append(await self._code_message(ctx, redemption))
            return
        if choice in (ADD, CHANGE):
            if not await self._staff(ctx):
                ctx.finish()
                ctx.say(ctx._("Only staff can change the rewards."))
                return
            await (self._ask_name_zh(ctx) if choice == ADD else self._ask_pick(ctx))
            return
        reward_id = choice.removeprefix(REWARD)
        reward = await ctx.session.get(Reward, int(reward_id)) if reward_id.isdigit() else None
        if reward is None:
            await self.ask_again(ctx)
            return
        balance = await ledger.balance(ctx.session, ctx.person.id, POINTS)
        if balance < reward.price:
            ctx.finish()
            ctx.say(
                ctx._(
                    "{reward} takes {price} points and you have {points}: {missing} more to go."
                ).format(
                    reward=name_of(ctx.t, reward),
                    price=reward.price,
                    points=balance,
                    missing=reward.price - balance,
                )
            )
            return
        self._ask(
            ctx,
            "confirm",
            ctx._(
                "Redeem {reward} for {price} points? You will have {left} left. Collect it at the "
                "community service centre within {days} days, with the code you get."
            ).format(
                reward=name_of(ctx.t, reward),
                price=reward.price,
                left=balance - reward.price,
                days=self.rules.pickup_days,
            ),
            [(ctx._("Redeem"), f"{REDEEM}:{reward.id}")],
        )

    async def step_confirm(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        assert ctx.state is not None
        reward_id = int((ctx.choice or "").removeprefix(f"{REDEEM}:") or 0)
        # One key per question asked: the same press delivered again is the same redemption.
        key = f"chat:{ctx.person.id}:{ctx.state.nonce}:{reward_id}"
        ctx.finish()
        made = await rewards.redeem(
            ctx.session,
            ctx.person.id,
            reward_id,
            ctx.now,
            key=key,
            pickup_days=self.rules.pickup_days,
        )
        if isinstance(made, rewards.Refusal):
            ctx.say(ctx._(REFUSED[made]))
            return
        ctx.replies.append(await self._code_message(ctx, made.redemption, new=True))

    async def _code_message(
        self, ctx: Context, redemption: Redemption, *, new: bool = False
    ) -> Outgoing:
        reward = await ctx.session.get(Reward, redemption.reward_id)
        lines = []
        if new:
            lines.append(
                ctx._("Redeemed: {reward}.").format(reward=name_of(ctx.t, reward) if reward else "")
            )
        else:
            lines.append(name_of(ctx.t, reward) if reward else "")
        lines.append(
            ctx._(
                "Your pickup code: {code}\nShow it, or this QR code, at the community service "
                "centre by {date}."
            ).format(code=shown_code(redemption.code), date=self._date(redemption.expires_at))
        )
        if new:
            balance = await ledger.balance(ctx.session, ctx.person.id, POINTS)
            lines.append(ctx._("Your points: {points}").format(points=balance))
        return Outgoing("\n".join(lines), image_key=await self._qr(redemption.code))

    async def _qr(self, code: str) -> str:
        """The code's QR image, stored by its content: a staff member's phone scanning it opens
        /pickup with the code (a deep link) where the bot has one, else reads the code."""
        data = self.rules.links.to_command(PickupFlow.command, code) or code
        png = await asyncio.to_thread(qr_png, data)
        return self.rules.storage.put(hashlib.sha256(png).hexdigest(), png)

    # --- Staff: a new reward --------------------------------------------------------------

    async def _ask_name_zh(self, ctx: Context) -> None:
        self._ask(ctx, "name_zh", ctx._("New reward: its name in Chinese?"), [])

    async def step_name_zh(self, ctx: Context) -> None:
        if await self._name(ctx, "name_zh"):
            await self._ask_name_en(ctx)

    async def _ask_name_en(self, ctx: Context) -> None:
        self._ask(ctx, "name_en", ctx._("And its name in English?"), [])

    async def step_name_en(self, ctx: Context) -> None:
        if await self._name(ctx, "name_en"):
            await self._ask_price(ctx)

    async def _name(self, ctx: Context, step: str) -> bool:
        if ctx.cancelled():
            return False
        typed = " ".join(ctx.typed.split())
        if not typed or len(typed) > MAX_NAME:
            ctx.say(ctx._("Please type a name of 1 to {most} characters.").format(most=MAX_NAME))
            await self.ask_again(ctx)
            return False
        ctx.data[step] = typed
        return True

    async def _ask_price(self, ctx: Context) -> None:
        self._ask(ctx, "price", ctx._("Its price in points? Type a whole number."), [])

    async def step_price(self, ctx: Context) -> None:
        if await self._number(ctx, "price", 1, MAX_PRICE):
            await self._ask_stock(ctx)

    async def _ask_stock(self, ctx: Context) -> None:
        self._ask(ctx, "stock", ctx._("How many are in stock? Type a whole number."), [])

    async def step_stock(self, ctx: Context) -> None:
        if await self._number(ctx, "stock", 0, MAX_STOCK):
            await self._ask_days(ctx)

    async def _number(self, ctx: Context, key: str, least: int, most: int) -> bool:
        number = await self._whole_number(ctx, least, most)
        if number is not None:
            ctx.data[key] = number
        return number is not None

    async def _ask_days(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "days",
            ctx._("Offered for how many days from today? Choose, or type a number."),
            [(ctx._("{n} days").format(n=n), str(n)) for n in DAYS],
        )

    async def step_days(self, ctx: Context) -> None:
        if await self._number(ctx, "days", 1, 3650):
            await self._ask_add_confirm(ctx)

    async def _ask_add_confirm(self, ctx: Context) -> None:
        ends = ctx.now + timedelta(days=int(ctx.data["days"]))  # type: ignore[call-overload]
        self._ask(
            ctx,
            "add_confirm",
            ctx._(
                "Add {name_zh} / {name_en}: {price} points, {stock} in stock, offered until {date}?"
            ).format(
                name_zh=ctx.data["name_zh"],
                name_en=ctx.data["name_en"],
                price=ctx.data["price"],
                stock=ctx.data["stock"],
                date=self._date(ends),
            ),
            [(ctx._("Add it"), CONFIRM)],
        )

    async def step_add_confirm(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        data = ctx.finish()
        reward = await rewards.add(
            ctx.session,
            name_zh=str(data["name_zh"]),
            name_en=str(data["name_en"]),
            price=int(data["price"]),  # type: ignore[call-overload]
            stock=int(data["stock"]),  # type: ignore[call-overload]
            starts_at=ctx.now,
            ends_at=ctx.now + timedelta(days=int(data["days"])),  # type: ignore[call-overload]
            now=ctx.now,
            actor_id=ctx.person.id,
        )
        ctx.say(
            ctx._("Added: {reward}. Residents see it in /rewards now.").format(
                reward=name_of(ctx.t, reward)
            )
        )

    # --- Staff: change a reward -----------------------------------------------------------

    async def _ask_pick(self, ctx: Context) -> None:
        found = await rewards.catalog(ctx.session, ctx.now, everything=True)
        if not found:
            ctx.finish()
            ctx.say(ctx._("There are no rewards to change. Add one first."))
            return
        self._ask(
            ctx,
            "pick",
            ctx._("Which reward?"),
            [
                (
                    ctx._("{reward} ({stock} left)").format(
                        reward=name_of(ctx.t, reward), stock=reward.stock
                    ),
                    str(reward.id),
                )
                for reward in found
            ],
        )

    async def step_pick(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        reward = await ctx.session.get(Reward, int(ctx.choice or 0))
        if reward is None or not reward.active:
            await self._ask_pick(ctx)
            return
        self._ask(
            ctx,
            "change",
            ctx._("{reward}: {price} points, {stock} left, offered until {date}.").format(
                reward=name_of(ctx.t, reward),
                price=reward.price,
                stock=reward.stock,
                date=self._date(reward.ends_at),
            ),
            [
                (ctx._("Set the stock"), f"{SET_STOCK}:{reward.id}"),
                (ctx._("Stop offering it"), f"{CLOSE}:{reward.id}"),
            ],
        )

    async def step_change(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        what, _, reward_id = (ctx.choice or "").partition(":")
        ctx.data["reward"] = int(reward_id or 0)
        if what == SET_STOCK:
            self._ask(
                ctx, "new_stock", ctx._("How many are on the shelf now? Type a whole number."), []
            )
            return
        ctx.finish()
        closed = await rewards.close(
            ctx.session, int(reward_id or 0), ctx.now, actor_id=ctx.person.id
        )
        if closed is None:
            ctx.say(ctx._("That reward is no longer known here. Nothing was changed."))
            return
        ctx.say(
            ctx._(
                "{reward} is no longer offered. Codes already given can still be picked up."
            ).format(reward=name_of(ctx.t, closed))
        )

    async def step_new_stock(self, ctx: Context) -> None:
        if not await self._number(ctx, "stock", 0, MAX_STOCK):
            return
        data = ctx.finish()
        stock = int(data["stock"])  # type: ignore[call-overload]
        changed = await rewards.set_stock(
            ctx.session,
            int(data["reward"]),
            stock,
            ctx.now,
            actor_id=ctx.person.id,  # type: ignore[call-overload]
        )
        if changed is None:
            ctx.say(ctx._("That reward is no longer known here. Nothing was changed."))
            return
        ctx.say(
            ctx._("{reward}: {stock} in stock now.").format(
                reward=name_of(ctx.t, changed), stock=stock
            )
        )


REFUSED = {
    rewards.Refusal.TOO_FEW_POINTS: N_(
        "You no longer have enough points for it. Nothing was taken."
    ),
    rewards.Refusal.OUT_OF_STOCK: N_("Sorry, it has just run out. Nothing was taken."),
    rewards.Refusal.UNAVAILABLE: N_("Sorry, it is no longer offered. Nothing was taken."),
    rewards.Refusal.UNKNOWN: N_("Sorry, it is no longer offered. Nothing was taken."),
}


class PickupFlow(CancellableFlow):
    """`/pickup CODE`, for staff at the service centre: the code typed or its QR code scanned
    (a deep link that opens this command with the code)."""

    name = "pickup"
    command = "pickup"
    description = N_("Hand over a redeemed reward by its pickup code (staff)")
    roles: ClassVar[frozenset[Role] | None] = frozenset({Role.STAFF})
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {"code": Step(text=True)}

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    async def begin(self, ctx: Context, args: str) -> None:
        if args.strip():
            await self._hand_over(ctx, args)
        else:
            self._ask_code(ctx)

    def _ask_code(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "code",
            ctx._("Type the pickup code the resident shows you (8 letters and digits)."),
            [],
        )

    async def step_code(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        await self._hand_over(ctx, ctx.typed)

    async def _hand_over(self, ctx: Context, typed: str) -> None:
        code = rewards.tidy_code(typed)
        if len(code) != rewards.CODE_LENGTH or any(c not in rewards.CODE_ALPHABET for c in code):
            ctx.say(
                ctx._("That is not a pickup code: a code has 8 letters and digits, like K7M2 9QXP.")
            )
            self._ask_code(ctx)
            return
        ctx.finish()
        done = await rewards.pick_up(ctx.session, code, ctx.person.id, ctx.now)
        if done is rewards.PickupRefusal.UNKNOWN:
            ctx.say(
                ctx._("No reward has the code {code}. Please check it with the resident.").format(
                    code=shown_code(code)
                )
            )
            return
        if isinstance(done, rewards.PickupRefusal):
            found = await rewards.by_code(ctx.session, code)
            assert found is not None
            said = (
                ctx._("{code} was already picked up ({date}). Do not hand it over again.")
                if done is rewards.PickupRefusal.ALREADY
                else ctx._(
                    "{code} expired ({date}) and its points went back to the resident. They "
                    "can redeem it again in /rewards."
                )
            )
            # Past its time but not yet given back by the tick: it expired all the same.
            when = (
                (found.settled_at or found.expires_at)
                .astimezone(self.zone)
                .strftime("%Y-%m-%d %H:%M")
            )
            ctx.say(said.format(code=shown_code(code), date=when))
            return
        found = done
        reward = await ctx.session.get(Reward, found.reward_id)
        resident = await people.with_household(ctx.session, found.person_id)
        where = ""
        if resident is not None and resident.household is not None:
            building = people.building_of(resident)
            where = ctx._(" ({building}, room {room})").format(
                building=building.name if building else "", room=resident.household.room
            )
        ctx.say(
            ctx._("Hand over {reward} to {name}{where}. It is recorded as picked up.").format(
                reward=name_of(ctx.t, reward) if reward else "",
                name=resident.display_name if resident else "",
                where=where,
            )
        )
        await ctx.deliver([Notice(found.person_id, PICKED_UP, subject_id=found.id, params={})])


def rewards_notices() -> dict[str, NoticeKind]:
    async def picked_up(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        redemption = await notifier.session.get(Redemption, notice.subject_id)
        reward = await notifier.session.get(Reward, redemption.reward_id) if redemption else None
        return Outgoing(
            t.gettext("You picked up {reward}. Thank you for taking part!").format(
                reward=name_of(t, reward) if reward else ""
            )
        )

    return {PICKED_UP: NoticeKind(picked_up)}
