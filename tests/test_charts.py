"""Issue 11: the agenda results chart (handlers/charts.py) draws Chinese with a font that has
the glyphs: never DejaVu's boxes, never mathtext, never past the picture's edge."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import unicodedata
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from PIL import Image

from handlers.charts import (
    BAR_COLOUR,
    CJK_FONTS,
    HIGHLIGHT_COLOUR,
    MAX_ITEMS,
    WIDTH,
    ChartFont,
    ChartFontMissing,
    ResolvedFont,
    chart_font,
    group_hex,
    render_results_chart,
    wrap,
)
from tests.conftest import ROOT

ROOT_HASH = "3f2a9b1c0d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddee"
ITEMS = [
    ("在东门增设非机动车充电桩，解决电动自行车夜间充电难、楼道飞线充电的安全隐患问题", 31),
    ("Fix the broken street lights on the path between Building 3 and the bike shed", 24),
    ("垃圾分类督导员 rota for weekends 周末值班", 17),
    ("Raise the fund from $5 to $10 per household", 12),
    ("增加儿童游乐设施", 9),
    ("修剪小区绿化带树木", 7),
    ("Repaint parking lines（停车线）", 5),
    ("楼道灯改为声控", 3),
    ("设置快递柜", 1),
    ("其他", 0),
]
TITLE = "2026年11月议题投票结果 · November agenda results"
TURNOUT = "投票率 41%（96 户中 39 户）"
NOTE = "前三项提交居委会"
LABEL = "日志根："

INSTALLED = [font for font in CJK_FONTS if Path(font.regular).is_file()] or CJK_FONTS[:1]


@pytest.fixture(params=INSTALLED, ids=lambda font: font.package)
def font(request: pytest.FixtureRequest) -> ResolvedFont:
    """Each CJK font this machine has (`make` installs the first); with none, ChartFontMissing
    fails the test."""
    return chart_font((request.param,))


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object, bool]]:
    """What the Agg renderer is asked to draw: (text, FontProperties, ismath)."""
    from matplotlib.backends.backend_agg import RendererAgg

    calls: list[tuple[str, object, bool]] = []
    original = RendererAgg.draw_text

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):  # type: ignore[no-untyped-def]
        calls.append((s, prop.copy(), ismath))
        return original(self, gc, x, y, s, prop, angle, ismath, mtext)

    monkeypatch.setattr(RendererAgg, "draw_text", draw_text)
    return calls


@pytest.fixture
def strict(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Warnings are errors ("Glyph … missing from font(s)" among them), and matplotlib logs
    no warning (such as a family it cannot find)."""
    with caplog.at_level(logging.WARNING, logger="matplotlib"), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
    assert [r.getMessage() for r in caplog.records if r.name.startswith("matplotlib")] == []


_cmaps: dict[tuple[str, int], set[int]] = {}


def cmap(path: str, index: int) -> set[int]:
    """The characters a face has, read by fontTools: not by what drew them."""
    if (path, index) not in _cmaps:
        number = index if path.lower().endswith(".ttc") else -1
        with TTFont(path, fontNumber=number, lazy=True) as face:
            _cmaps[path, index] = set(face.getBestCmap())
    return _cmaps[path, index]


def assert_glyphs_present(drawn: list[tuple[str, object, bool]], font: ResolvedFont) -> None:
    from matplotlib.font_manager import fontManager

    assert drawn
    for text, prop, ismath in drawn:
        assert not ismath, text
        assert prop.get_family() in ([font.font.family], [font.font.mono_family])  # type: ignore[attr-defined]
        used = fontManager.findfont(prop, fallback_to_default=False)
        face = (str(used), used.face_index)
        assert face in font.faces, (text, face)
        missing = [ch for ch in text if ord(ch) not in cmap(*face)]
        assert not missing, f"{text!r}: {missing} not in {face}"


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    return image


def runs(image: Image.Image, x: int, colour: str) -> int:
    """How many separate stretches of `colour` the column `x` crosses."""
    rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    count, inside = 0, False
    for y in range(image.height):
        here = image.getpixel((x, y)) == rgb
        count += here and not inside
        inside = here
    return count


def test_chart_in_chinese_and_english(font: ResolvedFont, drawn: list, strict: None) -> None:
    png = render_results_chart(
        TITLE,
        ITEMS,
        [TURNOUT],
        highlight=3,
        highlight_note=NOTE,
        log_root=ROOT_HASH,
        log_root_label=LABEL,
        font=font,
    )
    image = decode(png)
    assert image.mode == "RGB" and image.width == WIDTH
    assert 1000 < image.height < 1600

    assert_glyphs_present(drawn, font)
    # Everything asked for is drawn, nothing left out as undrawable, "$" as a dollar.
    texts = [text for text, _, _ in drawn]
    flat = "".join(texts).replace(" ", "")
    for title, _ in ITEMS:
        assert title.replace(" ", "") in flat
    for text in (TITLE, TURNOUT, NOTE, LABEL, *(str(count) for _, count in ITEMS)):
        assert text.replace(" ", "") in flat
    assert any("Raise the fund from $5 to $10" in text for text in texts)
    assert any(group_hex(ROOT_HASH) in text for text in texts)
    # The council's three and the colour's key, then the other seven, in their colours.
    assert runs(image, 41, HIGHLIGHT_COLOUR) == 4
    assert runs(image, 41, BAR_COLOUR) == 7


def test_the_font_is_found_by_path_and_has_chinese() -> None:
    resolved = chart_font()
    assert resolved.font is INSTALLED[0]
    for face in resolved.faces:
        assert {ord(ch) for ch in "投票率户中日志根议题结果居委会…"} <= cmap(*face)
    assert all(ord(ch) in resolved.charset for ch in "0123456789abcdef（）：%")


def test_thirty_long_items(drawn: list, strict: None) -> None:
    font = chart_font()
    long_zh = "关于小区北门外人行道长期被机动车占用、老人和孩子只能走机动车道的问题，建议增设隔离桩并由物业每日巡查"
    long_en = (
        "Ask the property company to publish the maintenance fund accounts every quarter, " * 2
    )
    assert len(long_zh) >= 50 and len(long_en) > 120
    items = [(long_zh if n % 2 else long_en, 60 - n) for n in range(30)]
    png = render_results_chart(
        "本月议题 " * 16, items, [TURNOUT * 3], highlight=5, log_root=ROOT_HASH, font=font
    )
    image = decode(png)
    assert image.width == WIDTH
    # The height grows with the items, two lines each (and their bars), and no more.
    item_size = next(prop.get_size() for text, prop, _ in drawn if text.startswith("1. "))
    item_lines = [text for text, prop, _ in drawn if prop.get_size() == item_size]
    assert len(item_lines) == 2 * 30
    assert 30 * 120 < image.height < 4200

    assert_glyphs_present(drawn, font)
    texts = [text for text, _, _ in drawn]
    # 50 to 60 Chinese characters fit in two lines; 160 letters do not, nor does the title.
    assert sum(text.endswith("…") for text in texts) == 15 + 1
    assert "".join(texts).count(long_zh) == 15
    # Nothing reaches the right margin: a wrapped line fits, and so does the longest bar's count.
    margin = image.crop((WIDTH - 35, 0, WIDTH, image.height))
    assert margin.getextrema() == ((255, 255),) * 3


def test_what_the_font_cannot_draw_is_left_out(drawn: list, strict: None) -> None:
    font = chart_font()
    png = render_results_chart(
        "Bikes 🚲 单车\u200b棚",
        [("Fix the 🔦 lights\tnow\n请修灯 😀", 2)],
        ["$x$ is not math"],
        font=font,
    )
    decode(png)
    assert_glyphs_present(drawn, font)
    texts = [text for text, _, _ in drawn]
    assert "Bikes 单车棚" in texts
    assert "1. Fix the lights now 请修灯" in texts
    assert "$x$ is not math" in texts


def test_a_box_would_be_caught() -> None:
    """The check above would see tofu: DejaVu Sans has no Chinese, and matplotlib says so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    canvas = FigureCanvasAgg(figure)
    figure.text(0, 0.5, "投票", family="DejaVu Sans")
    with pytest.warns(UserWarning, match="missing from font"):
        canvas.draw()


def test_no_cjk_font_is_a_clear_error() -> None:
    absent = ChartFont("/nonexistent/cjk.ttc", None, "X CJK", "X Mono CJK", "fonts-x-cjk")
    with pytest.raises(ChartFontMissing, match=r"/nonexistent/cjk\.ttc.*fonts-x-cjk"):
        chart_font((absent,))
    import matplotlib

    dejavu = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    misnamed = ChartFont(dejavu, None, "No Such Family 42", "No Such Mono 42", "fonts-x-cjk")
    with pytest.raises(ChartFontMissing, match="No Such Family 42"):
        chart_font((misnamed,))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        render_results_chart("t", [("a", -1)], [])
    with pytest.raises(ValueError, match=str(MAX_ITEMS)):
        render_results_chart("t", [("a", 1)] * (MAX_ITEMS + 1), [])


async def test_renders_in_a_worker_thread_as_in_the_main_one() -> None:
    items = [("东门充电桩", 3), ("Street lights", 2)]
    here = render_results_chart("结果", items, [TURNOUT], highlight=1)
    there = await asyncio.gather(
        *(
            asyncio.to_thread(render_results_chart, "结果", items, [TURNOUT], highlight=1)
            for _ in range(2)
        )
    )
    assert there == [here, here]


def test_importing_the_module_leaves_matplotlib_alone() -> None:
    code = "import sys, handlers.charts; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr


# ------------------------------------------------------------------------------------ wrap


def columns(text: str) -> float:
    """A stand-in measure: a CJK character is two columns, anything else one."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def test_wrap_breaks_between_words_and_between_cjk_characters() -> None:
    assert wrap("short", 10, 2, columns) == ["short"]
    assert wrap("the quick brown fox", 10, 3, columns) == ["the quick", "brown fox"]
    assert wrap("增设充电桩解决充电难", 10, 2, columns) == ["增设充电桩", "解决充电难"]
    # A comma never starts a line; "rota" stays whole.
    assert wrap("增设充电桩，解决 rota 问题", 10, 3, columns) == [
        "增设充电",
        "桩，解决",
        "rota 问题",
    ]


def test_wrap_cuts_what_does_not_fit() -> None:
    assert wrap("a" * 25, 10, 3, columns) == ["a" * 10, "a" * 10, "a" * 5]
    assert wrap("5. " + "a" * 25, 10, 3, columns) == ["5. " + "a" * 7, "a" * 10, "a" * 8]
    assert wrap("one two three four five six", 9, 2, columns) == ["one two", "three…"]
    lines = wrap("增设充电桩解决充电难的问题", 10, 2, columns)
    assert lines == ["增设充电桩", "解决充电…"] and all(columns(line) <= 10 for line in lines)


def test_hex_comes_in_groups() -> None:
    assert group_hex(ROOT_HASH).split() == [ROOT_HASH[i : i + 8] for i in range(0, 64, 8)]
    assert group_hex("not hex") == "not hex"
