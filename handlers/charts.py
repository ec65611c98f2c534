"""The results card's picture (issue 11): a horizontal bar chart of a closed agenda vote.

`render_results_chart` is a pure function from already translated strings and counts to PNG
bytes. matplotlib is imported inside it, so importing this module costs the bot's hot path
nothing, and it draws on a `Figure` with the Agg canvas, without pyplot and its global state,
so it may run in a worker thread (`asyncio.to_thread`).

Chinese needs a font with CJK glyphs, and matplotlib's own (DejaVu) has none: it would draw
boxes. The font is therefore chosen from a fixed list of known files (`CJK_FONTS`, first found
wins), registered with matplotlib by path, and checked to be the one matplotlib resolves; with
none of them installed `ChartFontMissing` says which Debian package to install (`make`
installs it). A character that the font lacks (an emoji, say) is left out rather than drawn as
a box, and `$` is plain text, never mathtext.
"""

from __future__ import annotations

import io
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.backend_bases import RendererBase
    from matplotlib.font_manager import FontProperties

WIDTH = 1000  # pixels: a phone shows the picture at full width
MAX_ITEMS = 60  # the height grows with the items; past this the caller should split
_DPI = 100
_PT = 72 / _DPI  # points per pixel: every size below is in pixels

_MARGIN = 40
_TITLE_PX, _TITLE_LINES = 34, 2
_ITEM_PX, _ITEM_LINES = 26, 2
_COUNT_PX = 24
_FOOTER_PX = 21
_ROOT_PX = 19
_BAR_PX = 30
_ITEM_GAP = 22
_LINE = 1.3  # line height, in font sizes

HIGHLIGHT_COLOUR = "#1c64d9"  # the items that go to the council
BAR_COLOUR = "#b9c2cf"
_INK = "#1f2328"
_MUTED = "#57606a"
_RULE = "#d0d7de"
_BACKGROUND = "#ffffff"


@dataclass(frozen=True)
class ChartFont:
    """A CJK font by its files: `regular` must exist, `bold` (for the chart's title) is used
    when it does. `family` draws the text and `mono_family` the log root; both are faces of
    these files, so every glyph drawn comes from them."""

    regular: str
    bold: str | None
    family: str
    mono_family: str
    package: str  # the Debian package that installs it


# First found wins. `make` installs the first (1.6 MB to download, 5 MB installed); Noto is
# prettier (and has a bold) but its Debian package is 57 MB, 91 MB installed.
CJK_FONTS: tuple[ChartFont, ...] = (
    ChartFont(
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        None,
        "WenQuanYi Micro Hei",
        "WenQuanYi Micro Hei Mono",
        "fonts-wqy-microhei",
    ),
    ChartFont(
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
        "Noto Sans CJK SC",
        "Noto Sans Mono CJK SC",
        "fonts-noto-cjk",
    ),
)


class ChartFontMissing(RuntimeError):
    """No font with Chinese glyphs is installed (or matplotlib resolves it elsewhere)."""


@dataclass(frozen=True)
class ResolvedFont:
    """The font matplotlib will use: the face (path, index) each weight and family resolves
    to, and the characters all of those faces have."""

    font: ChartFont
    bold: bool
    faces: tuple[tuple[str, int], ...]
    charset: frozenset[int] = field(repr=False)


_lock = threading.Lock()
_resolved: dict[tuple[ChartFont, ...], ResolvedFont] = {}


def chart_font(candidates: Sequence[ChartFont] = CJK_FONTS) -> ResolvedFont:
    """The first installed candidate, registered with matplotlib (once per process).

    Raises ChartFontMissing, naming the Debian packages, when none is installed."""
    key = tuple(candidates)
    with _lock:
        if key not in _resolved:
            _resolved[key] = _resolve(key)
        return _resolved[key]


def _resolve(candidates: tuple[ChartFont, ...]) -> ResolvedFont:
    from matplotlib import ft2font
    from matplotlib.font_manager import FontProperties, fontManager

    for font in candidates:
        if not Path(font.regular).is_file():
            continue
        # By path: matplotlib's font list is cached, and may predate the font's install.
        fontManager.addfont(font.regular)
        bold = font.bold is not None and Path(font.bold).is_file()
        if bold:
            fontManager.addfont(font.bold)
        wanted = [(font.family, "normal"), (font.mono_family, "normal")]
        if bold:
            wanted.append((font.family, "bold"))
        faces: list[tuple[str, int]] = []
        charset: frozenset[int] | None = None
        for family, weight in wanted:
            try:
                found = fontManager.findfont(
                    FontProperties(family=family, weight=weight), fallback_to_default=False
                )
            except ValueError as error:
                raise ChartFontMissing(
                    f"{font.regular} has no face named {family!r}: reinstall {font.package}"
                ) from error
            path, index = str(found), int(getattr(found, "face_index", 0))
            face = ft2font.FT2Font(path, face_index=index)
            if face.family_name != family:
                raise ChartFontMissing(
                    f"matplotlib resolves {family!r} to {path} ({face.family_name})"
                )
            faces.append((path, index))
            codes = frozenset(face.get_charmap())
            charset = codes if charset is None else charset & codes
        assert charset is not None
        return ResolvedFont(font, bold, tuple(faces), charset)
    listed = "; ".join(f"{f.regular} (Debian: {f.package})" for f in candidates)
    first = candidates[0].package if candidates else CJK_FONTS[0].package
    raise ChartFontMissing(
        f"no CJK font for the results chart: none of {listed} is installed. "
        f"Install one, e.g. `apt-get install {first}` (`make` does)."
    )


# ------------------------------------------------------------------------------------ text


_SPACES = re.compile(r"\s+")
_HEX = re.compile(r"[0-9a-fA-F]+")
# Kept with the character before them (no line starts with these) or after them.
_CLOSING = set("，。、；：！？）」』】》〉”’…,.;:!?)]}%％·")
_OPENING = set("（「『【《〈“‘([{")


def clean(text: str, charset: frozenset[int]) -> str:
    """One line of text the font can draw: NFC, whitespace runs as one space, and without
    control characters or characters the font lacks (emoji, say), which would be boxes."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()
    kept = (
        ch
        for ch in text
        if ch == " " or (unicodedata.category(ch)[0] != "C" and ord(ch) in charset)
    )
    return _SPACES.sub(" ", "".join(kept)).strip()


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in "WF"


def _units(text: str) -> list[str]:
    """The pieces a line may break between: a Latin word, one CJK character, a space;
    punctuation stays with its neighbour."""
    units: list[str] = []
    for ch in text:
        if ch == " ":
            units.append(ch)
        elif (
            units
            and units[-1] != " "
            and (
                ch in _CLOSING
                or units[-1][-1] in _OPENING
                or (not _wide(ch) and not _wide(units[-1][-1]))
            )
        ):
            units[-1] += ch
        else:
            units.append(ch)
    return units


class Measure:
    """A string's width in pixels as the sum of its characters' advances, each measured once
    by the renderer that draws them: measuring whole candidate lines again and again is what
    would make wrapping slow (FreeType loads every glyph of the string on each call). Only
    kerning is left out, a pixel or so a line."""

    def __init__(self, renderer: RendererBase, prop: FontProperties) -> None:
        self.renderer, self.prop = renderer, prop
        self.widths: dict[str, float] = {}

    def __call__(self, text: str) -> float:
        return sum(self.char(ch) for ch in text)

    def char(self, ch: str) -> float:
        width = self.widths.get(ch)
        if width is None:
            width = self.widths[ch] = _text_width(self.renderer, ch, self.prop)
        return width


def wrap(text: str, width: float, max_lines: int, measure: Any) -> list[str]:
    """`text` in at most `max_lines` lines no wider than `width` (`measure(s)` gives a
    string's width), the last one ending in "…" when the text does not fit. Lines break
    between words and between CJK characters, never before closing punctuation."""
    if not text or measure(text) <= width:
        return [text]
    lines: list[str] = []
    line, used = "", 0.0
    units = _units(text)
    while units:
        unit = units.pop(0)
        size = measure(unit)
        if unit == " ":  # between two words: the next one decides whether it fits
            if line:
                line, used = line + unit, used + size
            continue
        if used + size <= width:
            line, used = line + unit, used + size
            continue
        if size > width:  # a word wider than a line (a link, say): cut it where it is
            cut = 0
            while cut < len(unit) and used + measure(unit[cut]) <= width:
                used += measure(unit[cut])
                cut += 1
            if cut or not line:
                cut = max(cut, 1)
                line, units = line + unit[:cut], [unit[cut:], *units]
                continue
        lines.append(line.rstrip())
        line, used = "", 0.0
        if len(lines) == max_lines:
            break
        units.insert(0, unit)  # it starts the next line
    else:
        if line:
            lines.append(line.rstrip())
        return lines
    last, ellipsis = lines[-1], measure("…")
    used = measure(last)
    while last and used + ellipsis > width:
        used -= measure(last[-1])
        last = last[:-1]
    lines[-1] = last.rstrip() + "…"
    return lines


def group_hex(value: str, size: int = 8) -> str:
    """A long hex string in groups, so it can be read out and compared."""
    if not _HEX.fullmatch(value):
        return value
    return " ".join(value[i : i + size] for i in range(0, len(value), size))


# ----------------------------------------------------------------------------------- chart


def render_results_chart(
    title: str,
    items: Sequence[tuple[str, int]],
    footer_lines: Sequence[str] = (),
    *,
    highlight: int = 0,
    highlight_note: str = "",
    log_root: str = "",
    log_root_label: str = "",
    font: ResolvedFont | None = None,
) -> bytes:
    """A PNG, `WIDTH` pixels wide, of `items` (title, count) in the order given, one bar
    each, numbered from 1 and labelled with its count; the first `highlight` bars (those that
    go to the council) in their own colour, explained by `highlight_note` when given. Under
    them `footer_lines` (the turnout, say), then `log_root_label` and `log_root`, the latter
    in a monospace face, in groups of eight when it is hex. Every string comes translated.

    Raises ValueError for a negative count or more than MAX_ITEMS items, and ChartFontMissing
    when no CJK font is installed."""
    if len(items) > MAX_ITEMS:
        raise ValueError(f"{len(items)} items: a chart shows at most {MAX_ITEMS}")
    if any(count < 0 for _, count in items):
        raise ValueError("a count is negative")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import Rectangle
    from PIL import Image

    font = font or chart_font()
    charset = font.charset
    text_prop = FontProperties(family=font.font.family, size=_ITEM_PX * _PT)
    title_prop = FontProperties(
        family=font.font.family, weight="bold" if font.bold else "normal", size=_TITLE_PX * _PT
    )
    count_prop = FontProperties(family=font.font.family, size=_COUNT_PX * _PT)
    footer_prop = FontProperties(family=font.font.family, size=_FOOTER_PX * _PT)
    mono_prop = FontProperties(family=font.font.mono_family, size=_ROOT_PX * _PT)

    figure = Figure(figsize=(WIDTH / _DPI, 1), dpi=_DPI, facecolor=_BACKGROUND)
    canvas = FigureCanvasAgg(figure)
    renderer = canvas.get_renderer()

    inner = WIDTH - 2 * _MARGIN
    title_lines = wrap(clean(title, charset), inner, _TITLE_LINES, Measure(renderer, title_prop))
    measure = Measure(renderer, text_prop)
    rows = [
        wrap(f"{n}. {clean(text, charset)}", inner, _ITEM_LINES, measure)
        for n, (text, _) in enumerate(items, 1)
    ]
    note = clean(highlight_note, charset) if highlight > 0 and items else ""
    measure = Measure(renderer, footer_prop)
    footers = [
        line
        for raw in footer_lines
        for line in wrap(clean(raw, charset), inner, 3, measure)
        if line
    ]
    root_lines = _root_lines(
        clean(log_root_label, charset),
        clean(log_root, charset),
        inner,
        footer_prop,
        mono_prop,
        renderer,
    )

    # Lay out top to bottom in pixels (y grows downwards), then size the figure to fit.
    # x, y (of the top, or the middle for "center"), text, font, colour, vertical alignment
    drawn: list[tuple[float, float, str, FontProperties, str, str]] = []
    bars: list[tuple[float, float, float, float, str]] = []  # x, y(top), width, height, colour
    y = _MARGIN
    for line in title_lines:
        drawn.append((_MARGIN, y, line, title_prop, _INK, "top"))
        y += _TITLE_PX * _LINE
    y += 18
    most = max((count for _, count in items), default=0)
    room = inner - _text_width(renderer, str(most), count_prop) - 14
    for n, ((_, count), lines) in enumerate(zip(items, rows, strict=True)):
        for line in lines:
            drawn.append((_MARGIN, y, line, text_prop, _INK, "top"))
            y += _ITEM_PX * _LINE
        y += 4
        colour = HIGHLIGHT_COLOUR if n < highlight else BAR_COLOUR
        length = max(room * count / most, 3.0) if most else 3.0
        bars.append((_MARGIN, y, length, _BAR_PX, colour))
        middle = y + _BAR_PX / 2
        drawn.append((_MARGIN + length + 10, middle, str(count), count_prop, _INK, "center"))
        y += _BAR_PX + _ITEM_GAP
    rule_y = None
    if note or footers or root_lines:
        rule_y = y
        y += 16
    if note:
        bars.append((_MARGIN, y + 6, 26, 16, HIGHLIGHT_COLOUR))  # the colour's key
        drawn.append((_MARGIN + 38, y, note, footer_prop, _INK, "top"))
        y += _FOOTER_PX * _LINE + 8
    for line in footers:
        drawn.append((_MARGIN, y, line, footer_prop, _MUTED, "top"))
        y += _FOOTER_PX * _LINE
    for line, prop in root_lines:
        drawn.append((_MARGIN, y, line, prop, _MUTED, "top"))
        y += _FOOTER_PX * _LINE
    # A multiple of 25 px is a whole number of quarter inches: exact in floating point, so
    # the canvas is exactly this tall.
    height = -(-int(y + _MARGIN) // 25) * 25

    figure.set_size_inches(WIDTH / _DPI, height / _DPI)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_axis_off()
    axes.set_xlim(0, WIDTH)
    axes.set_ylim(height, 0)
    for x, top, length, bar_height, colour in bars:
        axes.add_patch(Rectangle((x, top), length, bar_height, facecolor=colour, edgecolor="none"))
    if rule_y is not None:
        axes.plot([_MARGIN, WIDTH - _MARGIN], [rule_y, rule_y], color=_RULE, linewidth=1)
    for x, at, text, prop, colour, va in drawn:
        axes.text(
            x,
            at,
            text,
            fontproperties=prop,
            color=colour,
            va=va,
            ha="left",
            parse_math=False,  # "$5 to $10" is money, not mathtext
        )
    canvas.draw()
    # Opaque, so RGB; a low zlib level: a third of the time of the default for 5% more bytes.
    picture = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    out = io.BytesIO()
    picture.convert("RGB").save(out, "PNG", compress_level=3)
    return out.getvalue()


def _text_width(renderer: RendererBase, text: str, prop: FontProperties) -> float:
    width, _, _ = renderer.get_text_width_height_descent(text, prop, ismath=False)
    return width


def _root_lines(
    label: str,
    root: str,
    width: float,
    label_prop: FontProperties,
    mono_prop: FontProperties,
    renderer: RendererBase,
) -> list[tuple[str, FontProperties]]:
    if not root:
        return [(label, label_prop)] if label else []
    grouped = group_hex(root)
    one_line = f"{label} {grouped}" if label else grouped
    if _text_width(renderer, one_line, mono_prop) <= width:
        return [(one_line, mono_prop)]
    lines = [(label, label_prop)] if label else []
    wrapped = wrap(grouped, width, 2, Measure(renderer, mono_prop))
    return [*lines, *((line, mono_prop) for line in wrapped)]
