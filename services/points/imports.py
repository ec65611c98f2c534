"""`linli points import FILE.csv [--apply]`: awards in bulk, e.g. garbage-sorting days checked
at the station or the volunteer hours the time-bank coordinator logged.

The file: UTF-8, with or without the byte-order mark Excel writes, a header line and the
columns `person` (as the bot knows them: `telegram:ID`, `wechat:OPENID` or `console:NAME`),
`rule` (a rule of `[points.rules]`) or `amount` (exactly one of the two), and `note` (why; it
is shown to the resident). Every row is checked first and each bad one reported with its line
number; nothing is applied unless every row is valid. Each row's award is keyed by the file's
content and its line, so applying the same file again pays nothing more.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services import people
from services.points import awards

COLUMNS = ("person", "rule", "amount", "note")
CHANNELS = ("telegram", "wechat", "console")
MAX_ROWS = 50_000
MAX_NOTE = 500


@dataclass(frozen=True)
class Row:
    line: int
    person_id: int
    person: str
    rule: str | None
    amount: int
    note: str


@dataclass(frozen=True)
class Checked:
    rows: list[Row]
    problems: list[str]  # "line 4: …", in file order
    digest: str  # of the file's content: the awards' keys


async def check(session: AsyncSession, data: bytes, amount_of: Callable[[str], int]) -> Checked:
    """Every row checked; `amount_of(rule)` gives a rule's amount, KeyError for no rule."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        # utf-8-sig drops a leading byte-order mark and reads a file without one alike.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Checked(
            [], [f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"], digest
        )
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [c for c in ("person", "note") if c not in header]
    if missing or not {"rule", "amount"} & set(header):
        return Checked(
            [],
            [f"line 1: the header names {', '.join(COLUMNS)} (rule or amount, or both)"],
            digest,
        )
    reader.fieldnames = header
    rows: list[Row] = []
    problems: list[str] = []
    for record in reader:
        line = reader.line_num
        if len(rows) + len(problems) >= MAX_ROWS:
            problems.append(f"line {line}: more than {MAX_ROWS} rows; split the file")
            break
        values = {k: (v or "").strip() for k, v in record.items() if k is not None}
        if not any(values.values()):
            continue  # an empty line
        found = await _row(session, line, values, amount_of)
        if isinstance(found, str):
            problems.append(f"line {line}: {found}")
        else:
            rows.append(found)
    if not rows and not problems:
        problems.append("the file has no rows")
    return Checked(rows, problems, digest)


async def _row(
    session: AsyncSession,
    line: int,
    values: dict[str, str],
    amount_of: Callable[[str], int],
) -> Row | str:
    named = values.get("person", "")
    channel, _, external = named.partition(":")
    if channel not in CHANNELS or not external:
        return f"person {named!r} is not telegram:ID, wechat:OPENID or console:NAME"
    person = await people.by_identity(session, channel, external)
    if person is None:
        return f"nobody known as {named}"
    rule, amount_text = values.get("rule", ""), values.get("amount", "")
    if bool(rule) == bool(amount_text):
        return "give a rule or an amount, not both nor neither"
    if rule:
        try:
            amount = amount_of(rule)
        except KeyError:
            return f"no rule {rule!r}"
        if amount <= 0:
            return f"the rule {rule} is turned off (0 points)"
    else:
        try:
            amount = int(amount_text)
        except ValueError:
            return f"amount {amount_text!r} is not a whole number"
        if not 1 <= amount <= 100_000:
            return f"amount {amount} is not between 1 and 100000"
    note = values.get("note", "")
    if not note:
        return "the note, which says why, is empty"
    if len(note) > MAX_NOTE:
        return f"the note is longer than {MAX_NOTE} characters"
    return Row(line, person.id, named, rule or None, amount, note)


async def apply(session: AsyncSession, checked: Checked, now: datetime) -> int:
    """Every row's award, in the caller's transaction; how many were new."""
    assert not checked.problems, "apply only a file whose every row is valid"
    paid = 0
    for row in checked.rows:
        transfer = await awards.award_by_staff(
            session,
            row.person_id,
            row.amount,
            row.note,
            now,
            rule=row.rule,
            key=f"import:{checked.digest}:{row.line}",
        )
        paid += not transfer.replayed
    return paid
