"""Every flow the bot offers, assembled in one place so each channel and /help see the same."""

from __future__ import annotations

from handlers.agenda.flow import AgendaFlow
from handlers.agenda.notices import agenda_notices
from handlers.agenda.results import ResultsCard
from handlers.approvals import PendingFlow, decide_registration
from handlers.broadcasts.flow import BroadcastFlow
from handlers.broadcasts.notices import broadcast_notices, on_ack
from handlers.engine import FlowRegistry
from handlers.groups import GROUP_TICKET, GroupFlow, choose_scope
from handlers.help import HelpFlow
from handlers.language import LanguageFlow
from handlers.linking import LinkFlow
from handlers.points import AwardFlow, PointsFlow, points_notices
from handlers.proxy_grants import proxy_notices
from handlers.registration_notices import REGISTRATION_NOTICES
from handlers.reports.lists import MyReportsFlow, QueueFlow
from handlers.reports.new_report import ReportFlow
from handlers.reports.notices import report_notices
from handlers.reports.rating import RatingFlow
from handlers.reports.rules import ReportRules
from handlers.reports.work import WorkFlow
from handlers.rewards import PickupFlow, RewardRules, RewardsFlow, rewards_notices
from handlers.start import REGISTRATION_TICKET, StartFlow
from handlers.timebank import TimeBankFlow, timebank_notices
from handlers.voting import (
    PollFlow,
    VerifyFlow,
    VoterKey,
    group_vote_ticket,
    poll_notices,
    vote_ticket,
)
from services.agenda.notices import MODERATION_TICKET, VOTE_TICKET
from services.agenda.rules import AgendaRules
from services.broadcasts.acks import ACK_TICKET
from services.points.timebank import Policy as TimeBankPolicy
from services.reports.handing import REPORT_TICKET
from services.reports.verdict import RATING_TICKET
from services.voting.notices import GROUP_TICKET as POLL_GROUP_TICKET
from services.voting.notices import POLL_TICKET


def build_registry(
    reports: ReportRules,
    voter_key: VoterKey,
    agenda: AgendaRules,
    *,
    vote_points: int,
    rule_amounts: dict[str, int],
    rewards: RewardRules,
    timebank: TimeBankPolicy,
    broadcast_hours: float = 4.0,
) -> FlowRegistry:
    """`vote_points`: the points a unit's first ballot in a poll earns; `rule_amounts`: each
    rule of `[points.rules]` with its points, for `/award`."""
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
    poll = PollFlow(voter_key, reports.timezone, vote_points)
    registry.add(poll)
    # Staff record proxy votes from /poll; the flow's steps are its own.
    registry.add(poll.proxy_grants)
    registry.notices.update(proxy_notices())
    registry.add(VerifyFlow())
    registry.add(PointsFlow(reports.timezone))
    registry.add(AwardFlow(rule_amounts))
    registry.notices.update(points_notices())
    registry.add(RewardsFlow(rewards))
    registry.add(PickupFlow(reports.timezone))
    registry.notices.update(rewards_notices())
    time_bank = TimeBankFlow(timebank)
    registry.add(time_bank)
    # Staff mark the residents the pool covers from the /timebank menu; the steps are its own.
    registry.add(time_bank.elders)
    registry.notices.update(timebank_notices())
    registry.add(BroadcastFlow(reports, broadcast_hours))
    registry.notices.update(broadcast_notices())
    registry.on_ticket(ACK_TICKET, on_ack)
    # [Got it] under an announcement in a group: each press is the presser's.
    registry.on_shared_ticket(ACK_TICKET, on_ack)
    registry.on_ticket(POLL_TICKET, vote_ticket(voter_key, poll))
    # The poll's card in its group chats: anyone there may press; each press is theirs alone.
    registry.on_shared_ticket(POLL_GROUP_TICKET, group_vote_ticket(voter_key, vote_points))
    registry.notices.update(poll_notices(reports.timezone))
    card = ResultsCard(reports.storage)
    deliberation = AgendaFlow(agenda, voter_key, reports, card)
    registry.add(deliberation)
    registry.on_ticket(MODERATION_TICKET, deliberation.on_moderation)
    registry.on_ticket(VOTE_TICKET, deliberation.on_vote_card)
    registry.notices.update(agenda_notices(agenda, card))
    return registry
