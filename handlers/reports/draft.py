"""A report being written: what the /report flow keeps in its conversation data, read back."""

from __future__ import annotations

from typing import Any

from handlers.flow import Context
from handlers.reports import cards
from handlers.reports.rules import ReportRules
from services.reports import store


def items(ctx: Context, key: str) -> list[Any]:
    """A list kept in the draft (photos, voice notes), created empty on first use."""
    value = ctx.data.get(key)
    if not isinstance(value, list):
        value = []
        ctx.data[key] = value
    return value


def location(ctx: Context) -> tuple[float, float] | None:
    value = ctx.data.get("location")
    return (float(value[0]), float(value[1])) if isinstance(value, list) else None


def place_label(ctx: Context) -> str:
    data = ctx.data
    return cards.place_label(
        ctx.t,
        str(data["place"]) if data.get("place") else None,
        str(data["home_name"]) if data.get("building_id") else None,
        location(ctx),
    )


def new_report(ctx: Context, rules: ReportRules) -> store.NewReport:
    """The draft as the submission use case takes it."""
    data = ctx.data
    rule = rules.category(str(data["category"]))
    assert rule is not None
    building_id, grid_id, place = data.get("building_id"), data.get("home_grid"), data.get("place")
    return store.NewReport(
        reporter_id=ctx.person.id,
        category=rule.category,
        description=str(data.get("description") or ""),
        building_id=building_id if isinstance(building_id, int) else None,
        grid_id=grid_id if isinstance(grid_id, int) else None,
        place=place if isinstance(place, str) else None,
        place_detail=str(data.get("detail") or ""),
        location=location(ctx),
        photos=[
            store.Photo(str(p["key"]), p.get("thumb"), p.get("phash")) for p in items(ctx, "photos")
        ],
        voice_keys=[str(k) for k in items(ctx, "voices")],
    )
