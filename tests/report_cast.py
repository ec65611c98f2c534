"""The people of a report test: residents who joined with an invite, and those who fix things.

Everyone first says /help, so they have a private chat the outbox can reach, as in real life.
"""

from __future__ import annotations

from bot.app import Linli
from handlers.messages import FileRef, Kind, Reply
from models import Role
from services import community, invites, people
from services.people import Grant
from tests.dialog import Dialog, texts


async def join(dialog: Dialog, who: str, building: str = "Building 2", room: str = "302") -> None:
    linli = dialog.linli
    async with linli.transaction() as session:
        found = await community.building_by_name(session, building)
        assert found is not None
        code = (await invites.create(session, found.id, now=linli.dialogue.clock())).code
    await dialog.say(who, f"/start {code}")
    await dialog.say(who, room)
    reply = await dialog.press(who, "Use")
    assert "You are registered" in texts(reply), texts(reply)


async def hire(
    dialog: Dialog,
    who: str,
    role: Role,
    *,
    grid: str | None = None,
    department: str | None = None,
    language_code: str = "en",
) -> int:
    await dialog.say(who, "/help", language_code=language_code)
    linli: Linli = dialog.linli
    async with linli.transaction() as session:
        person = await people.by_identity(session, dialog.channel.name, who)
        assert person is not None
        grid_id = None
        if grid is not None:
            found = await community.grid_by_name(session, grid)
            assert found is not None
            grid_id = found.id
        await people.grant(session, person.id, Grant(role, grid_id=grid_id, department=department))
        return person.id


async def send_photo(
    dialog: Dialog, who: str, data: bytes, *, ref: str | None = None, as_file: bool = False
) -> Reply:
    ref = ref or f"file-{len(dialog.channel.files)}"
    dialog.channel.files[ref] = data
    return await dialog.say(who, "", kind=Kind.PHOTO, photo=FileRef(ref, from_document=as_file))


async def send_voice(dialog: Dialog, who: str, data: bytes) -> Reply:
    ref = f"voice-{len(dialog.channel.files)}"
    dialog.channel.files[ref] = data
    return await dialog.say(who, "", kind=Kind.VOICE, voice=FileRef(ref, mime_type="audio/ogg"))


async def person_id(linli: Linli, name: str, channel: str = "console") -> int:
    """The id of whoever the bot knows as `name` on `channel` (a console name by default)."""
    async with linli.sessions() as session:
        person = await people.by_identity(session, channel, name)
    assert person is not None, f"nobody known as {channel}:{name}"
    return person.id
