"""The dialogue seams every channel relies on (DESIGN.md step 3), as dialogue transcripts on
SQLite and PostgreSQL:

- options are numbered once, from 1; the last menu of a chat is kept in the database, so a digit
  or an option's text answers it after a restart, or on another worker;
- typing an option's text chooses that option and nothing else, and text that names no option
  is asked again where the step does not take text;
- wording that fits one platform only follows the channel's capabilities;
- a card's question never drops a conversation the person had open;
- shared cards: anyone in the group may press, each press decided for that person, the answer
  private.
"""

from __future__ import annotations

from sqlalchemy import func, select

from bot.app import Linli, assemble
from handlers.flow import Context, Notifier
from handlers.messages import Capabilities, CardRef, ChatRef, Kind, Option, Outgoing
from models import ReportFollower, Role
from services import people
from services.reports import store, submission
from tests.conftest import FakeClock, settings_for
from tests.dialog import Dialog, texts
from tests.images import photo
from tests.report_cast import hire, join, send_photo
from tests.test_reports import report_without_photo, the_report

NUMBERED = Capabilities(
    buttons=False, edits=False, press_answers=False, files_keep_location=False, locations=False
)


def numbered_menu(reply_texts: list[Outgoing]) -> list[str]:
    return [o.label for m in reply_texts for o in m.options]


async def test_a_digit_answers_the_last_menu_after_a_restart(
    linli: Linli, db_url: str, clock: FakeClock
) -> None:
    first = Dialog(linli, capabilities=NUMBERED)
    await join(first, "amy")
    shown = await first.say("amy", "/language")
    # The one numbering: the payloads carry the numbers a numbered list shows.
    assert [o.payload.rsplit(".", 1)[1] for m in shown.messages for o in m.options] == ["1", "2"]
    await linli.close()
    # Another process (a restart, or a second worker) on the same database.
    again = assemble(settings_for(db_url), clock=clock)
    try:
        second = Dialog(again, capabilities=NUMBERED)
        answer = await second.say("amy", "1", key="after-restart-1")
        assert "以后我会用中文和您交流" in texts(answer)
        # The option's text answers it too, whatever its case and punctuation.
        await second.say("amy", "/language", key="after-restart-2")
        english = await second.say("amy", "english", key="after-restart-3")
        assert "I will speak English" in texts(english)
    finally:
        await again.close()


async def test_a_digit_means_nothing_where_options_are_buttons(linli: Linli) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await dialog.say("amy", "/language")
    # Telegram shows buttons without numbers: "1" names no option, and the question comes again.
    again = await dialog.say("amy", "1")
    assert "Which language would you like?" in texts(again)
    assert "I will speak" not in texts(again)


async def test_typing_an_option_chooses_it_and_nothing_else(linli: Linli) -> None:
    dialog = Dialog(linli, capabilities=NUMBERED)
    await join(dialog, "amy")
    await dialog.say("amy", "/language")
    await dialog.say("amy", "1")  # 中文
    await send_photo(dialog, "amy", photo())
    # "完成" is what the prompt tells people to press; it ends the photo step and is not taken
    # for the description, which is still asked for later.
    after = texts(await dialog.say("amy", "完成"))
    assert "是什么问题" in after or "哪一类" in after, after
    await dialog.say("amy", "2")  # a category, by its number
    await dialog.say("amy", "1")  # my building
    description = texts(await dialog.say("amy", "跳过"))  # "Skip" typed
    assert "描述" in description, description
    summary = texts(await dialog.say("amy", "垃圾堆了三天"))
    assert "垃圾堆了三天" in summary and "完成" not in summary.split("描述")[-1]


async def test_text_that_names_no_option_is_asked_again(linli: Linli) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await dialog.say("amy", "/report")
    await dialog.press("amy", "Continue without a photo")
    again = await dialog.say("amy", "something smells")
    assert "What kind of problem is it?" in texts(again)
    assert numbered_menu(again.messages)[:1] == ["Something else"]


async def test_wording_follows_the_channel(linli: Linli) -> None:
    buttons, numbered = Dialog(linli, "telegram"), Dialog(linli, "console", NUMBERED)
    for dialog in (buttons, numbered):
        await join(dialog, "amy")
    asked = {d.channel.name: texts(await d.say("amy", "/report")) for d in (buttons, numbered)}
    assert "as a file" in asked["telegram"] and "as a file" not in asked["console"]
    places = {}
    for dialog in (buttons, numbered):
        await dialog.press("amy", "Continue without a photo")
        places[dialog.channel.name] = texts(await dialog.press("amy", "Something else"))
    assert "send a location" in places["telegram"]
    assert (
        "send a location" not in places["console"] and "Where is the problem?" in places["console"]
    )


async def test_a_card_does_not_drop_an_open_draft(linli: Linli) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    first = await report_without_photo(dialog, "amy", "The bench is broken")
    second = await report_without_photo(dialog, "amy", "A lamp is out", category="Something else")
    # Gus starts a report of his own and is at its description when he works on his cards.
    await dialog.say("gus", "/report")
    await dialog.press("gus", "Continue without a photo")
    await dialog.press("gus", "Something else")
    await dialog.press("gus", "east gate")
    asked = texts(await dialog.press("gus", "Skip"))
    assert "Describe the problem" in asked
    cards = [m for m in dialog.channel.outbox["gus"] if m.options]
    # A move answered at once: his draft's question comes back after it.
    accepted = await dialog.press("gus", "Accept", source=[cards[0]])
    assert "Now, back to where you were" in texts(accepted)
    assert texts(accepted).rstrip().endswith(asked.rstrip().splitlines()[-1])
    # A move with its own question: answered first, then the draft comes back.
    await dialog.press("gus", "Reject as not ours", source=[cards[1]])
    rejected = texts(await dialog.say("gus", "Not a problem for us"))
    assert "was rejected" in rejected and "Describe the problem" in rejected
    # The draft is whole: his description goes on to the summary.
    summary = texts(await dialog.say("gus", "The gate squeaks"))
    assert "Please check your report" in summary and "The gate squeaks" in summary
    assert (await the_report(linli, first)).state == "in_progress"
    assert (await the_report(linli, second)).state == "rejected"


# ---------------------------------------------------------------------- a shared card

CHEER = "cheer"


async def cheer(ctx: Context, report_id: int, choice: str) -> None:
    """The example shared card's use: "+1, I see it too" under a report posted in a group.
    The use case decides for the presser (residents only, once each); the answer is theirs."""
    roles = await ctx.roles()
    if not roles.any_of(frozenset({Role.RESIDENT})):
        ctx.answer_press(ctx._("Please join the community first (send /start)."))
        return
    followed = await submission.follow(ctx.session, ctx.person.id, report_id, ctx.now)
    assert isinstance(followed, submission.Followed)
    if not followed.new:
        ctx.answer_press(f"You already follow {followed.report.number}.")
        return
    ctx.answer_press(f"You now follow {followed.report.number} (+1).")
    count = await ctx.session.scalar(
        select(func.count()).where(ReportFollower.report_id == report_id)
    )
    ctx.replies.append(
        Outgoing(
            f"{followed.report.number}: {count} neighbours see it too.",
            options=await shared_buttons(ctx.notifier, report_id, ctx.incoming.chat),
            card=CardRef("cheer", str(report_id)),
        )
    )


async def shared_buttons(notifier: Notifier, report_id: int, chat: ChatRef) -> tuple[Option, ...]:
    """The card's one button, for anyone in `chat`; a press leaves it in place."""
    return await notifier.ticket_options(
        None, CHEER, report_id, [("+1", "up")], chat=(chat.channel, chat.chat_id), keep=True
    )


async def test_a_shared_card_in_a_group(linli: Linli, clock: FakeClock) -> None:
    linli.registry.on_shared_ticket(CHEER, cheer)
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await join(dialog, "bob", room="401")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    number = await report_without_photo(dialog, "amy", "The bench is broken")
    report = await the_report(linli, number)
    async with linli.transaction() as session:
        notifier = Notifier(session, linli.catalogs, "en", clock())
        options = await shared_buttons(notifier, report.id, ChatRef("console", "group-1", False))
    card = Outgoing(f"{number}: a broken bench", options=options)

    # Bob presses in the group: he follows it, and only he is told so; the buttons stay.
    pressed = await dialog.say(
        "bob", "", kind=Kind.CHOICE, payload=options[0].payload, chat_id="group-1", private=False
    )
    assert pressed.press_answer == f"You now follow {number} (+1)."
    assert pressed.clear_pressed is False
    assert [m.card for m in pressed.messages] == [CardRef("cheer", str(report.id))]
    assert "1 neighbours" in texts(pressed)
    # Again: once per person.
    twice = await dialog.say(
        "bob", "", kind=Kind.CHOICE, payload=options[0].payload, chat_id="group-1", private=False
    )
    assert twice.press_answer == f"You already follow {number}." and twice.messages == []
    # Someone who is not a resident: a polite refusal, to them alone.
    stranger = await dialog.say(
        "zed", "", kind=Kind.CHOICE, payload=options[0].payload, chat_id="group-1", private=False
    )
    assert stranger.press_answer is not None and "join the community" in stranger.press_answer
    # The same button from another chat is not this card's: the presser alone is told so,
    # and the group's message keeps its buttons (a forged press takes nothing away).
    elsewhere = await dialog.say(
        "bob", "", kind=Kind.CHOICE, payload=options[0].payload, chat_id="group-2", private=False
    )
    assert "expired" in (elsewhere.press_answer or "") and elsewhere.messages == []
    assert elsewhere.clear_pressed is False
    async with linli.sessions() as session:
        followers = {p.id for p in await store.followers(session, report.id)}
        bob = await people.by_identity(session, "console", "bob")
    assert bob is not None and bob.id in followers and len(followers) == 1
    assert card.options == options


async def test_a_shared_card_answers_privately_where_a_press_cannot_be_answered(
    linli: Linli, clock: FakeClock
) -> None:
    linli.registry.on_shared_ticket(CHEER, cheer)
    dialog = Dialog(linli, capabilities=NUMBERED)
    await join(dialog, "amy")
    await join(dialog, "bob", room="401")
    number = await report_without_photo(dialog, "amy", "The bench is broken")
    report = await the_report(linli, number)
    async with linli.transaction() as session:
        options = await shared_buttons(
            Notifier(session, linli.catalogs, "en", clock()),
            report.id,
            ChatRef("console", "group-1", False),
        )
    pressed = await dialog.say(
        "bob", "", kind=Kind.CHOICE, payload=options[0].payload, chat_id="group-1", private=False
    )
    assert pressed.press_answer is None
    assert dialog.notices("bob")[-1] == f"You now follow {number} (+1)."


async def test_a_second_card_waits_for_the_first_ones_question(linli: Linli) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    first = await report_without_photo(dialog, "amy", "The bench is broken")
    second = await report_without_photo(dialog, "amy", "A lamp is out")
    cards = [m for m in dialog.channel.outbox["gus"] if m.options]
    await dialog.press("gus", "Reject as not ours", source=[cards[0]])
    # Before answering why, he rejects the other report too: that question comes first...
    await dialog.press("gus", "Reject as not ours", source=[cards[1]])
    answered = texts(await dialog.say("gus", "A lamp is the property's job"))
    assert f"{second} was rejected" in answered
    # ...then the first one's question comes back, word for word.
    assert "Now, back to where you were" in answered and f"Why is {first} not ours" in answered
    assert f"{first} was rejected" in texts(await dialog.say("gus", "Not a problem"))
    assert (await the_report(linli, first)).reject_reason == "Not a problem"
    assert (await the_report(linli, second)).reject_reason == "A lamp is the property's job"
