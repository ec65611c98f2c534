"""How a broadcast reads: the message itself (privately, with [Got it] when it asks for
acknowledgement; in a group, the same button shared), the sender's progress card and its
final report, and a building head's door-knock list."""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import datetime

from handlers.flow import Context, Notifier
from handlers.i18n import N_, Translator
from handlers.messages import Attachment, Outgoing
from handlers.notices import NoticeKind
from models import Broadcast, GroupChat
from services.broadcasts import acks, deliveries
from services.notices import GroupNotice, Notice

MESSAGE, PROGRESS, DOORKNOCK = "broadcast", "broadcast.progress", "broadcast.doorknock"
PROGRESS_CARD = "broadcast-progress"
ACK = "ack"
BAR = 10


async def _broadcast(notifier: Notifier, broadcast_id: int | None) -> Broadcast:
    found = await notifier.session.get(Broadcast, broadcast_id or 0)
    assert found is not None
    return found


def _reminder(t: Translator, text: str, round_: int, ack: bool) -> str:
    if round_ and ack:
        return t.gettext("Reminder: please confirm you have read this.") + "\n\n" + text
    return text


def _announcement(broadcast: Broadcast, text: str) -> Outgoing:
    """The text, with its photo as the message's picture, or its PDF sent ahead of it (named
    at the end: a channel that cannot send files still says there is one)."""
    if broadcast.media_key is None:
        return Outgoing(text, html=True)
    if broadcast.media_kind == "document":
        name = broadcast.media_name or "document.pdf"
        return Outgoing(
            f"{text}\n\n📎 {html.escape(name)}",
            html=True,
            attachments=(Attachment("document", broadcast.media_key, name),),
        )
    return Outgoing(text, html=True, image_key=broadcast.media_key)


async def message(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
    broadcast = await _broadcast(notifier, notice.subject_id)
    text = _reminder(t, broadcast.text, int(notice.params.get("round", 0)), broadcast.ack)
    return _announcement(broadcast, text)


async def group_message(notifier: Notifier, t: Translator, notice: GroupNotice) -> Outgoing:
    broadcast = await _broadcast(notifier, notice.subject_id)
    sent = _announcement(broadcast, broadcast.text)
    if not broadcast.ack:
        return sent
    group = await notifier.session.get(GroupChat, notice.group_chat_id)
    assert group is not None
    # Anyone in the group may press: each press acknowledges for the presser.
    options = await notifier.ticket_options(
        None,
        acks.ACK_TICKET,
        broadcast.id,
        [(t.gettext("Got it"), ACK)],
        chat=(group.channel, group.chat_id),
        keep=True,
    )
    return replace(sent, options=options)


def _duration(t: Translator, seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return t.gettext("{h}h{m}m").format(h=hours, m=minutes)
    if minutes:
        return t.gettext("{m}m{s}s").format(m=minutes, s=secs)
    return t.gettext("{s}s").format(s=secs)


def progress_line(
    t: Translator, counts: deliveries.Counts, started: datetime, now: datetime
) -> str:
    """▓▓▓▓▓░░░░░ 52% · 5,230/10,000 · 29.6/s · ETA 2m40s"""
    total = max(counts.total, 1)
    settled = counts.total - counts.queued
    filled = BAR * settled // total
    elapsed = max((now - started).total_seconds(), 0.001)
    rate = counts.delivered / elapsed
    parts = [f"{100 * settled // total}%", f"{settled:,}/{counts.total:,}", f"{rate:.1f}/s"]
    if counts.queued and rate > 0:
        parts.append(t.gettext("ETA {time}").format(time=_duration(t, counts.queued / rate)))
    return "▓" * filled + "░" * (BAR - filled) + " " + " · ".join(parts)


CHANNEL_NAMES = {
    "telegram": N_("Telegram"),
    "wechat": N_("WeChat"),
    "wechat_cs": N_("WeChat (customer service)"),
    "wechat_template": N_("WeChat (template)"),
    "console": N_("Console"),
}


async def progress(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
    """The sender's card: progress while it goes, the final report once done (the same card,
    edited in place)."""
    broadcast = await _broadcast(notifier, notice.subject_id)
    counts = await deliveries.counts(notifier.session, broadcast.id)
    started = broadcast.started_at or notifier.now
    if broadcast.status != "done":
        lines = [
            t.gettext("Broadcast #{id} is going out.").format(id=broadcast.id),
            progress_line(t, counts, started, notifier.now),
        ]
    else:
        lines = [
            t.gettext("Broadcast #{id} is done.").format(id=broadcast.id),
            t.gettext("Delivered {delivered} · unreachable {unreachable} · failed {failed}").format(
                delivered=counts.delivered, unreachable=counts.unreachable, failed=counts.failed
            ),
        ]
        for channel, per in sorted(counts.by_channel.items()):
            lines.append(
                t.gettext(
                    "{channel}: {delivered} delivered, {unreachable} unreachable, {failed} failed"
                ).format(
                    channel=t.gettext(CHANNEL_NAMES.get(channel, channel)),
                    delivered=per.get("delivered", 0),
                    unreachable=per.get("unreachable", 0),
                    failed=per.get("failed", 0),
                )
            )
    if broadcast.ack:
        lines.append(t.gettext("Acknowledged: {n}").format(n=counts.acknowledged))
    return Outgoing("\n".join(lines))


async def doorknock(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
    broadcast = await _broadcast(notifier, notice.subject_id)
    lines = [
        t.gettext(
            "Door-knock list for {building}: these residents have not acknowledged the "
            "announcement of {date}. Please visit them and pass it on."
        ).format(
            building=notice.params["building"],
            date=broadcast.created_at.strftime("%Y-%m-%d"),
        )
    ]
    for resident in notice.params["residents"]:
        line = t.gettext("Room {room}: {name}").format(room=resident["room"], name=resident["name"])
        if not resident["reachable"]:
            line += " " + t.gettext("(not reachable in chat)")
        lines.append(line)
    lines += ["", t.gettext("The announcement:"), broadcast.text]
    return Outgoing("\n".join(lines), html=True)


def broadcast_notices() -> dict[str, NoticeKind]:
    return {
        MESSAGE: NoticeKind(
            message, ticket=acks.ACK_TICKET, labels={ACK: N_("Got it")}, group=group_message
        ),
        PROGRESS: NoticeKind(progress),
        DOORKNOCK: NoticeKind(doorknock),
    }


async def on_ack(ctx: Context, broadcast_id: int, choice: str) -> None:
    """[Got it], privately (the person's own ticket) or in a group (the shared one: each
    press is the presser's)."""
    first = await acks.acknowledge(
        ctx.session, broadcast_id, ctx.person.id, ctx.incoming.channel, ctx.now
    )
    said = ctx._("Thank you, noted.") if first else ctx._("Already noted. Thank you!")
    if ctx.incoming.chat.private:
        ctx.say(said)
    else:
        ctx.clear_pressed = False  # the card stays for everyone else
        ctx.answer_press(said)


def progress_notice(author_id: int, broadcast_id: int) -> Notice:
    return Notice(author_id, PROGRESS, subject_id=broadcast_id, card=PROGRESS_CARD)
