"""How the cycle reads: its phase, an item, the results; shared by the flow and the notices."""

from __future__ import annotations

from datetime import datetime

from handlers.flow import Context
from handlers.i18n import N_, Translator
from models import AgendaCycle, AgendaItem, AgendaUpdate
from services.agenda.proposals import Problem
from services.agenda.rules import PROPOSALS, VOTING, AgendaRules
from services.voting import polls

PROGRESS_LABELS = {
    "planned": N_("Planned"),
    "in_progress": N_("In progress"),
    "done": N_("Done"),
}
PROBLEMS = {
    Problem.NO_CYCLE: N_("Proposals are not open right now. Send /agenda to see when they open."),
    Problem.CLOSED: N_("This month's proposals are closed. You can propose again next month."),
    Problem.NOT_REGISTERED: N_(
        "Only registered residents can take part. Ask your building head for an invite."
    ),
    Problem.TITLE: N_("The title must have 1 to {limit} characters."),
    Problem.DESCRIPTION: N_("The description is too long: at most {limit} characters."),
    Problem.UNKNOWN: N_("This item no longer exists. Nothing was changed."),
    Problem.NOT_STAFF: N_("Only community staff can moderate proposals."),
    Problem.DONE: N_("This proposal was already moderated. Nothing was changed."),
    Problem.TOO_LATE: N_(
        "Voting has opened: this proposal waits for next month's proposals. Nothing was changed."
    ),
    Problem.BAD_TARGET: N_("Please choose one of the accepted items."),
    Problem.NO_REASON: N_("Please type the reason; the resident will read it."),
    Problem.NOT_OPEN: N_("This item can no longer be supported. Nothing was changed."),
}


def refuse(ctx: Context, rules: AgendaRules, problem: Problem) -> None:
    limit = rules.title_limit if problem is Problem.TITLE else rules.description_limit
    ctx.say(ctx._(PROBLEMS[problem]).format(limit=limit))


def item_line(t: Translator, item: AgendaItem, supporters: int | None = None) -> str:
    line = f"#{item.id} {item.title}"
    if supporters is not None:
        line += " · " + t.ngettext("{n} supporter", "{n} supporters", supporters).format(
            n=supporters
        )
    return line


def phase_text(t: Translator, rules: AgendaRules, cycle: AgendaCycle | None, now: datetime) -> str:
    if cycle is None:
        return t.gettext("The council's agenda: no month is open yet.")
    if cycle.phase == PROPOSALS and now >= cycle.proposals_close_at:
        return t.gettext(
            "The council's agenda for {month}: proposals are closed; voting opens {voting}."
        ).format(month=cycle.month, voting=rules.local(cycle.voting_at))
    if cycle.phase == PROPOSALS:
        return t.gettext(
            "The council's agenda for {month}: proposals are open until {close}; voting "
            "opens {voting}."
        ).format(
            month=cycle.month,
            close=rules.local(cycle.proposals_close_at),
            voting=rules.local(cycle.voting_at),
        )
    if cycle.phase == VOTING:
        return t.gettext(
            "The council's agenda for {month}: voting is open until {close}. Choose up to "
            "{k} items."
        ).format(month=cycle.month, close=rules.local(cycle.publish_at), k=cycle.votes_per_voter)
    return t.gettext("The council's agenda for {month} was published on {when}.").format(
        month=cycle.month, when=rules.local(cycle.published_at or cycle.publish_at)
    )


def results_lines(
    t: Translator, cycle: AgendaCycle, ranked: list[AgendaItem], results: polls.Results | None
) -> list[str]:
    lines = [
        t.gettext("Results of the council's agenda vote for {month}:").format(month=cycle.month)
    ]
    if results is None or not ranked:
        lines.append(t.gettext("No items were accepted for this month's vote."))
        return lines
    for item in ranked:
        votes = t.ngettext("{n} vote", "{n} votes", item.votes or 0).format(n=item.votes or 0)
        mark = " ✔ " + t.gettext("to the council") if item.selected else ""
        lines.append(f"{item.rank}. #{item.id} {item.title}: {votes}{mark}")
    lines.append(turnout_line(t, cycle, results))
    lines.append(
        t.gettext(
            "Ballot log: {size} entries, root {root}. Send /verify and your receipt to check "
            "that your ballot is in it."
        ).format(size=results.size, root=results.root)
    )
    return lines


def turnout_line(t: Translator, cycle: AgendaCycle, results: polls.Results) -> str:
    share = round(100 * results.turnout / results.eligible) if results.eligible else 0
    text = (
        t.gettext("Turnout: {turnout} of {eligible} households ({share} %).")
        if cycle.per_household
        else t.gettext("Turnout: {turnout} of {eligible} residents ({share} %).")
    )
    return text.format(turnout=results.turnout, eligible=results.eligible, share=share)


def followup_lines(
    t: Translator, item: AgendaItem, news: list[AgendaUpdate], rules: AgendaRules
) -> list[str]:
    lines = []
    if item.decision:
        lines.append(t.gettext("Decision: {decision}").format(decision=item.decision))
    for update in news:
        line = f"{rules.local(update.at)[:10]} {t.gettext(PROGRESS_LABELS[update.status])}"
        if update.note:
            line += f": {update.note}"
        lines.append(line)
    return lines


def ask_or_say(
    ctx: Context, step: str, question: str, options: list[tuple[str, str]], nothing: str
) -> None:
    """A list to choose from, or (when it is empty) why there is none, and the end."""
    if not options:
        ctx.finish()
        ctx.say(nothing)
        return
    ctx.ask("agenda", step, question, options=options)
