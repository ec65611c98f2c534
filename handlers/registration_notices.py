"""How the notices of registrations read (services/registration/usecases.py decides who hears
them): an approver's card, and the applicant's answer. Each is built in its reader's language;
the applicant's name and room go only to those the use case chose (their building's heads, or
staff: DESIGN.md "Privacy")."""

from __future__ import annotations

from handlers.flow import Notifier
from handlers.i18n import N_, Translator
from handlers.messages import Outgoing
from handlers.notices import NoticeKind, Render
from services.notices import Notice
from services.registration import usecases

REQUEST_TEXT = N_("{name} asks to join {building}, room {room}. Do they live there?")
APPROVED_TEXT = N_(
    "Good news: your registration for {building}, room {room} was approved. "
    "Send /help to see what you can do."
)
REJECTED_TEXT = N_(
    "Your building head could not confirm your registration for {building}, "
    "room {room}. If this is a mistake, please contact them or the community office."
)
DECISION_LABELS = {"approve": N_("Approve"), "reject": N_("Reject")}


def _says(text: str) -> Render:
    """A notice that reads as one text, with the notice's params filled in: the use case put
    there everything it needs (the applicant's name, building and room)."""

    async def render(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        return Outgoing(t.gettext(text).format(**notice.params))

    return render


REGISTRATION_NOTICES: dict[str, NoticeKind] = {
    # An approver's card; its buttons are pressed as registration tickets (handlers/approvals.py).
    usecases.REQUEST: NoticeKind(
        _says(REQUEST_TEXT), ticket=usecases.REGISTRATION_TICKET, labels=DECISION_LABELS
    ),
    usecases.APPROVED: NoticeKind(_says(APPROVED_TEXT)),
    usecases.REJECTED: NoticeKind(_says(REJECTED_TEXT)),
}
