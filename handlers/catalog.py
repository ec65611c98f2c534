"""Every flow the bot offers, assembled in one place so each channel and /help see the same."""

from __future__ import annotations

from handlers.approvals import PendingFlow, decide_registration
from handlers.engine import FlowRegistry
from handlers.help import HelpFlow
from handlers.language import LanguageFlow
from handlers.start import REGISTRATION_TICKET, StartFlow


def build_registry() -> FlowRegistry:
    registry = FlowRegistry()
    registry.add(StartFlow())
    registry.add(HelpFlow(registry.flows))
    registry.add(LanguageFlow())
    registry.add(PendingFlow())
    registry.on_ticket(REGISTRATION_TICKET, decide_registration)
    return registry
