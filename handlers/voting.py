"""Building polls in chat: the card each eligible resident gets, voting by its buttons or with
/poll, the receipt, /verify, the reminder and the results (services/voting/)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import select

from handlers.flow import TICKET_PREFIX, Context, Flow, Notifier, Step, TicketHandler, payloads
from handlers.i18n import N_, Translator
from handlers.messages import Option, Outgoing
from handlers.notices import NoticeKind
from handlers.poll_draft import DraftSteps
from handlers.proxy_grants import ProxyGrantFlow
from handlers.start_links import start_parameter
from models import GroupChat, Person, Poll
from services import audit, people, tickets
from services.notices import GroupNotice, Notice
from services.voting import ballots, notices, participation, polls, proxies
from services.voting.ballots import Receipt, Refusal

VoterKey = Callable[[], bytes]
CHOOSE = "choose"
NEW = "new"
WHO = "who:"
PROXIES = "proxies"
# Closed polls stay listed (for who took part) this long.
SHOW_CLOSED_FOR = timedelta(days=30)
CONFIRM = "confirm"
# A group card's buttons outlive its poll's close by this much: a late press is told it closed.
GROUP_BUTTONS_AFTER_CLOSE = timedelta(days=30)

REFUSALS = {
    Refusal.UNKNOWN: N_("This poll no longer exists."),
    Refusal.CLOSED: N_("This poll is closed. Its results were sent when it closed."),
    Refusal.NOT_ELIGIBLE: N_("Sorry, this poll is for residents of another part of the community."),
    Refusal.BAD_CHOICE: N_("That is not one of the poll's options."),
    Refusal.TOO_MANY: N_("You can choose at most {max} options in this poll."),
}


def _local(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _facts(t: Translator, poll: Poll, timezone: str) -> str:
    facts = [t.gettext("Deadline: {when}").format(when=_local(poll.deadline, timezone))]
    if poll.max_choices > 1:
        facts.append(t.gettext("Choose up to {max} options.").format(max=poll.max_choices))
    facts.append(
        t.gettext("Anonymous: nobody can see who chose what.")
        if poll.anonymous
        else t.gettext("Named: the organiser and staff can see who chose what after the close.")
    )
    if poll.per_household:
        facts.append(t.gettext("One vote per household: the latest vote from your home counts."))
    return "\n".join(facts)


def poll_notices(timezone: str) -> dict[str, NoticeKind]:
    async def opened(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        poll = await notifier.session.get(Poll, notice.subject_id)
        assert poll is not None
        reader = await notifier.session.get(Person, notice.person_id)
        text = "\n\n".join(
            [
                t.gettext("New poll: {question}").format(question=poll.question),
                _facts(t, poll, timezone),
                t.gettext("Nobody sees any results before the close."),
            ]
        )
        choices = (
            [(option, str(n)) for n, option in enumerate(poll.options)]
            if poll.max_choices == 1
            else [(t.gettext("Choose"), CHOOSE)]
        )
        options = await notifier.ticket_options(reader, notices.POLL_TICKET, poll.id, choices)
        return Outgoing(text, options=options)

    async def reminder(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        poll = await notifier.session.get(Poll, notice.subject_id)
        assert poll is not None
        return Outgoing(
            t.gettext(
                "Reminder: the poll “{question}” closes at {when} and your vote is not in yet. "
                "Send /poll to vote."
            ).format(question=poll.question, when=_local(poll.deadline, timezone))
        )

    async def results(notifier: Notifier, t: Translator, notice: Notice | GroupNotice) -> Outgoing:
        poll = await notifier.session.get(Poll, notice.subject_id)
        assert poll is not None
        return Outgoing(results_text(t, poll))

    async def group_card(notifier: Notifier, t: Translator, notice: GroupNotice) -> Outgoing:
        """The poll's card in a group: the question and how to vote, and the turnout, never
        the counts. Closed, it has no buttons, and the results follow it."""
        poll = await notifier.session.get(Poll, notice.subject_id)
        group = await notifier.session.get(GroupChat, notice.group_chat_id)
        assert poll is not None and group is not None
        closed = polls.results_of(poll)
        if poll.status == "closed" and closed is not None:
            return Outgoing(
                "\n\n".join(
                    [
                        t.gettext("Poll closed: {question}").format(question=poll.question),
                        turnout_text(t, poll, closed.turnout, closed.eligible),
                        t.gettext("The results are in the next message."),
                    ]
                )
            )
        voted, eligible = await notices.turnout(notifier.session, poll)
        parts = [t.gettext("Poll: {question}").format(question=poll.question)]
        if poll.max_choices > 1:
            parts.append("\n".join(f"{n}. {o}" for n, o in enumerate(poll.options, 1)))
        parts += [
            _facts(t, poll, timezone),
            turnout_text(t, poll, voted, eligible),
            t.gettext(
                "Press a button to vote: nobody here sees what you chose, and your receipt "
                "comes in your private chat with me. Nobody sees any results before the close."
            ),
        ]
        choices = (
            [(option, str(n)) for n, option in enumerate(poll.options)]
            if poll.max_choices == 1
            else [(t.gettext("Choose privately"), CHOOSE)]
        )
        # The same buttons on every edit of the card, valid until a while after the close.
        ticket = await tickets.shared(
            notifier.session,
            kind=notices.GROUP_TICKET,
            subject_id=poll.id,
            choices=[value for _, value in choices],
            chat=(group.channel, group.chat_id),
            now=notifier.now,
            lifetime=poll.deadline - notifier.now + GROUP_BUTTONS_AFTER_CLOSE,
        )
        options = tuple(
            Option(label, payload)
            for (label, _), payload in zip(
                choices,
                payloads(TICKET_PREFIX, ticket.token, len(choices), keep=True),
                strict=True,
            )
        )
        return Outgoing(
            "\n\n".join(parts),
            options=options,
            # For whoever has never written to the bot: the receipt can't reach them before.
            private_start=start_parameter(PollFlow.command),
            private_label=t.gettext("Open private chat"),
        )

    return {
        notices.OPENED: NoticeKind(opened),
        notices.REMINDER: NoticeKind(reminder),
        notices.RESULTS: NoticeKind(results, group=results),
        notices.GROUP_CARD: NoticeKind(None, group=group_card),
    }


def turnout_text(t: Translator, poll: Poll, voted: int, eligible: int) -> str:
    """All a group sees of a poll before its close: "23 of 96 households have voted"."""
    if poll.per_household:
        text = t.ngettext(
            "{voted} of {eligible} household has voted.",
            "{voted} of {eligible} households have voted.",
            eligible,
        )
    else:
        text = t.ngettext(
            "{voted} of {eligible} resident has voted.",
            "{voted} of {eligible} residents have voted.",
            eligible,
        )
    return text.format(voted=voted, eligible=eligible)


def results_text(t: Translator, poll: Poll) -> str:
    results = polls.results_of(poll)
    assert results is not None
    lines = [t.gettext("Results of the poll “{question}”:").format(question=poll.question)]
    for n, (option, count) in enumerate(zip(poll.options, results.counts, strict=True), 1):
        lines.append(f"{n}. {option}: {count}")
    share = round(100 * results.turnout / results.eligible) if results.eligible else 0
    lines.append(
        t.gettext("Turnout: {turnout} of {eligible} ({share} %).").format(
            turnout=results.turnout, eligible=results.eligible, share=share
        )
    )
    if results.quorum_met is not None:
        lines.append(
            (
                t.gettext("Quorum of {quorum} %: met.")
                if results.quorum_met
                else t.gettext("Quorum of {quorum} %: not met.")
            ).format(quorum=poll.quorum_percent)
        )
    lines.append(
        t.gettext(
            "Ballot log: {size} entries, root {root}. Send /verify and your receipt to check "
            "that your ballot is in it."
        ).format(size=results.size, root=results.root)
    )
    return "\n".join(lines)


class PollFlow(DraftSteps, Flow):
    """`/poll`: the open polls this person may vote in, a vote or a changed one; and for
    building heads and staff, a new poll (handlers/poll_draft.py)."""

    name = "poll"
    command = "poll"
    description = N_("Vote in your building's polls, or change your vote")
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {
        "which": Step(),
        "pick": Step(),
        **DraftSteps.draft_steps,
    }

    def __init__(self, key: VoterKey, timezone: str, vote_points: int) -> None:
        self.key = key
        # Pending points for a unit's first ballot ([points.rules] vote_cast).
        self.vote_points = vote_points
        self.timezone = timezone
        # Staff record and end proxy votes from here (registered as a flow of its own).
        self.proxy_grants = ProxyGrantFlow(timezone)

    async def begin(self, ctx: Context, args: str) -> None:
        open_polls = [
            p
            for p in (
                await ctx.session.scalars(
                    select(Poll)
                    .where(Poll.status == "open", Poll.deadline > ctx.now, Poll.purpose == "poll")
                    .order_by(Poll.id)
                )
            ).all()
            if (
                await ctx.session.execute(
                    polls.eligible_people(p).where(Person.id == ctx.person.id)
                )
            ).first()
            is not None
        ]
        options = [(p.question[:60], str(p.id)) for p in open_polls]
        options += await self._proxy_options(ctx)
        options += await self._closed_options(ctx)
        if await self.may_create(ctx):
            options.append((ctx._("Create a poll"), NEW))
        if (await ctx.roles()).is_staff:
            options.append((ctx._("Proxy votes"), PROXIES))
        if not options:
            ctx.say(ctx._("There are no open polls for you right now."))
            return
        ctx.ask(self.name, "which", ctx._("Which poll?"), options=options)

    async def _proxy_options(self, ctx: Context) -> list[tuple[str, str]]:
        """Polls this person may vote in for someone else, who asked them to (a proxy)."""
        options = []
        open_polls = await ctx.session.scalars(
            select(Poll)
            .where(Poll.status == "open", Poll.deadline > ctx.now, Poll.purpose == "poll")
            .order_by(Poll.id)
        )
        for poll in open_polls.all():
            for resident_id in await proxies.residents_for(
                ctx.session, ctx.person.id, poll, self.timezone
            ):
                resident = await ctx.session.get(Person, resident_id)
                if resident is not None:
                    label = ctx._("For {name}: {question}").format(
                        name=resident.display_name, question=poll.question[:40]
                    )
                    options.append((label, f"{poll.id}:{resident_id}"))
        return options

    async def _closed_options(self, ctx: Context) -> list[tuple[str, str]]:
        """Recently closed polls whose participants this person may see (their own, and
        named ones for staff)."""
        closed = await ctx.session.scalars(
            select(Poll)
            .where(
                Poll.status == "closed",
                Poll.closed_at > ctx.now - SHOW_CLOSED_FOR,
                Poll.purpose == "poll",
            )
            .order_by(Poll.id)
        )
        roles = await ctx.roles()
        return [
            (ctx._("Who voted: {question}").format(question=p.question[:40]), f"{WHO}{p.id}")
            for p in closed.all()
            if participation.may_see(p, ctx.person.id, roles)
        ]

    async def _show_participants(self, ctx: Context, poll_id: int) -> None:
        ctx.finish()
        poll = await ctx.session.get(Poll, poll_id)
        if poll is None or not participation.may_see(poll, ctx.person.id, await ctx.roles()):
            ctx.say(ctx._("Only the organiser (and staff, in a named poll) can see this."))
            return
        taking_part = await participation.participants(ctx.session, poll, self.key())
        lines = [
            ctx._("Who took part in “{question}” ({count}):").format(
                question=poll.question, count=len(taking_part)
            )
        ]
        for someone in taking_part:
            line = someone.who
            if someone.picks is not None:
                line += ": " + ", ".join(poll.options[n] for n in someone.picks)
            if someone.proxy:
                line += " " + ctx._("(by proxy)")
            lines.append(line)
        if poll.anonymous:
            lines.append(ctx._("An anonymous poll: what each chose is known to nobody."))
        ctx.say("\n".join(lines))

    async def step_which(self, ctx: Context) -> None:
        if ctx.choice == NEW:
            self._ask_question(ctx)
            return
        if ctx.choice == PROXIES:
            ctx.abandon()  # this question is answered: the proxy flow does not come back to it
            await self.proxy_grants.begin(ctx, "")
            return
        if ctx.choice is not None and ctx.choice.startswith(WHO):
            await self._show_participants(ctx, int(ctx.choice.removeprefix(WHO) or 0))
            return
        poll_id, _, resident = (ctx.choice or "0").partition(":")
        poll = await ctx.session.get(Poll, int(poll_id))
        if poll is None:
            ctx.finish()
            ctx.say(ctx._(REFUSALS[Refusal.UNKNOWN]))
            return
        self.ask_ballot(ctx, poll, [], for_resident=int(resident) if resident else None)

    def ask_ballot(
        self, ctx: Context, poll: Poll, picked: list[int], *, for_resident: int | None = None
    ) -> None:
        if poll.max_choices == 1:
            options = [(o, str(n)) for n, o in enumerate(poll.options)]
            text = poll.question
        else:
            options = [
                (("☑ " if n in picked else "☐ ") + o, str(n)) for n, o in enumerate(poll.options)
            ]
            options.append((ctx._("Confirm my choice"), CONFIRM))
            text = "\n".join(
                [
                    poll.question,
                    ctx._("Choose up to {max} options, then confirm.").format(max=poll.max_choices),
                ]
            )
        data = {"poll": poll.id, "picked": picked, "for": for_resident}
        ctx.ask(self.name, "pick", text, options=options, data=data)

    async def step_pick(self, ctx: Context) -> None:
        poll = await ctx.session.get(Poll, int(ctx.data.get("poll", 0)))  # type: ignore[call-overload]
        if poll is None:
            ctx.finish()
            ctx.say(ctx._(REFUSALS[Refusal.UNKNOWN]))
            return
        picked = [int(n) for n in ctx.data.get("picked", [])]  # type: ignore[union-attr]
        for_resident = ctx.data.get("for")
        if poll.max_choices > 1 and ctx.choice != CONFIRM:
            n = int(ctx.choice or 0)
            if n not in picked and len(picked) >= poll.max_choices:
                # One more than the poll takes: say so, and keep what is ticked (refused only
                # at the confirmation, the whole choice would be lost).
                ctx.say(ctx._(REFUSALS[Refusal.TOO_MANY]).format(max=poll.max_choices))
            else:
                picked = sorted(set(picked) ^ {n})
            self.ask_ballot(ctx, poll, picked, for_resident=for_resident)  # type: ignore[arg-type]
            return
        if poll.max_choices > 1 and not picked:
            # Nothing ticked is no ballot: ask again rather than refuse it as a bad choice.
            ctx.say(ctx._("Tick at least one option, then confirm."))
            self.ask_ballot(ctx, poll, picked, for_resident=for_resident)  # type: ignore[arg-type]
            return
        chosen = picked if poll.max_choices > 1 else [int(ctx.choice or 0)]
        ctx.finish()
        if isinstance(for_resident, int):
            await vote_for(
                ctx, poll, for_resident, chosen, self.key, self.timezone, points=self.vote_points
            )
        else:
            await vote(ctx, poll.id, chosen, self.key, points=self.vote_points)


async def vote(
    ctx: Context, poll_id: int, chosen: list[int], key: VoterKey, *, points: int = 0
) -> None:
    """`points`: pending points for the unit's first ballot in the poll."""
    result = await ballots.cast(
        ctx.session, poll_id, ctx.person.id, chosen, ctx.now, key(), points=points
    )
    if isinstance(result, Refusal):
        poll = await ctx.session.get(Poll, poll_id)
        ctx.say(ctx._(REFUSALS[result]).format(max=poll.max_choices if poll else 1))
        return
    ctx.say(receipt_text(ctx, result))
    if _new_ballot(result):
        await show_turnout(ctx, poll_id)


async def vote_for(
    ctx: Context,
    poll: Poll,
    resident_id: int,
    chosen: list[int],
    key: VoterKey,
    timezone: str,
    *,
    points: int = 0,
) -> None:
    """A proxy's vote for `resident_id` (a poll's or the month's agenda ballot): the grant is
    checked again now (it may have been revoked), the ballot is the resident's unit's, marked
    as cast by proxy, and audited with the proxy as actor. `points`: as for `vote`, the
    resident's."""
    allowed = await proxies.residents_for(ctx.session, ctx.person.id, poll, timezone)
    resident = await ctx.session.get(Person, resident_id)
    if resident_id not in allowed or resident is None:
        ctx.say(ctx._("You may no longer vote for this resident. Nothing was changed."))
        return
    result = await ballots.cast(
        ctx.session, poll.id, resident_id, chosen, ctx.now, key(), proxy=True, points=points
    )
    if isinstance(result, Refusal):
        ctx.say(ctx._(REFUSALS[result]).format(max=poll.max_choices))
        return
    await audit.record(
        ctx.session,
        "ballot.proxy",
        actor_id=ctx.person.id,
        at=ctx.now,
        poll=poll.id,
        resident=resident_id,
    )
    if _new_ballot(result):
        await show_turnout(ctx, poll.id)
    ctx.say(
        ctx._("The vote for {name} is in, marked as cast by you.").format(
            name=resident.display_name
        )
    )


def receipt_text(ctx: Context, result: Receipt) -> str:
    said = (
        ctx._("Your vote is unchanged.")
        if result.unchanged
        else ctx._("Your vote is changed.")
        if result.changed
        else ctx._("Your vote is in.")
    )
    return "\n".join(
        [
            said,
            ctx._(
                "Receipt: {receipt}\nIt proves your ballot is counted, not how you voted. "
                "Send /verify and the receipt after the close to check it."
            ).format(receipt=result.digest),
        ]
    )


def _new_ballot(result: Receipt) -> bool:
    """One more unit has voted (a changed vote leaves the turnout as it was)."""
    return not result.changed and not result.unchanged


async def show_turnout(ctx: Context, poll_id: int) -> None:
    """The poll's group cards show the new turnout (one edit for a burst of ballots)."""
    poll = await ctx.session.get(Poll, poll_id)
    if poll is not None:
        await ctx.notifier.tell(await notices.turnout_changed(ctx.session, poll))


def vote_ticket(key: VoterKey, flow: PollFlow) -> Callable[..., object]:
    async def on_press(ctx: Context, poll_id: int, choice: str) -> None:
        if choice == CHOOSE:
            poll = await ctx.session.get(Poll, poll_id)
            if poll is None:
                ctx.say(ctx._(REFUSALS[Refusal.UNKNOWN]))
                return
            flow.ask_ballot(ctx, poll, [])
            return
        chosen = [int(choice)] if choice.isdigit() else []
        await vote(ctx, poll_id, chosen, key, points=flow.vote_points)

    return on_press


def group_vote_ticket(key: VoterKey, vote_points: int) -> TicketHandler:
    """A press on a poll's card in a group chat. The vote is the presser's alone, decided by
    the same use case as their private card's, and every answer is theirs alone: the receipt
    in their private chat, refusals in Telegram's answer to the press."""

    async def on_press(ctx: Context, poll_id: int, choice: str) -> None:
        # The card stays for the others, whatever the (client-sent) payload asks.
        ctx.clear_pressed = False
        poll = await ctx.session.get(Poll, poll_id)
        if poll is None:
            ctx.answer_press(ctx._(REFUSALS[Refusal.UNKNOWN]), alert=True)
            return
        if poll.status != "open" or poll.deadline <= ctx.now:
            ctx.answer_press(ctx._(REFUSALS[Refusal.CLOSED]), alert=True)
            return
        reachable = await people.has_private_chat(ctx.session, ctx.person.id, ctx.incoming.channel)
        if ctx.person.status != "active":
            _not_a_member(ctx, reachable)
            return
        if not reachable:
            # Telegram lets a bot write only to people who started a chat with it.
            ctx.answer_press(
                ctx._(
                    "To vote, please open a private chat with me first (“Open private chat” "
                    "under the poll), then press again. Your receipt comes there."
                ),
                alert=True,
            )
            return
        if choice == CHOOSE:
            await _choose_privately(ctx, poll)
            return
        chosen = [int(choice)] if choice.isdigit() else []
        result = await ballots.cast(
            ctx.session, poll.id, ctx.person.id, chosen, ctx.now, key(), points=vote_points
        )
        if isinstance(result, Refusal):
            ctx.answer_press(ctx._(REFUSALS[result]).format(max=poll.max_choices), alert=True)
            return
        ctx.notify(ctx.person, Outgoing(receipt_text(ctx, result)))
        ctx.answer_press(
            ctx._("Your vote is unchanged. Your receipt is in your private chat with me.")
            if result.unchanged
            else ctx._("Your vote is changed. Your receipt is in your private chat with me.")
            if result.changed
            else ctx._("Your vote is in. Your receipt is in your private chat with me.")
        )
        if _new_ballot(result):
            await show_turnout(ctx, poll.id)

    return on_press


def _not_a_member(ctx: Context, reachable: bool) -> None:
    """Someone who is not (yet) a registered resident pressed a group's poll card."""
    if ctx.person.status == "pending":
        ctx.answer_press(
            ctx._("Your registration is waiting for approval. You can vote once it is approved."),
            alert=True,
        )
        return
    if not reachable:
        ctx.answer_press(
            ctx._(
                "Only registered residents can vote. To join, open a private chat with me "
                "(“Open private chat” under the poll) and send /start with your building's "
                "invite code."
            ),
            alert=True,
        )
        return
    ctx.notify(
        ctx.person,
        Outgoing(
            ctx._(
                "Only registered residents can vote in the community's polls. To join, send "
                "/start here with the invite code from your building head, or scan the "
                "invite's QR code."
            )
        ),
    )
    ctx.answer_press(
        ctx._("Only registered residents can vote. I have written to you privately how to join."),
        alert=True,
    )


async def _choose_privately(ctx: Context, poll: Poll) -> None:
    """A ballot of several choices is not ticked in public: the presser gets their own card,
    privately, and chooses there."""
    found = await ctx.session.execute(polls.eligible_people(poll).where(Person.id == ctx.person.id))
    if found.first() is None:
        ctx.answer_press(ctx._(REFUSALS[Refusal.NOT_ELIGIBLE]), alert=True)
        return
    options = await ctx.ticket_options(
        ctx.person, notices.POLL_TICKET, poll.id, [(ctx._("Choose"), CHOOSE)]
    )
    ctx.notify(
        ctx.person,
        Outgoing(
            "\n".join(
                [
                    ctx._("Your ballot for “{question}”.").format(question=poll.question),
                    ctx._("Choose up to {max} options, then confirm.").format(max=poll.max_choices),
                    ctx._("Nobody in the group sees what you choose."),
                ]
            ),
            options=options,
        ),
    )
    ctx.answer_press(ctx._("Your ballot is in your private chat with me: choose there."))


class VerifyFlow(Flow):
    """`/verify RECEIPT`: is this ballot in its poll's published log?"""

    name = "verify"
    command = "verify"
    description = N_("Check that your ballot is counted, with its receipt")

    async def begin(self, ctx: Context, args: str) -> None:
        receipt = args.strip()
        if not receipt:
            ctx.say(ctx._("Send /verify followed by the receipt you got when you voted."))
            return
        found = await ballots.verify(ctx.session, receipt)
        if found is None:
            ctx.say(
                ctx._(
                    "This receipt is not in any poll's log. Please check that it was copied "
                    "whole (64 characters)."
                )
            )
            return
        ctx.say(
            ctx._(
                "Your ballot is in the log of poll {poll}: entry {index} of {size}, under the "
                "root {root}. Inclusion proof: {proof}"
            ).format(
                poll=found.poll_id,
                index=found.index,
                size=found.size,
                root=found.root,
                proof=orjson.dumps(found.proof).decode(),
            )
        )
