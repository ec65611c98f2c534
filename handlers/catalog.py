"""Every flow the bot offers, assembled in one place so each channel and /help see the same."""

from __future__ import annotations

from handlers.approvals import PendingFlow, decide_registration
from handlers.engine import FlowRegistry
from handlers.groups import GROUP_TICKET, GroupFlow, choose_scope
from handlers.help import HelpFlow
from handlers.language import LanguageFlow
from handlers.linking import LinkFlow
from handlers.registration_notices import REGISTRATION_NOTICES
from handlers.reports.lists import MyReportsFlow, QueueFlow
from handlers.reports.new_report import ReportFlow
from handlers.reports.notices import report_notices
from handlers.reports.rating import RatingFlow
from handlers.reports.rules import ReportRules
from handlers.reports.work import WorkFlow
from handlers.start import REGISTRATION_TICKET, StartFlow
from handlers.voting import PollFlow, VerifyFlow, VoterKey, poll_notices, vote_ticket
from services.reports.handing import REPORT_TICKET
from services.reports.verdict import RATING_TICKET
from services.voting.notices import POLL_TICKET


def build_registry(reports: ReportRules, voter_key: VoterKey) -> FlowRegistry:
    registry = FlowRegistry()
    registry.add(StartFlow())
    registry.add(HelpFlow(registry.flows))
    registry.add(LanguageFlow())
    registry.add(LinkFlow())
    registry.add(GroupFlow())
    registry.on_ticket(GROUP_TICKET, choose_scope)
    registry.add(PendingFlow())
    registry.on_ticket(REGISTRATION_TICKET, decide_registration)
    registry.notices.update(REGISTRATION_NOTICES)
    report = ReportFlow(reports)
    registry.add(report)
    # A photo sent privately with no conversation open starts a report with it.
    registry.photo_flow = report
    registry.add(MyReportsFlow(reports))
    registry.add(QueueFlow(reports))
    work, rating = WorkFlow(reports), RatingFlow(reports)
    registry.add(work)
    registry.add(rating)
    registry.on_ticket(REPORT_TICKET, work.on_card)
    registry.on_ticket(RATING_TICKET, rating.on_rating)
    registry.notices.update(report_notices(reports))
    poll = PollFlow(voter_key, reports.timezone)
    registry.add(poll)
    registry.add(VerifyFlow())
    registry.on_ticket(POLL_TICKET, vote_ticket(voter_key, poll))
    registry.notices.update(poll_notices(reports.timezone))
    return registry
