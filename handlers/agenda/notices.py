"""How the cycle's notices read (services/agenda/notices.py says who gets which)."""

from __future__ import annotations

from datetime import timedelta

from handlers.agenda import texts
from handlers.agenda.results import ResultsCard
from handlers.agenda.staff import MODERATION_LABELS
from handlers.flow import Notifier
from handlers.i18n import N_, Translator
from handlers.messages import Outgoing
from handlers.notices import NoticeKind
from handlers.start_links import start_parameter
from models import AgendaCycle, AgendaItem, AgendaUpdate, Person, Poll
from services.agenda import notices
from services.agenda.rules import AgendaRules

VOTE_LABELS = {"vote": N_("Vote")}
# A card waits for its whole phase (up to a month); its use case checks the phase when pressed.
PHASE_LONG = timedelta(days=35)


def agenda_notices(rules: AgendaRules, card: ResultsCard) -> dict[str, NoticeKind]:
    async def item_of(notifier: Notifier, notice_id: int | None) -> AgendaItem:
        item = await notifier.session.get(AgendaItem, notice_id)
        assert item is not None
        return item

    async def month_of(notifier: Notifier, item: AgendaItem) -> str:
        cycle = await notifier.session.get(AgendaCycle, item.cycle_id)
        return cycle.month if cycle is not None else ""

    async def proposed(notifier: Notifier, t: Translator, notice: notices.Notice) -> Outgoing:
        item = await item_of(notifier, notice.subject_id)
        proposer = await notifier.session.get(Person, item.proposer_id)
        text = "\n".join(
            [
                t.gettext("A new proposal for the council's agenda ({month}):").format(
                    month=await month_of(notifier, item)
                ),
                texts.item_line(t, item),
                item.description,
                t.gettext("Proposed by {name}.").format(
                    name=proposer.display_name if proposer else "?"
                ),
            ]
        )
        return Outgoing(text, image_key=item.photo_key)

    async def moderated(notifier: Notifier, t: Translator, notice: notices.Notice) -> Outgoing:
        item = await item_of(notifier, notice.subject_id)
        who = await notifier.session.get(Person, int(notice.params.get("by", 0)))
        name = who.display_name if who is not None else "?"
        outcome = {
            "accepted": t.gettext("Accepted by {name}."),
            "merged": t.gettext("Merged into #{into} by {name}."),
            "rejected": t.gettext("Not accepted by {name}: {reason}"),
        }[item.status].format(name=name, into=item.merged_into_id, reason=item.reason or "")
        return Outgoing("\n".join([texts.item_line(t, item), outcome]))

    async def outcome(notifier: Notifier, t: Translator, notice: notices.Notice) -> Outgoing:
        item = await item_of(notifier, notice.subject_id)
        if item.status == "accepted":
            text = t.gettext(
                "Your proposal “{title}” is on the council's agenda list for {month}. "
                "Residents can now support it; send /agenda to see it."
            )
        elif item.status == "merged":
            text = t.gettext(
                "Your proposal “{title}” was merged into #{into} “{into_title}”, which raises "
                "the same matter; you now support it."
            )
        else:
            text = t.gettext(
                "Your proposal “{title}” was not accepted for the agenda. Reason: {reason}"
            )
        into = (
            await notifier.session.get(AgendaItem, item.merged_into_id)
            if item.merged_into_id is not None
            else None
        )
        return Outgoing(
            text.format(
                into_title=into.title if into is not None else "",
                title=item.title,
                month=await month_of(notifier, item),
                into=item.merged_into_id,
                reason=item.reason or "",
            )
        )

    async def voting(notifier: Notifier, t: Translator, notice: notices.Notice) -> Outgoing:
        poll = await notifier.session.get(Poll, notice.subject_id)
        assert poll is not None
        cycle = await _cycle_of_poll(notifier, poll)
        text = t.gettext(
            "Voting on the council's agenda for {month} is open until {when}: {n} items, "
            "choose up to {k}. Nobody sees any results before the close."
        ).format(
            month=cycle.month if cycle else "",
            when=rules.local(poll.deadline),
            n=len(poll.options),
            k=poll.max_choices,
        )
        return Outgoing(text)

    async def voting_in_group(
        notifier: Notifier, t: Translator, notice: notices.GroupNotice
    ) -> Outgoing:
        """In a group nobody votes: the ballot is private, one per household or resident."""
        said = await voting(notifier, t, notice)  # type: ignore[arg-type]
        return Outgoing(
            "\n".join([said.text, t.gettext("Vote privately: send /agenda to the bot.")]),
            private_start=start_parameter("agenda"),
            private_label=t.gettext("Open private chat"),
        )

    async def reminder(notifier: Notifier, t: Translator, notice: notices.Notice) -> Outgoing:
        poll = await notifier.session.get(Poll, notice.subject_id)
        assert poll is not None
        text = (
            t.gettext(
                "Reminder: voting on the council's agenda closes at {when}, and your "
                "household's vote is not in yet."
            )
            if poll.per_household
            else t.gettext(
                "Reminder: voting on the council's agenda closes at {when}, and your vote is "
                "not in yet."
            )
        )
        return Outgoing(text.format(when=rules.local(poll.deadline)))

    async def results(notifier: Notifier, t: Translator, notice: notices.Notice) -> Outgoing:
        cycle = await notifier.session.get(AgendaCycle, notice.subject_id)
        assert cycle is not None
        return await card.render(notifier.session, t, cycle)

    async def decision(notifier: Notifier, t: Translator, notice: notices.Notice) -> Outgoing:
        item = await item_of(notifier, notice.subject_id)
        return Outgoing(
            t.gettext("The council decided on #{id} “{title}”: {decision}").format(
                id=item.id, title=item.title, decision=item.decision or ""
            )
        )

    async def progress(notifier: Notifier, t: Translator, notice: notices.Notice) -> Outgoing:
        news = await notifier.session.get(AgendaUpdate, notice.subject_id)
        assert news is not None
        item = await item_of(notifier, news.item_id)
        lines = [
            t.gettext("News on #{id} “{title}”: {state}").format(
                id=item.id, title=item.title, state=t.gettext(texts.PROGRESS_LABELS[news.status])
            )
        ]
        if news.note:
            lines.append(news.note)
        return Outgoing("\n".join(lines), image_key=news.photo_key)

    return {
        notices.PROPOSED: NoticeKind(
            proposed,
            ticket=notices.MODERATION_TICKET,
            labels=MODERATION_LABELS,
            lifetime=PHASE_LONG,
        ),
        notices.MODERATED: NoticeKind(moderated),
        notices.OUTCOME: NoticeKind(outcome),
        notices.VOTING: NoticeKind(
            voting,
            ticket=notices.VOTE_TICKET,
            labels=VOTE_LABELS,
            group=voting_in_group,
            lifetime=PHASE_LONG,
        ),
        notices.REMINDER: NoticeKind(
            reminder, ticket=notices.VOTE_TICKET, labels=VOTE_LABELS, lifetime=PHASE_LONG
        ),
        notices.RESULTS: NoticeKind(results, group=results),  # type: ignore[arg-type]
        notices.DECISION: NoticeKind(decision),
        notices.PROGRESS: NoticeKind(progress),
    }


async def _cycle_of_poll(notifier: Notifier, poll: Poll) -> AgendaCycle | None:
    from sqlalchemy import select

    return await notifier.session.scalar(select(AgendaCycle).where(AgendaCycle.poll_id == poll.id))
