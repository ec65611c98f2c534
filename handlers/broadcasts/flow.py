"""`/broadcast`, for staff (any part of the community, a role, the followers of a category's
open reports) and building heads (their own buildings): the text (Telegram's HTML, checked
here), an optional photo, the audience, where (private chats, group chats or both), when (now
or a time in the community's timezone) and whether to ask for acknowledgement; then a preview
with the exact recipient count per channel before [Send]. Also: the broadcasts scheduled
(cancel until they start) and who has acknowledged, by building."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy import select

from handlers.broadcasts.notices import CHANNEL_NAMES
from handlers.flow import CancellableFlow, Context, Step
from handlers.i18n import N_
from handlers.messages import Kind
from handlers.photo_step import PhotoStep
from handlers.reports.intake import MAX_DOCUMENT_BYTES
from handlers.reports.rules import ReportRules
from models import Broadcast, Building, Grid, Role
from services.broadcasts import acks, audience, compose, deliveries, html
from services.broadcasts.audience import CATEGORY, ROLE
from services.scopes import BUILDING, COMMUNITY, GRID

NAME = "broadcast"
NEW, SCHEDULED, STATUS = "new", "scheduled", "status"
PRIVATE, GROUPS, BOTH = "private", "groups", "both"
NOW, LATER, YES, NO, SEND = "now", "later", "yes", "no", "send"
MORE, NEXT = "more", "next"
PHOTO = PhotoStep(NAME, "photo", cancel=True)
ROLE_NAMES = {
    Role.BUILDING_HEAD: N_("Building heads"),
    Role.GRID_WORKER: N_("Grid workers"),
    Role.STAFF: N_("Staff"),
    Role.PROPERTY: N_("Property management"),
    Role.DEPARTMENT: N_("Departments"),
}
PROBLEMS = {
    "tag": N_("{detail} is not a formatting Telegram knows."),
    "attribute": N_("{detail}: Telegram does not take this attribute here."),
    "unclosed": N_("{detail} is opened and not closed, or closed in the wrong order."),
    "stray": N_("“{detail}” must be written as &lt; &gt; or &amp; unless it starts a tag."),
    "entity": N_("{detail} is not an entity Telegram knows: use &lt; &gt; &amp; &quot;."),
    "too_long": N_("It is too long: at most {detail} characters, formatting included."),
}
RECENT = 5


class BroadcastFlow(CancellableFlow):
    name = NAME
    command = "broadcast"
    description = N_("Send an announcement (staff, building heads)")
    roles: ClassVar[frozenset[Role] | None] = frozenset({Role.STAFF, Role.BUILDING_HEAD})
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {
        "menu": Step(),
        "text": Step(ask="_ask_text", text=True),
        "photo": Step(media=True, documents=True),
        "audience": Step(ask="_ask_audience"),
        "part": Step(),
        "more": Step(ask="_ask_more"),
        "where": Step(ask="_ask_where"),
        "when": Step(ask="_ask_when"),
        "at": Step(text=True),
        "ack": Step(ask="_ask_ack"),
        "preview": Step(ask="_ask_preview"),
        "scheduled": Step(),
        "status": Step(),
    }

    def __init__(self, media: ReportRules, resend_hours: float) -> None:
        # The report rules: where photos go, the timezone, and the categories whose open
        # reports' followers an announcement can address.
        self.media = media
        self.zone = ZoneInfo(media.timezone)
        self.resend_hours = resend_hours

    # --- The menu ---------------------------------------------------------------------------

    async def begin(self, ctx: Context, args: str) -> None:
        word = args.strip().lower()
        if word == STATUS:
            await self._ask_status(ctx)
        elif word == SCHEDULED:
            await self._ask_scheduled(ctx)
        else:
            self._ask(
                ctx,
                "menu",
                ctx._("Announcements:"),
                [
                    (ctx._("New announcement"), NEW),
                    (ctx._("Scheduled"), SCHEDULED),
                    (ctx._("Who acknowledged"), STATUS),
                ],
            )

    async def step_menu(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        if ctx.choice == SCHEDULED:
            await self._ask_scheduled(ctx)
        elif ctx.choice == STATUS:
            await self._ask_status(ctx)
        elif ctx.choice == NEW:
            self._ask_text(ctx)
        else:
            await self.ask_again(ctx)

    # --- Composing --------------------------------------------------------------------------

    def _ask_text(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "text",
            ctx._(
                "Type the announcement. You may format it: <b>bold</b>, <i>italic</i>, "
                '<u>underline</u>, <a href="https://…">a link</a>.'
            ),
            [],
        )

    async def step_text(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        text = ctx.typed
        if not text:
            ctx.say(ctx._("Please type the announcement's text."))
            self._ask_text(ctx)
            return
        problem = html.check(text, with_picture=False)
        if problem is not None:
            ctx.say(
                ctx._("Telegram would refuse this text: {problem} Please send it again.").format(
                    problem=ctx._(PROBLEMS[problem.kind]).format(detail=problem.detail)
                )
            )
            self._ask_text(ctx)
            return
        ctx.data["text"] = text
        self._ask_attachment(ctx)

    def _ask_attachment(self, ctx: Context) -> None:
        PHOTO.ask(
            ctx, ctx._("You may add a photo or a PDF document. Send it, or choose “No photo”.")
        )

    async def step_photo(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        if ctx.incoming.kind is Kind.DOCUMENT:
            stored = ctx.incoming.media
            if stored is None:
                problem = ctx.incoming.media_problem
                ctx.say(
                    ctx._("That PDF is too big: the limit is {mb} MB.").format(
                        mb=MAX_DOCUMENT_BYTES // (1024 * 1024)
                    )
                    if problem == "too_big"
                    else ctx._("That file is not a PDF document we can pass on.")
                    if problem == "not_a_pdf"
                    else ctx._("We could not download that file. Please send it again.")
                )
                self._ask_attachment(ctx)
                return
            ctx.data["photo"], ctx.data["document"] = stored.key, stored.name
            await self._ask_audience(ctx)
            return
        taken, key = PHOTO.answer(ctx, self.media)
        if not taken:
            return
        ctx.data["document"] = None
        if key is not None and html.check(str(ctx.data["text"]), with_picture=True):
            ctx.say(
                ctx._(
                    "With a photo the text can have at most {most} characters. Send a shorter "
                    "text first, or choose “No photo”."
                ).format(most=html.CAPTION_LIMIT)
            )
            self._ask_attachment(ctx)
            return
        ctx.data["photo"] = key
        await self._ask_audience(ctx)

    async def _ask_audience(self, ctx: Context) -> None:
        roles = await ctx.roles()
        if roles.is_staff:
            options = [
                (ctx._("The whole community"), COMMUNITY),
                (ctx._("A grid"), GRID),
                (ctx._("A building"), BUILDING),
                (ctx._("A role"), ROLE),
                (ctx._("Followers of open reports in a category"), CATEGORY),
            ]
        else:
            headed = roles.headed_buildings()
            buildings = (
                await ctx.session.scalars(select(Building).where(Building.id.in_(sorted(headed))))
            ).all()
            options = [(b.name, f"{BUILDING}:{b.id}") for b in buildings]
        self._ask(ctx, "audience", ctx._("Who is it for?"), options)

    async def step_audience(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        choice = ctx.choice or ""
        staff = (await ctx.roles()).is_staff
        if choice == COMMUNITY and staff:
            await self._audience_chosen(ctx, COMMUNITY)
            return
        if ":" in choice:  # a building head's building
            await self._audience_chosen(ctx, choice)
            return
        if not staff or choice not in (GRID, BUILDING, ROLE, CATEGORY):
            await self.ask_again(ctx)
            return
        if choice == GRID:
            grids = (await ctx.session.scalars(select(Grid).order_by(Grid.id))).all()
            options = [(g.name, f"{GRID}:{g.id}") for g in grids]
        elif choice == BUILDING:
            buildings = (await ctx.session.scalars(select(Building).order_by(Building.id))).all()
            options = [(b.name, f"{BUILDING}:{b.id}") for b in buildings]
        elif choice == ROLE:
            options = [(ctx._(label), f"{ROLE}:{role.value}") for role, label in ROLE_NAMES.items()]
        else:
            chinese = ctx.t.locale.startswith("zh")
            options = [
                (c.name_zh if chinese else c.name_en, f"{CATEGORY}:{c.category.code}")
                for c in self.media.categories
            ]
        self._ask(ctx, "part", ctx._("Which one?"), options)

    async def step_part(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        if not ctx.choice or ":" not in ctx.choice:
            await self.ask_again(ctx)
            return
        await self._audience_chosen(ctx, ctx.choice)

    async def _audience_chosen(self, ctx: Context, key: str) -> None:
        roles = await ctx.roles()
        if not roles.is_staff and not audience.within_buildings(
            [key], set(roles.headed_buildings())
        ):
            ctx.finish()
            ctx.say(ctx._("Building heads can send announcements to their own buildings only."))
            return
        chosen = [str(k) for k in self._keys(ctx.data) if k != key] + [key]
        ctx.data["audience"] = chosen
        await self._ask_more(ctx)

    @staticmethod
    def _keys(data: dict[str, object]) -> list[str]:
        found = data.get("audience")
        return [str(k) for k in found] if isinstance(found, list) else []

    async def _ask_more(self, ctx: Context) -> None:
        """Several parts of the community, roles or categories: one more, or on."""
        names = [await self._name(ctx, key) for key in self._keys(ctx.data)]
        self._ask(
            ctx,
            "more",
            ctx._("For: {names}. Anyone else?").format(names=", ".join(names)),
            [(ctx._("Add another"), MORE), (ctx._("That's all"), NEXT)],
        )

    async def _name(self, ctx: Context, key: str) -> str:
        kind, _, value = key.partition(":")
        scope = await audience.scope_of(ctx.session, key)
        if scope is not None:
            return scope.name or ctx._("The whole community")
        if kind == ROLE:
            return ctx._(next((n for r, n in ROLE_NAMES.items() if r.value == value), value))
        chinese = ctx.t.locale.startswith("zh")
        for c in self.media.categories:
            if c.category.code == value:
                return c.name_zh if chinese else c.name_en
        return value

    async def step_more(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        if ctx.choice == MORE:
            await self._ask_audience(ctx)
            return
        if ctx.choice != NEXT:
            await self.ask_again(ctx)
            return
        scoped = [k for k in self._keys(ctx.data) if await audience.scope_of(ctx.session, k)]
        if not scoped:
            ctx.data["where"] = PRIVATE  # roles and categories have no group chats
            self._ask_when(ctx)
            return
        self._ask_where(ctx)

    def _ask_where(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "where",
            ctx._("Where should it go?"),
            [
                (ctx._("Private chats"), PRIVATE),
                (ctx._("Group chats"), GROUPS),
                (ctx._("Both"), BOTH),
            ],
        )

    async def step_where(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        if ctx.choice not in (PRIVATE, GROUPS, BOTH):
            await self.ask_again(ctx)
            return
        ctx.data["where"] = ctx.choice
        self._ask_when(ctx)

    def _ask_when(self, ctx: Context) -> None:
        self._ask(ctx, "when", ctx._("When?"), [(ctx._("Now"), NOW), (ctx._("At a time…"), LATER)])

    async def step_when(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        if ctx.choice == NOW:
            ctx.data["at"] = None
            self._ask_ack(ctx)
        elif ctx.choice == LATER:
            self._ask_at(ctx)
        else:
            await self.ask_again(ctx)

    def _ask_at(self, ctx: Context) -> None:
        example = ctx.now.astimezone(self.zone).strftime("%Y-%m-%d 08:00")
        self._ask(
            ctx,
            "at",
            ctx._("Type the date and time, community time, like {example}.").format(
                example=example
            ),
            [],
        )

    async def step_at(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        typed = ctx.typed
        try:
            at = datetime.strptime(typed, "%Y-%m-%d %H:%M").replace(tzinfo=self.zone)
        except ValueError:
            ctx.say(ctx._("That is not a date and time like 2026-12-24 08:00."))
            self._ask_at(ctx)
            return
        if at <= ctx.now:
            ctx.say(ctx._("That time has passed. Please type a time to come."))
            self._ask_at(ctx)
            return
        ctx.data["at"] = at.isoformat()
        self._ask_ack(ctx)

    def _ask_ack(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "ack",
            ctx._(
                "Ask for acknowledgement? Each resident gets [Got it]; those who do not press "
                "it get it again after {hours} hours, and then their building head gets a "
                "door-knock list."
            ).format(hours=f"{self.resend_hours:g}"),
            [(ctx._("Yes, it is urgent"), YES), (ctx._("No"), NO)],
        )

    async def step_ack(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        if ctx.choice not in (YES, NO):
            await self.ask_again(ctx)
            return
        ctx.data["ack"] = ctx.choice == YES
        await self._ask_preview(ctx)

    @staticmethod
    def _where(data: dict[str, object]) -> tuple[bool, bool]:
        """(private chats, group chats)."""
        where = str(data.get("where", PRIVATE))
        return where in (PRIVATE, BOTH), where in (GROUPS, BOTH)

    async def _ask_preview(self, ctx: Context) -> None:
        private, groups = self._where(ctx.data)
        counted = await compose.preview(
            ctx.session, self._keys(ctx.data), private=private, groups=groups
        )
        lines = [ctx._("Preview:"), "", html.plain(str(ctx.data["text"])), ""]
        if ctx.data.get("document"):
            lines.append(ctx._("With the document {name}.").format(name=ctx.data["document"]))
        elif ctx.data.get("photo"):
            lines.append(ctx._("With a photo."))
        for channel, n in sorted(counted.private.items()):
            lines.append(
                ctx._("{channel}: {n} private chats").format(
                    channel=ctx._(CHANNEL_NAMES.get(channel, channel)), n=n
                )
            )
        for channel, n in sorted(counted.groups.items()):
            lines.append(
                ctx._("{channel}: {n} group chats").format(
                    channel=ctx._(CHANNEL_NAMES.get(channel, channel)), n=n
                )
            )
        lines.append(ctx._("In all: {n} chats.").format(n=counted.total))
        if counted.unreachable:
            lines.append(
                ctx._("{n} of them cannot be reached in chat (never wrote to the bot).").format(
                    n=counted.unreachable
                )
            )
        at = ctx.data.get("at")
        if at:
            lines.append(
                ctx._("It goes out at {time}.").format(
                    time=datetime.fromisoformat(str(at)).strftime("%Y-%m-%d %H:%M")
                )
            )
        if ctx.data.get("ack"):
            lines.append(ctx._("Acknowledgement asked."))
        label = ctx._("Schedule") if at else ctx._("Send")
        self._ask(ctx, "preview", "\n".join(lines), [(label, SEND)])

    async def step_preview(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        if ctx.choice != SEND:
            await self.ask_again(ctx)
            return
        data = ctx.finish()
        private, groups = self._where(data)
        at = datetime.fromisoformat(str(data["at"])) if data.get("at") else ctx.now
        made, queued = await compose.create(
            ctx.session,
            author_id=ctx.person.id,
            text=str(data["text"]),
            keys=self._keys(data),
            private=private,
            groups=groups,
            ack=bool(data.get("ack")),
            send_at=at,
            now=ctx.now,
            media_key=str(data["photo"]) if data.get("photo") else None,
            media_kind="document" if data.get("document") else "photo",
            media_name=str(data["document"]) if data.get("document") else None,
            resend_after=timedelta(hours=self.resend_hours),
        )
        if made.status == compose.SCHEDULED:
            ctx.say(
                ctx._(
                    "Scheduled: announcement #{id} goes out at {time}. You can cancel it until "
                    "then with /broadcast scheduled."
                ).format(
                    id=made.id, time=made.send_at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")
                )
            )
        else:
            ctx.say(
                ctx._(
                    "Announcement #{id} is going out to {n} chats. Its progress shows here."
                ).format(id=made.id, n=queued)
            )

    # --- Scheduled ones ---------------------------------------------------------------------

    async def _mine(self, ctx: Context) -> int | None:
        """Staff see every broadcast; a building head their own."""
        return None if (await ctx.roles()).is_staff else ctx.person.id

    async def _ask_scheduled(self, ctx: Context) -> None:
        waiting = await compose.scheduled(ctx.session, await self._mine(ctx))
        if not waiting:
            ctx.finish()
            ctx.say(ctx._("No announcements are scheduled."))
            return
        lines = [ctx._("Scheduled announcements:")]
        for broadcast in waiting:
            when = broadcast.send_at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")
            lines.append(f"#{broadcast.id} {when} · {html.plain(broadcast.text)[:60]}")
        self._ask(
            ctx,
            "scheduled",
            "\n".join(lines),
            [(ctx._("Cancel #{id}").format(id=b.id), str(b.id)) for b in waiting],
        )

    async def step_scheduled(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        if not (ctx.choice or "").isdigit():
            await self.ask_again(ctx)
            return
        broadcast_id = int(ctx.choice or 0)
        mine = await self._mine(ctx)
        found = await ctx.session.get(Broadcast, broadcast_id)
        ctx.finish()
        if found is None or (mine is not None and found.author_id != mine):
            ctx.say(ctx._("That announcement is not yours to cancel."))
            return
        if await compose.cancel(ctx.session, broadcast_id, ctx.now, actor_id=ctx.person.id):
            ctx.say(
                ctx._("Announcement #{id} is cancelled. Nobody got it.").format(id=broadcast_id)
            )
        else:
            ctx.say(
                ctx._(
                    "Announcement #{id} has already started, and can no longer be cancelled."
                ).format(id=broadcast_id)
            )

    # --- Who acknowledged -------------------------------------------------------------------

    async def _ask_status(self, ctx: Context) -> None:
        recent = await acks.asking(ctx.session, await self._mine(ctx), limit=RECENT)
        if not recent:
            ctx.finish()
            ctx.say(ctx._("No announcement has asked for acknowledgement yet."))
            return
        self._ask(
            ctx,
            "status",
            ctx._("Which announcement?"),
            [(f"#{b.id} {html.plain(b.text)[:30]}", str(b.id)) for b in recent],
        )

    async def step_status(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        broadcast = (
            await ctx.session.get(Broadcast, int(ctx.choice or 0))
            if (ctx.choice or "").isdigit()
            else None
        )
        if broadcast is None:
            await self.ask_again(ctx)
            return
        ctx.finish()
        roles = await ctx.roles()
        counts = await deliveries.counts(ctx.session, broadcast.id)
        lines = [
            ctx._("Announcement #{id}: {acknowledged} acknowledged; {delivered} delivered.").format(
                id=broadcast.id, acknowledged=counts.acknowledged, delivered=counts.delivered
            )
        ]
        missing = await acks.still_unacknowledged(ctx.session, broadcast.id)
        buildings = {
            b.id: b.name for b in await ctx.session.scalars(select(Building).order_by(Building.id))
        }
        visible = None if roles.is_staff else set(roles.headed_buildings())
        for building_id, residents in sorted(missing.items()):
            if visible is not None and building_id not in visible:
                continue
            lines.append("")
            lines.append(
                ctx._("{building}: {n} not acknowledged").format(
                    building=buildings.get(building_id, ""), n=len(residents)
                )
            )
            for resident in residents:
                line = ctx._("Room {room}: {name}").format(room=resident.room, name=resident.name)
                if not resident.reachable:
                    line += " " + ctx._("(not reachable in chat)")
                lines.append(line)
        if not missing:
            lines.append(ctx._("Everyone has acknowledged it."))
        ctx.say("\n".join(lines))
