"""How the notices of photo reports read (services/reports/notices.py decides who hears them).

Every text is built in the reader's language. The reporter's name and room appear only on cards
whose notice says so (staff; DESIGN.md "Privacy"): workers and other residents see the problem,
not the person.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handlers.flow import Notifier
from handlers.i18n import N_, Translator
from handlers.messages import Attachment, Outgoing
from handlers.notices import NoticeKind
from handlers.reports import cards
from handlers.reports.rules import ReportRules
from models import Person, Report
from services import people
from services.notices import Notice
from services.reports import notices as kinds
from services.reports import store
from services.reports.handing import REPORT_TICKET
from services.reports.verdict import RATING_TICKET

# Why a card is (re)sent, above the report's details.
CARD_HEADLINES = {
    "new": N_("New report for you to handle:"),
    "escalated": N_("Escalated to you — please take this report in hand:"),
    "passed": N_("A colleague passed this report to you: {note}"),
    "handed_on": N_("This report was passed to you, as its previous handler no longer handles it:"),
    "accepted": N_("Accepted. When you have news, choose below:"),
    "news_sent": N_("Sent to the resident. Next:"),
    "queue": N_("Report {number}:"),
}
# A card whose holder no longer works on the report: only why, no buttons.
CARD_GONE = {
    "moved_on": N_("{number} is now with {name}."),
    "escalated_away": N_("{number} is overdue and was escalated to {who}."),
    "lost_role": N_(
        "You no longer handle reports like {number}, so it was passed on to a colleague."
    ),
    "rejected": N_("{number} was rejected."),
    "duplicate": N_("{number} is marked as a duplicate of {original}."),
    "resolved": N_("{number} is resolved. The resident will be asked to rate the fix."),
}
# What a look-only card (from /queue) adds, by access's reason.
LOOK_ONLY = {
    "not_your_role": N_("(Assigned to someone else; you can look but not act.)"),
    "other": N_("(You can look at this report but not act on it.)"),
}
ACTION_LABELS = {
    "accept": N_("Accept"),
    "reassign": N_("Reassign"),
    "reject": N_("Reject as not ours"),
    "duplicate": N_("Mark duplicate"),
    "progress": N_("Progress update"),
    "resolve": N_("Resolved"),
}
# What residents read: the reporter and followers.
RESIDENT_TEXTS = {
    kinds.ACCEPTED: N_("Your report {number} was accepted and is being handled."),
    kinds.NEWS: N_("News on your report {number}: {note}"),
    kinds.REJECTED: N_(
        "Your report {number} was closed without a fix: {note}\n"
        "If you think this is wrong, please contact the community office."
    ),
    kinds.DUPLICATE: N_(
        "Your report {number} is about the same problem as {original}, which is already "
        "being handled. You now follow {original} and will hear about it here."
    ),
    kinds.PASSED: N_("Your report {number} was passed to {who}: {note}"),
    kinds.NOW_WITH: N_("Your report {number} is now with {who}."),
    kinds.OVERDUE: N_("Your report {number} is overdue, so it was escalated to {who}."),
    kinds.RESOLVED: N_("Report {number}, which you follow, is resolved: {note}"),
    kinds.AUTO_CLOSED: N_(
        "Your report {number} was closed, as nobody rated the fix within {days} days. "
        "Send /report if the problem comes back."
    ),
    kinds.COMMENT: N_("The resident commented on {number}: {comment}"),
}


def verdict(t: Translator, stars: int | None) -> str:
    return t.gettext("Rated {stars} of 5").format(stars=stars) if stars else t.gettext("Not fixed")


def report_notices(rules: ReportRules) -> dict[str, NoticeKind]:
    async def report_of(n: Notifier, notice: Notice) -> Report:
        assert notice.subject_id is not None
        report = await n.session.get(Report, notice.subject_id)
        assert report is not None, notice
        return report

    async def fields(n: Notifier, t: Translator, report: Report, params: Any) -> dict[str, Any]:
        assignee = await n.session.get(Person, report.assignee_id) if report.assignee_id else None
        return {
            "number": report.number,
            "who": cards.rung_name(t, report),
            "name": (assignee.display_name or f"#{assignee.id}") if assignee else "-",
            **params,
        }

    async def card(n: Notifier, t: Translator, notice: Notice) -> Outgoing:
        report = await report_of(n, notice)
        params = dict(notice.params)
        headline = params.pop("headline")
        photos = await store.media_of(n.session, report.id, "before")
        image = photos[0].media_key if photos else None
        values = await fields(n, t, report, params)
        if headline in CARD_GONE:
            return Outgoing(t.gettext(CARD_GONE[headline]).format(**values), image_key=image)
        lines = [t.gettext(CARD_HEADLINES[headline]).format(**values)]
        look = params.get("look_only")
        if look:
            lines.append(t.gettext(LOOK_ONLY.get(look, LOOK_ONLY["other"])))
        place = await cards.where(n, t, report)
        lines += ["", *cards.details(t, rules, report, place)]
        if params.get("show_reporter"):
            reporter = await people.with_household(n.session, report.reporter_id)
            if reporter is not None:
                home = people.building_of(reporter)
                room = reporter.household.room if reporter.household else ""
                lines.append(
                    t.gettext("Reported by: {name}{home}").format(
                        name=reporter.display_name or "-",
                        home=f" ({home.name} {room})" if home else "",
                    )
                )
        voices = await store.media_of(n.session, report.id, "voice")
        return Outgoing(
            "\n".join(lines),
            image_key=image,
            attachments=tuple(
                [Attachment("photo", p.media_key) for p in photos[1:]]
                + [Attachment("voice", v.media_key) for v in voices]
            ),
        )

    def text(msgid: str) -> Callable[[Notifier, Translator, Notice], Any]:
        async def render(n: Notifier, t: Translator, notice: Notice) -> Outgoing:
            report = await report_of(n, notice)
            return Outgoing(t.gettext(msgid).format(**await fields(n, t, report, notice.params)))

        return render

    async def rate(n: Notifier, t: Translator, notice: Notice) -> Outgoing:
        report = await report_of(n, notice)
        return Outgoing(
            t.gettext(
                "Your report {number} is resolved: {note}\nHow well was it fixed? "
                "Rate 1 to 5 stars, or tell us it is not fixed."
            ).format(number=report.number, note=notice.params["note"]),
            image_key=notice.params.get("image_key"),
        )

    async def verdict_text(n: Notifier, t: Translator, notice: Notice) -> Outgoing:
        report = await report_of(n, notice)
        return Outgoing(
            t.gettext("The resident's verdict on {number}: {verdict}").format(
                number=report.number, verdict=verdict(t, notice.params.get("stars"))
            )
        )

    async def reminder(n: Notifier, t: Translator, notice: Notice) -> Outgoing:
        report = await report_of(n, notice)
        assert report.due_at is not None
        return Outgoing(
            t.gettext(
                "Reminder: {number} ({category}) is due by {due}. Use /queue to update it."
            ).format(
                number=report.number,
                category=rules.category_name(report.category, t),
                due=rules.local(report.due_at),
            )
        )

    rendered: dict[str, NoticeKind] = {
        kinds.CARD: NoticeKind(card, ticket=REPORT_TICKET, labels=ACTION_LABELS),
        kinds.RATE: NoticeKind(
            rate,
            ticket=RATING_TICKET,
            labels={**{str(n): "★" * n for n in range(1, 6)}, "notfixed": N_("Not fixed")},
        ),
        kinds.VERDICT: NoticeKind(verdict_text),
        kinds.REMINDER: NoticeKind(reminder),
    }
    rendered.update({kind: NoticeKind(text(msgid)) for kind, msgid in RESIDENT_TEXTS.items()})
    return rendered
