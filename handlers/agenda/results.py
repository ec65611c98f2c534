"""The month's results card: the ranked items with their votes, the turnout and the ballot log's
root, as text and as a chart in the reader's language (drawn once per month and language, off
the event loop, and kept in media storage by its content key)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.agenda import texts
from handlers.i18n import Translator
from handlers.messages import CardRef, Outgoing
from models import AgendaCycle, AgendaItem, Poll
from services.agenda import publication
from services.media.storage import MediaStorage
from services.voting import polls

log = logging.getLogger("linli.agenda")


@dataclass
class ResultsCard:
    storage: MediaStorage | None
    # (cycle id, locale) → the chart's PNG; None: it could not be drawn (no CJK font). Stored
    # again on each use: the media collector may have removed a file nothing referenced.
    _charts: dict[tuple[int, str], bytes | None] = field(default_factory=dict)

    async def render(self, session: AsyncSession, t: Translator, cycle: AgendaCycle) -> Outgoing:
        ranked = await publication.ballot(session, cycle.id)
        poll = await session.get(Poll, cycle.poll_id) if cycle.poll_id is not None else None
        results = polls.results_of(poll) if poll is not None else None
        text = "\n".join(texts.results_lines(t, cycle, ranked, results))
        image = None
        if results is not None and ranked:
            image = await self._chart(t, cycle, ranked, results)
        return Outgoing(text, image_key=image, card=CardRef("agenda-results", str(cycle.id)))

    async def _chart(
        self, t: Translator, cycle: AgendaCycle, ranked: list[AgendaItem], results: polls.Results
    ) -> str | None:
        if self.storage is None:
            return None
        cached = (cycle.id, t.locale)
        if cached not in self._charts:
            self._charts[cached] = await self._draw(t, cycle, ranked, results)
        png = self._charts[cached]
        return None if png is None else self.storage.put(hashlib.sha256(png).hexdigest(), png)

    async def _draw(
        self, t: Translator, cycle: AgendaCycle, ranked: list[AgendaItem], results: polls.Results
    ) -> bytes | None:
        title = t.gettext("The council's agenda, {month}: votes per item").format(month=cycle.month)
        bars = [(f"#{item.id} {item.title}", item.votes or 0) for item in ranked]
        footer = [texts.turnout_line(t, cycle, results)]
        highlight = sum(1 for item in ranked if item.selected)
        try:
            from handlers.charts import render_results_chart

            return await asyncio.to_thread(
                render_results_chart,
                title,
                bars,
                footer,
                highlight=highlight,
                highlight_note=t.gettext("Goes to the residents' council"),
                log_root=results.root,
                log_root_label=t.gettext("Ballot log root"),
            )
        except Exception:
            # The text carries every figure; a chart that can't be drawn right is not drawn.
            log.exception("agenda chart cycle=%s locale=%s not drawn", cycle.id, t.locale)
            return None
