"""`/report` (or a photo sent with no conversation open): photos → category → place → detail →
description → likely duplicates → confirm → submitted and dispatched."""

from __future__ import annotations

from typing import Any, ClassVar

from handlers.flow import Context, Flow
from handlers.i18n import N_
from handlers.messages import Kind
from handlers.reports import cards
from handlers.reports.dispatch import hand_over
from handlers.reports.rules import REPORTER_ROLES, CategoryRule, ReportRules
from models import Building, Household
from services import audit
from services.reports import store
from services.reports.lifecycle import Action, Capacity

NAME = "report"


class ReportFlow(Flow):
    name = NAME
    command = "report"
    description = N_("Report a problem with a photo")
    roles = REPORTER_ROLES
    private_only: ClassVar[bool] = True
    media_steps: ClassVar[frozenset[str]] = frozenset({"photos"})

    def __init__(self, rules: ReportRules) -> None:
        self.rules = rules

    # ------------------------------------------------------------------ photos

    async def begin(self, ctx: Context, args: str) -> None:
        home = await self._home(ctx)
        data: dict[str, object] = {
            "photos": [],
            "voices": [],
            "gps": None,
            "home_building": home[0] if home else None,
            "home_grid": home[1] if home else None,
            "home_name": home[2] if home else None,
        }
        ctx.enter(NAME, "photos", data)
        if ctx.incoming.kind in (Kind.PHOTO, Kind.VOICE):
            await self.step_photos(ctx)
        else:
            self._ask_photos(ctx)

    async def _home(self, ctx: Context) -> tuple[int, int, str] | None:
        if ctx.person.household_id is None:
            return None
        household = await ctx.session.get(Household, ctx.person.household_id)
        building = await ctx.session.get(Building, household.building_id) if household else None
        return (building.id, building.grid_id, building.name) if building else None

    def _ask_photos(self, ctx: Context, text: str | None = None) -> None:
        photos = len(self._list(ctx, "photos"))
        if text is None:
            text = ctx._(
                "Please send up to {max} photos of the problem. Tip: sending a photo as a file "
                "keeps where it was taken. You can also send a voice note."
            ).format(max=self.rules.max_photos)
        options = (
            [(ctx._("Done, continue"), "done")]
            if photos
            else [(ctx._("Continue without a photo"), "nophoto")]
        )
        ctx.ask(NAME, "photos", text, options=[*options, (ctx._("Cancel"), "cancel")])

    async def step_photos(self, ctx: Context) -> None:
        incoming = ctx.incoming
        if ctx.choice == "cancel":
            ctx.finish()
            ctx.say(ctx._("Cancelled. Nothing was saved."))
            return
        if ctx.choice in ("done", "nophoto"):
            await self._next(ctx, "category")
            return
        if incoming.kind in (Kind.PHOTO, Kind.VOICE) and incoming.media_problem:
            ctx.say(cards.media_problem(ctx.t, incoming.media_problem, self.rules))
            self._ask_photos(ctx, ctx._("You can send another photo, or continue."))
            return
        media = incoming.media
        if incoming.kind is Kind.PHOTO and media is not None:
            photos = self._list(ctx, "photos")
            if len(photos) >= self.rules.max_photos:
                ctx.say(
                    ctx._("That is more than {max} photos; I kept the first {max}.").format(
                        max=self.rules.max_photos
                    )
                )
                await self._next(ctx, "category")
                return
            if all(p["key"] != media.key for p in photos):
                photos.append({"key": media.key, "thumb": media.thumb_key, "phash": media.phash})
            if media.gps is not None and ctx.data.get("gps") is None:
                ctx.data["gps"] = list(media.gps)
            if len(photos) >= self.rules.max_photos:
                await self._next(ctx, "category")
                return
            self._ask_photos(
                ctx,
                ctx._("Photo {n} of {max} received. Send another, or press Done.").format(
                    n=len(photos), max=self.rules.max_photos
                ),
            )
            return
        if incoming.kind is Kind.VOICE and media is not None:
            voices = self._list(ctx, "voices")
            if len(voices) >= self.rules.max_voice_notes:
                ctx.say(
                    ctx._(
                        "I can keep {max} voice notes with a report; this one was not added."
                    ).format(max=self.rules.max_voice_notes)
                )
            elif media.key not in voices:
                voices.append(media.key)
            self._ask_photos(ctx, ctx._("Voice note kept. Send a photo, or continue."))
            return
        if incoming.kind is Kind.OTHER and incoming.other_kind in (
            "video",
            "video_note",
            "animation",
        ):
            self._ask_photos(
                ctx, ctx._("Videos cannot be attached to a report. Please send a photo instead.")
            )
            return
        if incoming.kind is Kind.TEXT and incoming.text.strip():
            # Many people type what is wrong straight away; keep it as the description.
            if not self._take_description(ctx, incoming.text):
                return
            await self._next(ctx, "category")
            return
        self._ask_photos(ctx, ctx._("Please send a photo, or press a button below."))

    # ------------------------------------------------------------------ category

    def _offered(self, ctx: Context) -> list[CategoryRule]:
        has_photo = bool(self._list(ctx, "photos"))
        return [c for c in self.rules.categories if has_photo or not c.category.photo_required]

    def _ask_category(self, ctx: Context) -> None:
        offered = self._offered(ctx)
        text = ctx._("What kind of problem is it?")
        if len(offered) < len(self.rules.categories):
            text += "\n" + ctx._("(Some kinds need a photo, so they are not listed.)")
        ctx.ask(NAME, "category", text, options=[(c.name(ctx.t), c.code) for c in offered])

    async def step_category(self, ctx: Context) -> None:
        codes = {c.code for c in self._offered(ctx)}
        if ctx.choice not in codes:
            self._ask_category(ctx)
            return
        ctx.data["category"] = ctx.choice
        await self._next(ctx, "place")

    # ------------------------------------------------------------------ place

    def _ask_place(self, ctx: Context) -> None:
        options: list[tuple[str, str]] = []
        home = ctx.data.get("home_name")
        if home:
            options.append((ctx._("My building: {building}").format(building=home), "home"))
        options += [(place, f"place:{i}") for i, place in enumerate(self.rules.places)]
        if ctx.data.get("gps"):
            options.append((ctx._("Where the photo was taken"), "gps"))
        ctx.ask(
            NAME,
            "place",
            ctx._("Where is the problem? Choose below, or send a location (📎 → Location)."),
            options=options,
        )

    async def step_place(self, ctx: Context) -> None:
        data = ctx.data
        choice, incoming = ctx.choice, ctx.incoming
        if incoming.kind is Kind.LOCATION and incoming.location is not None:
            self._set_place(ctx, building=True, location=list(incoming.location))
        elif choice == "home":
            self._set_place(ctx, building=True)
        elif choice == "gps" and data.get("gps"):
            self._set_place(ctx, building=True, location=data["gps"])
        elif choice is not None and choice.startswith("place:"):
            index = int(choice.removeprefix("place:"))
            self._set_place(ctx, building=False, place=self.rules.places[index])
        else:
            self._ask_place(ctx)
            return
        await self._next(ctx, "detail")

    def _set_place(
        self,
        ctx: Context,
        *,
        building: bool,
        place: str | None = None,
        location: object = None,
    ) -> None:
        data = ctx.data
        data["building_id"] = data.get("home_building") if building else None
        data["place"] = place
        data["location"] = location

    def _ask_detail(self, ctx: Context) -> None:
        ctx.ask(
            NAME,
            "detail",
            ctx._(
                "Anything that helps find it, for example “stairwell, 3rd floor”? "
                "Type it, or press Skip."
            ),
            options=[(ctx._("Skip"), "skip")],
        )

    async def step_detail(self, ctx: Context) -> None:
        if ctx.choice == "skip":
            ctx.data["detail"] = ""
        elif ctx.incoming.kind is Kind.TEXT and ctx.choice is None and ctx.incoming.text.strip():
            detail = " ".join(ctx.incoming.text.split())
            if len(detail) > self.rules.detail_limit:
                ctx.say(
                    ctx._("Please keep the place detail under {limit} characters.").format(
                        limit=self.rules.detail_limit
                    )
                )
                return
            ctx.data["detail"] = detail
        else:
            self._ask_detail(ctx)
            return
        await self._next(ctx, "description")

    # ------------------------------------------------------------------ description

    def _ask_description(self, ctx: Context) -> None:
        options = [(ctx._("Skip"), "skip")] if self._list(ctx, "photos") else []
        ctx.ask(
            NAME,
            "description",
            ctx._("Describe the problem in a few words (up to {limit} characters).").format(
                limit=self.rules.description_limit
            ),
            options=options,
        )

    def _take_description(self, ctx: Context, text: str) -> bool:
        text = text.strip()
        if len(text) > self.rules.description_limit:
            ctx.say(
                ctx._(
                    "Your description has {count} characters; please keep it under {limit}. "
                    "Nothing else was lost — just send a shorter one."
                ).format(count=len(text), limit=self.rules.description_limit)
            )
            return False
        ctx.data["description"] = text
        return True

    async def step_description(self, ctx: Context) -> None:
        if ctx.choice == "skip" and self._list(ctx, "photos"):
            ctx.data["description"] = ""
        elif ctx.incoming.kind is Kind.TEXT and ctx.choice is None and ctx.incoming.text.strip():
            if not self._take_description(ctx, ctx.incoming.text):
                return
        else:
            self._ask_description(ctx)
            return
        await self._next(ctx, "duplicates")

    # ------------------------------------------------------------------ duplicates

    async def _ask_duplicates(self, ctx: Context) -> None:
        data = ctx.data
        similar = await store.similar_open(
            ctx.session,
            category=str(data["category"]),
            building_id=data.get("building_id"),  # type: ignore[arg-type]
            place=data.get("place"),  # type: ignore[arg-type]
            since=ctx.now - self.rules.duplicate_window,
            phashes=[str(p["phash"]) for p in self._list(ctx, "photos") if p.get("phash")],
            max_distance=self.rules.phash_distance,
            limit=3,
        )
        data["duplicates_checked"] = True
        if not similar:
            await self._next(ctx, "confirm")
            return
        lines = [ctx._("Someone may have reported this already:")]
        options: list[tuple[str, str]] = []
        for report in similar:
            place = await cards.where(ctx.notifier, ctx.t, report)
            lines.append(
                "• "
                + cards.summary_line(ctx.t, self.rules, report, place)
                + " · "
                + ctx._("reported {when}").format(when=self.rules.local(report.created_at))
            )
            options.append(
                (
                    ctx._("Same as {number}: follow it (+1)").format(number=report.number),
                    f"follow:{report.id}",
                )
            )
        options.append((ctx._("Mine is different"), "different"))
        ctx.ask(NAME, "duplicates", "\n".join(lines), options=options)

    async def step_duplicates(self, ctx: Context) -> None:
        choice = ctx.choice or ""
        if choice == "different":
            await self._next(ctx, "confirm")
            return
        if not choice.startswith("follow:"):
            await self._ask_duplicates(ctx)
            return
        report = await store.get(ctx.session, int(choice.removeprefix("follow:")))
        ctx.finish()
        if report is None:
            ctx.say(ctx._("This report no longer exists. Nothing was changed."))
            return
        await store.follow(ctx.session, report.id, ctx.person.id, ctx.now)
        await audit.record(
            ctx.session, "report.follow", actor_id=ctx.person.id, report=report.number
        )
        ctx.say(
            ctx._(
                "Thank you! You now follow {number} (+1). You will hear about every change, "
                "just like the person who reported it."
            ).format(number=report.number)
        )

    # ------------------------------------------------------------------ confirm

    def _ask_confirm(self, ctx: Context) -> None:
        data = ctx.data
        lines = [ctx._("Please check your report:")]
        lines.append(
            ctx._("Category: {category}").format(
                category=self.rules.category_name(str(data["category"]), ctx.t)
            )
        )
        lines.append(ctx._("Where: {place}").format(place=self._place_label(ctx)))
        if data.get("detail"):
            lines.append(ctx._("Detail: {detail}").format(detail=data["detail"]))
        if data.get("description"):
            lines.append(ctx._("Description: {text}").format(text=data["description"]))
        lines.append(
            ctx._("Photos: {photos} · voice notes: {voices}").format(
                photos=len(self._list(ctx, "photos")), voices=len(self._list(ctx, "voices"))
            )
        )
        ctx.ask(
            NAME,
            "confirm",
            "\n".join(lines),
            options=[
                (ctx._("Submit"), "submit"),
                (ctx._("Edit"), "edit"),
                (ctx._("Cancel"), "cancel"),
            ],
        )

    def _place_label(self, ctx: Context) -> str:
        data = ctx.data
        location = data.get("location")
        return cards.place_label(
            ctx.t,
            str(data["place"]) if data.get("place") else None,
            str(data["home_name"]) if data.get("building_id") else None,
            (float(location[0]), float(location[1])) if isinstance(location, list) else None,
        )

    async def step_confirm(self, ctx: Context) -> None:
        if ctx.choice == "submit":
            await self._submit(ctx)
        elif ctx.choice == "edit":
            ctx.ask(
                NAME,
                "edit",
                ctx._("What would you like to change?"),
                options=[
                    (ctx._("Photos"), "photos"),
                    (ctx._("Category"), "category"),
                    (ctx._("Place"), "place"),
                    (ctx._("Description"), "description"),
                ],
            )
        elif ctx.choice == "cancel":
            ctx.finish()
            ctx.say(ctx._("Cancelled. Nothing was saved."))
        else:
            self._ask_confirm(ctx)

    async def step_edit(self, ctx: Context) -> None:
        if ctx.choice not in ("photos", "category", "place", "description"):
            self._ask_confirm(ctx)
            return
        ctx.data["editing"] = True
        if ctx.choice in ("category", "place"):
            ctx.data["duplicates_checked"] = False
        if ctx.choice == "photos":
            ctx.data["photos"] = []
            ctx.data["gps"] = None
        await self._show(ctx, ctx.choice)

    # ------------------------------------------------------------------ moving on

    async def _next(self, ctx: Context, step: str) -> None:
        """The step after the one just answered; while editing, back to the summary as soon as
        nothing is missing (a new place also asks for its detail)."""
        data = ctx.data
        if data.get("editing") and step != "detail":
            step = self._first_missing(ctx)
        elif step == "description" and data.get("description"):
            step = "duplicates"
        elif step == "confirm" and not data.get("duplicates_checked"):
            step = "duplicates"
        await self._show(ctx, step)

    def _first_missing(self, ctx: Context) -> str:
        data = ctx.data
        rule = self.rules.category(str(data.get("category", "")))
        if rule is None or (rule.category.photo_required and not data.get("photos")):
            return "category"  # the new photos (or none) no longer fit the chosen kind
        if data.get("building_id") is None and not data.get("place") and not data.get("location"):
            return "place"
        if not data.get("duplicates_checked"):
            return "duplicates"
        return "confirm"

    async def _show(self, ctx: Context, step: str) -> None:
        if step == "photos":
            self._ask_photos(ctx)
        elif step == "category":
            self._ask_category(ctx)
        elif step == "place":
            self._ask_place(ctx)
        elif step == "detail":
            self._ask_detail(ctx)
        elif step == "description":
            self._ask_description(ctx)
        elif step == "duplicates":
            await self._ask_duplicates(ctx)
        else:
            self._ask_confirm(ctx)

    async def _submit(self, ctx: Context) -> None:
        data = ctx.data
        rule = self.rules.category(str(data["category"]))
        assert rule is not None
        location = data.get("location")
        building_id = data.get("building_id")
        new = store.NewReport(
            reporter_id=ctx.person.id,
            category=rule.category,
            description=str(data.get("description") or ""),
            building_id=building_id if isinstance(building_id, int) else None,
            grid_id=data.get("home_grid") if isinstance(data.get("home_grid"), int) else None,  # type: ignore[arg-type]
            place=data.get("place") if isinstance(data.get("place"), str) else None,  # type: ignore[arg-type]
            place_detail=str(data.get("detail") or ""),
            location=(float(location[0]), float(location[1]))
            if isinstance(location, list)
            else None,
            photos=[
                store.Photo(str(p["key"]), p.get("thumb"), p.get("phash"))
                for p in self._list(ctx, "photos")
            ],
            voice_keys=[str(k) for k in self._list(ctx, "voices")],
        )
        ctx.finish()
        report = await store.submit(ctx.session, new, ctx.now)
        choice = await hand_over(
            ctx.notifier,
            self.rules,
            report,
            action=Action.ASSIGN,
            capacity=Capacity.SYSTEM,
            level=0,
        )
        assert report.due_at is not None
        text = ctx._("Thank you! Your report {number} is in.").format(number=report.number)
        if choice is not None:
            text += " " + ctx._("It is now with {who}, to be fixed by {due}.").format(
                who=cards.rung_name(ctx.t, report), due=self.rules.local(report.due_at)
            )
        else:
            text += " " + ctx._("Community staff will pass it to the right person soon.")
        text += "\n" + ctx._(
            "You will hear here about every change. /myreports lists your reports."
        )
        ctx.say(text)

    @staticmethod
    def _list(ctx: Context, key: str) -> list[Any]:
        value = ctx.data.get(key)
        if not isinstance(value, list):
            value = []
            ctx.data[key] = value
        return value
