"""Likely duplicates: open reports about the same place, by category or by a similar photo."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import imagehash
from sqlalchemy import and_, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Report, ReportMedia
from services.reports.lifecycle import OPEN_STATES
from services.reports.store import media_of


async def similar_open(
    session: AsyncSession,
    *,
    category: str,
    building_id: int | None,
    place: str | None,
    since: datetime,
    phashes: Sequence[str] = (),
    max_distance: int = 10,
    limit: int = 5,
    exclude_id: int | None = None,
) -> list[Report]:
    """Open reports that are probably about the same problem (the FixMyStreet lesson).

    Same building (or shared place) in the window, and either the same category or a photo whose
    perceptual hash is within `max_distance`: a photo match comes first, it is the stronger hint.
    """
    if building_id is not None:
        where = Report.building_id == building_id
    elif place is not None:
        where = Report.place == place
    else:
        where = false()  # neither a building nor a shared place: nothing to compare with
    if not phashes:
        # Without a photo only the category can match: the database picks the few newest (the
        # category-building-state index), instead of Python sifting through every open report.
        where = and_(where, Report.category == category)
    candidates = list(
        (
            await session.scalars(
                select(Report)
                .where(
                    where,
                    Report.state.in_([s.value for s in OPEN_STATES]),
                    Report.created_at >= since,
                    Report.id != (exclude_id or 0),
                )
                .order_by(Report.created_at.desc())
                .limit(50 if phashes else limit)
            )
        ).all()
    )
    if not candidates:
        return []
    wanted = [imagehash.hex_to_hash(h) for h in phashes]
    photo_match: set[int] = set()
    if wanted:
        rows = (
            await session.execute(
                select(ReportMedia.report_id, ReportMedia.phash).where(
                    and_(
                        ReportMedia.report_id.in_([r.id for r in candidates]),
                        ReportMedia.phash.is_not(None),
                    )
                )
            )
        ).all()
        for report_id, phash in rows:
            known = imagehash.hex_to_hash(phash)
            if any(known - h <= max_distance for h in wanted):
                photo_match.add(report_id)
    matches = [r for r in candidates if r.id in photo_match or r.category == category]
    matches.sort(key=lambda r: (r.id not in photo_match, -r.created_at.timestamp()))
    return matches[:limit]


async def originals(
    session: AsyncSession,
    report: Report,
    *,
    window: timedelta,
    max_distance: int,
    limit: int = 50,
) -> list[Report]:
    """What `report` may be marked a duplicate of: the open reports the duplicate search offers
    for it (same building or shared place, within `window` of it, same category or a similar
    photo), best first, never itself. The same list gives the buttons and checks a typed number,
    so nobody can point a report at one in another grid, a closed one or an unrelated one."""
    phashes = [m.phash for m in await media_of(session, report.id, "before") if m.phash]
    return await similar_open(
        session,
        category=report.category,
        building_id=report.building_id,
        place=report.place,
        since=report.created_at - window,
        phashes=phashes,
        max_distance=max_distance,
        limit=limit,
        exclude_id=report.id,
    )
