"""`/report` (or a photo sent with no conversation open): photos → category → place → detail →
description → likely duplicates → confirm → submitted and dispatched."""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow, Step
from handlers.i18n import N_
from handlers.messages import Kind
from handlers.reports import cards, draft
from handlers.reports.review import ReviewSteps
from handlers.reports.rules import REPORTER_ROLES, CategoryRule, ReportRules
from services import community

NAME = "report"


class ReportFlow(ReviewSteps, Flow):
    name = NAME
    command = "report"
    description = N_("Report a problem with a photo")
    roles = REPORTER_ROLES
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {
        # Text typed at the photo step is the description: many people say what is wrong first.
        "photos": Step(ask="_ask_photos", text=True, media=True),
        "category": Step(ask="_ask_category"),
        "place": Step(ask="_ask_place"),  # a button, or a location pin
        "detail": Step(ask="_ask_detail", text=True),
        "description": Step(ask="_ask_description", text=True),
        "duplicates": Step(ask="_ask_duplicates"),
        "confirm": Step(ask="_ask_confirm"),
        "edit": Step(),
    }

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
        building = await community.building_of_household(ctx.session, ctx.person.household_id)
        return (building.id, building.grid_id, building.name) if building else None

    def _ask_photos(self, ctx: Context, text: str | None = None) -> None:
        photos = len(draft.items(ctx, "photos"))
        if text is None:
            text = ctx._(
                "Please send up to {max} photos of the problem. You can also send a voice note."
            ).format(max=self.rules.max_photos)
            if ctx.can.files_keep_location:
                text += " " + ctx._("Tip: sending a photo as a file keeps where it was taken.")
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
            photos = draft.items(ctx, "photos")
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
                ctx._(
                    "Photo {n} of {max} received. Send another, or choose “Done, continue”."
                ).format(n=len(photos), max=self.rules.max_photos),
            )
            return
        if incoming.kind is Kind.VOICE and media is not None:
            voices = draft.items(ctx, "voices")
            if len(voices) >= self.rules.max_voice_notes:
                ctx.say(
                    ctx._(
                        "I can keep {max} voice notes with a report; this one was not added."
                    ).format(max=self.rules.max_voice_notes)
                )
            elif media.key not in voices:
                voices.append(media.key)
            spoken = " ".join(incoming.text.split())
            if spoken and not ctx.data.get("description"):
                # What the platform heard (WeChat's speech recognition) is the description,
                # so someone who would rather speak than type need not type at all.
                self._take_description(ctx, spoken)
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
        self._ask_photos(ctx, ctx._("Please send a photo, or choose below."))

    # ------------------------------------------------------------------ category

    def _offered(self, ctx: Context) -> list[CategoryRule]:
        has_photo = bool(draft.items(ctx, "photos"))
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
            ctx._("Where is the problem? Choose below, or send a location.")
            if ctx.can.locations
            else ctx._("Where is the problem? Please choose below."),
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
                "Type it, or choose Skip."
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
        options = [(ctx._("Skip"), "skip")] if draft.items(ctx, "photos") else []
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
        if ctx.choice == "skip" and draft.items(ctx, "photos"):
            ctx.data["description"] = ""
        elif ctx.incoming.kind is Kind.TEXT and ctx.choice is None and ctx.incoming.text.strip():
            if not self._take_description(ctx, ctx.incoming.text):
                return
        else:
            self._ask_description(ctx)
            return
        await self._next(ctx, "duplicates")

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
        asked = getattr(self, self.steps[step].ask or "_ask_confirm")(ctx)
        if asked is not None:
            await asked
