"""SQLAlchemy tables, one module per aggregate. Importing this package registers them all."""

from models.agenda import AgendaCycle, AgendaItem, AgendaSupport, AgendaUpdate
from models.audit import AuditEntry
from models.base import Base
from models.broadcast import Broadcast, BroadcastAck, BroadcastDelivery, SendPace
from models.chat import CardMessage, ChatMenu
from models.community import Building, Community, Grid, Household
from models.conversation import Conversation, ProcessedUpdate
from models.group import GroupChat
from models.invite import Invite
from models.link import LinkCode
from models.outbox import OutboxMessage
from models.people import Identity, Person, Role, RoleAssignment
from models.platform import PlatformToken
from models.points import (
    LeaderboardMember,
    PendingAward,
    PointsAccount,
    PointsEntry,
    PointsStatement,
    PointsTransfer,
    Redemption,
    Reward,
    TimebankCoverage,
    TimebankElder,
    TimebankRequest,
)
from models.poll import Ballot, BallotEvent, Poll, ProxyGrant
from models.report import Report, ReportEvent, ReportFollower, ReportMedia
from models.ticket import ActionTicket

__all__ = [
    "ActionTicket",
    "AgendaCycle",
    "AgendaItem",
    "AgendaSupport",
    "AgendaUpdate",
    "AuditEntry",
    "Ballot",
    "BallotEvent",
    "Base",
    "Broadcast",
    "BroadcastAck",
    "BroadcastDelivery",
    "Building",
    "CardMessage",
    "ChatMenu",
    "Community",
    "Conversation",
    "Grid",
    "GroupChat",
    "Household",
    "Identity",
    "Invite",
    "LeaderboardMember",
    "LinkCode",
    "OutboxMessage",
    "PendingAward",
    "Person",
    "PlatformToken",
    "PointsAccount",
    "PointsEntry",
    "PointsStatement",
    "PointsTransfer",
    "Poll",
    "ProcessedUpdate",
    "ProxyGrant",
    "Redemption",
    "Report",
    "ReportEvent",
    "ReportFollower",
    "ReportMedia",
    "Reward",
    "Role",
    "RoleAssignment",
    "SendPace",
    "TimebankCoverage",
    "TimebankElder",
    "TimebankRequest",
]
