"""A broadcast's formatting: Telegram's HTML subset, checked while composing so that a
message Telegram would refuse ("can't parse entities") is caught before 10,000 sends fail;
and the plain text other channels get."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser

# https://core.telegram.org/bots/api#html-style
TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
        "a", "code", "pre", "blockquote", "tg-emoji",
    }
)  # fmt: skip
ATTRIBUTES = {
    "a": {"href"},
    "span": {"class"},
    "code": {"class"},
    "blockquote": {"expandable"},
    "tg-emoji": {"emoji-id"},
}
ENTITIES = frozenset({"lt", "gt", "amp", "quot"})
TEXT_LIMIT, CAPTION_LIMIT = 4096, 1024
_TAG = re.compile(r"<[^>]*>")
# An "&" that starts none of the entities Telegram knows (HTMLParser lets "AT&T" through).
_BARE_AMPERSAND = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")


@dataclass(frozen=True)
class Problem:
    """What Telegram would refuse, and where: `kind` is for the reader's language, `detail`
    quotes the offending piece."""

    kind: str  # tag | attribute | unclosed | stray | entity | too_long
    detail: str


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.problem: Problem | None = None

    def _fail(self, kind: str, detail: str) -> None:
        if self.problem is None:
            self.problem = Problem(kind, detail[:40])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            self._fail("tag", f"<{tag}>")
            return
        for name, value in attrs:
            if name not in ATTRIBUTES.get(tag, set()):
                self._fail("attribute", f'<{tag} {name}="…">')
            if tag == "span" and name == "class" and value != "tg-spoiler":
                self._fail("attribute", f'<span class="{value}">')
        if tag == "a" and not any(name == "href" and value for name, value in attrs):
            self._fail("attribute", "<a>")
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._fail("tag", f"<{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self._fail("unclosed", f"</{tag}>" if not self.stack else f"<{self.stack[-1]}>")
            return
        self.stack.pop()

    def handle_entityref(self, name: str) -> None:
        if name not in ENTITIES:
            self._fail("entity", f"&{name};")

    def handle_data(self, data: str) -> None:
        for sign in "<>&":
            if sign in data:
                self._fail("stray", sign)

    def handle_comment(self, data: str) -> None:
        self._fail("tag", "<!--")

    def handle_decl(self, decl: str) -> None:
        self._fail("tag", f"<!{decl[:10]}")


def check(text: str, *, with_picture: bool = False) -> Problem | None:
    """None when Telegram would take it; else the first thing it would refuse."""
    bare = _BARE_AMPERSAND.search(text)
    if bare is not None:
        return Problem("stray", text[bare.start() : bare.start() + 8].split()[0])
    checker = _Checker()
    checker.feed(text)
    checker.close()
    # HTMLParser keeps an unfinished tag ("<b" at the end) as raw data it never hands over.
    if checker.problem is None and checker.rawdata:
        checker._fail("stray", checker.rawdata[:1])
    if checker.problem is None and checker.stack:
        checker._fail("unclosed", f"<{checker.stack[-1]}>")
    if checker.problem is not None:
        return checker.problem
    # The markup counted too: a message is never split, so no tag is cut in two.
    limit = CAPTION_LIMIT if with_picture else TEXT_LIMIT
    if len(text) > limit:
        return Problem("too_long", str(limit))
    return None


def plain(text: str) -> str:
    """The text without its formatting, for channels that show plain text."""
    return html.unescape(_TAG.sub("", text))
