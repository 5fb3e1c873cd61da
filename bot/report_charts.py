"""Pictures of a :class:`bot.report.Report`: one PNG page an operator can forward in WeChat
(matplotlib, Agg, a Chinese font found by family name), and one self-contained HTML page
with interactive ECharts charts that works offline (echarts.min.js, shipped in
bot/assets, is written into the page; nothing is fetched).

Chinese on the PNG needs a CJK font: Debian's fonts-noto-cjk (`apt-get install -y
fonts-noto-cjk`) or fonts-wqy-zenhei; Windows and macOS have theirs. Without one the page
is still written, with a warning saying what to install. Characters no chosen font has
(emoji in a name) are left out rather than drawn as empty boxes."""

from __future__ import annotations

import contextlib
import html
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from bot import i18n
from bot.export import write_file
from bot.i18n import _
from bot.report import TIERS, Person, Report
from bot.report_views import (
    KINDS,
    STATUS,
    as_of,
    conversion_rows,
    enrolled_line,
    headline,
    names,
    no_completion_note,
    no_survey_note,
    pct,
    survey_head,
    survey_table,
    title,
)

log = logging.getLogger(__name__)

# Chinese fonts by family name, the best first: Noto/Source Han (Debian: fonts-noto-cjk),
# WenQuanYi (fonts-wqy-zenhei, fonts-wqy-microhei), then those of Windows and macOS.
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Noto Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "SimHei",
    "Heiti SC",
    "Noto Sans CJK TC",
    "Noto Sans CJK JP",
    "Droid Sans Fallback",
)
FALLBACK = "DejaVu Sans"  # matplotlib's own: digits, Latin, ✓ and other symbols
PROBE = "打卡完成率活跃第天群"  # a font without these is no Chinese font
COLORS = ("#2f7ed8", "#f28f43", "#3aa655", "#8e5fc9", "#e4566b", "#18a8b8")
HEADLINE_X, HEADLINE_W = 0.06, 0.94  # the headline figures share this much of the page's width
GAP = 0.015  # of the page's width, kept clear between two headline figures


@dataclass(frozen=True)
class Font:
    family: str
    path: str


def no_font_warning() -> str:
    return _(
        "warning: no Chinese font found, so Chinese in the PNG would show as empty boxes; install "
        "one (Debian/Ubuntu: apt-get install -y fonts-noto-cjk) and write the PNG again"
    )


def find_font(families: Sequence[str] = CJK_FAMILIES) -> Font | None:
    """The first of ``families`` that matplotlib knows and that has Chinese glyphs. A font
    installed after matplotlib cached its font list is found by reading the list again."""
    from matplotlib import font_manager

    for fresh in (False, True):
        if fresh:
            listed = {f.fname for f in font_manager.fontManager.ttflist}
            for path in font_manager.findSystemFonts():
                if path not in listed:
                    # A bitmap font (Debian's colour emoji) cannot be read by matplotlib: skip it.
                    with contextlib.suppress(Exception):
                        font_manager.fontManager.addfont(path)
        known = {f.name: f.fname for f in font_manager.fontManager.ttflist}
        for family in families:
            if family in known and not missing(known[family], PROBE):
                return Font(family, known[family])
    return None


@cache
def _charmap(path: str) -> frozenset[int]:
    from matplotlib import font_manager

    return frozenset(font_manager.get_font(path).get_charmap())


def missing(path: str, text: str) -> set[str]:
    """The characters of ``text`` the font at ``path`` has no glyph for (blanks aside)."""
    have = _charmap(path)
    return {ch for ch in text if not ch.isspace() and ord(ch) not in have}


def drawable(text: str, fonts: Sequence[str]) -> str:
    """``text`` less the characters none of ``fonts`` can draw (an emoji in a name): left out,
    not drawn as a box."""
    lacking = set.intersection(*(missing(p, text) for p in fonts)) if fonts else set()
    return "".join(ch for ch in text if ch not in lacking)


# --- the PNG -----------------------------------------------------------------------------------


def _fallback_path() -> str:
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family=FALLBACK))


def write_png(report: Report, path: Path, font: Font | None) -> Path:
    """One portrait page (1080 px wide, for a phone): the title with the cohort and its dates,
    the headline figures, the completion per day and track, and the activity curve."""
    return write_file(path, lambda part: _draw(report, part, font))


def png_bytes(report: Report) -> bytes:
    """The picture, for a chat (an operator's `报告`)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return write_png(report, Path(folder) / "report.png", find_font()).read_bytes()


def _draw(report: Report, path: Path, font: Font | None) -> None:
    picture(report, font).savefig(path, format="png", dpi=150, facecolor="white")


def picture(report: Report, font: Font | None) -> Any:
    """The PNG's page as a matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fonts = [f for f in (font.path if font else None, _fallback_path()) if f]
    families = [f for f in (font.family if font else None, FALLBACK) if f]

    def t(text: str) -> str:
        return drawable(text, fonts)

    fig = Figure(figsize=(7.2, 10.4), dpi=150, facecolor="white")
    FigureCanvasAgg(fig)
    style: dict[str, Any] = {"family": families}
    fig.text(0.06, 0.962, t(report.name), fontsize=21, fontweight="bold", **style)
    sub = _("{cohort} · {start} to {end} · day {day} of {days}").format(
        cohort=report.cohort, start=report.start, end=report.end, day=report.last_day, days=report.days
    )
    fig.text(0.06, 0.935, t(sub), fontsize=11, color="#555555", **style)
    fig.text(0.06, 0.915, t(as_of(report)), fontsize=9, color="#888888", **style)
    _figures(fig, report, t, style)
    _funnel_axes(fig.add_axes((0.1, 0.5, 0.86, 0.28)), report, t, style)
    _activity_axes(fig.add_axes((0.1, 0.1, 0.86, 0.28)), report, t, style)
    note = _("completion: checked in / members in the group that day · active: spoke or checked in")
    fig.text(0.06, 0.025, t(note), fontsize=8, color="#888888", **style)
    return fig


def _figures(fig: Any, report: Report, t: Any, style: dict[str, Any]) -> None:
    """The headline figures, big numbers across the page: four, and the conversion as a
    fifth once members are marked enrolled, if its number and label fit beside the others."""
    figures = [
        (str(report.in_group_now), _("members in the group")),
        (pct(report.completion()), _("completion")),
        (pct(report.active_average()), _("active a day")),
        (str(sum(len(r.people) for r in report.rewards)), _("rewards granted")),
    ]
    if report.conversion.overall.converted:
        five = [*figures, (pct(report.conversion_rate()), _("conversion"))]
        drawn = _place(fig, five, t, style)
        if not _crowded(fig, drawn, len(five)):
            return
        for text in drawn:
            text.remove()
    _place(fig, figures, t, style)


def _place(fig: Any, figures: Sequence[tuple[str, str]], t: Any, style: dict[str, Any]) -> list[Any]:
    step = HEADLINE_W / len(figures)
    drawn = []
    for i, (value, label) in enumerate(figures):
        x = HEADLINE_X + i * step
        drawn.append(fig.text(x, 0.862, value, fontsize=22, fontweight="bold", color=COLORS[0], **style))
        drawn.append(fig.text(x, 0.838, t(label), fontsize=10, color="#555555", **style))
    return drawn


def _crowded(fig: Any, drawn: Sequence[Any], n: int) -> bool:
    """Whether a figure's number or label (value, label, value, ...) runs into the next one's
    place, or off the page."""
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    for i, text in enumerate(drawn):
        end = HEADLINE_X + (i // 2 + 1) * HEADLINE_W / n - GAP
        if text.get_window_extent(renderer).x1 > end * width:
            return True
    return False


def _day(day: int) -> str:
    return _("day {day}").format(day=day)


def _funnel_axes(ax: Any, report: Report, t: Any, style: dict[str, Any]) -> None:
    days = sorted({r.day for r in report.funnel})
    tracks = [tr.name for tr in report.tracks if tr.days]
    width = 0.8 / max((sum(1 for r in report.funnel if r.day == d) for d in days), default=1)
    # Each day's bars side by side and centred on it: only the tracks that run that day.
    at: dict[tuple[str, int], float] = {}
    for j, d in enumerate(days):
        running = [r.track for r in report.funnel if r.day == d]
        for i, name in enumerate(running):
            at[(name, d)] = j + (i - (len(running) - 1) / 2) * width
    for i, name in enumerate(tracks):
        rows = [r for r in report.funnel if r.track == name]
        ys = [r.rate or 0 for r in rows]
        bars = ax.bar([at[(name, r.day)] for r in rows], ys, width * 0.92, label=t(name), color=COLORS[i % 6])
        ax.bar_label(bars, labels=[f"{y:.0f}" for y in ys], fontsize=8, padding=2, **style)
    ax.set_xticks(range(len(days)), [t(_day(d)) for d in days], fontsize=10, **style)
    ax.set_ylim(0, 112)
    ax.set_yticks([0, 25, 50, 75, 100], ["0", "25%", "50%", "75%", "100%"], fontsize=9)
    ax.set_title(
        t(_("Completion per day and track (%)")), loc="left", fontsize=14, fontweight="bold", **style
    )
    if tracks:
        ax.legend(
            prop={"family": style["family"], "size": 10}, ncols=len(tracks), loc="upper right", frameon=False
        )
    _tidy(ax)


def _activity_axes(ax: Any, report: Report, t: Any, style: dict[str, Any]) -> None:
    days = [r.day for r in report.daily]
    xs = range(len(days))
    active = [r.active for r in report.daily]
    bars = ax.bar(xs, active, 0.6, color=COLORS[2], label=t(_("active members")))
    ax.bar_label(
        bars,
        labels=[f"{r.active}\n{pct(r.active_rate)}" for r in report.daily],
        fontsize=8,
        padding=2,
        **style,
    )
    ax.plot(
        xs,
        [r.in_group for r in report.daily],
        "--",
        color="#999999",
        label=t(_("members in the group")),
        linewidth=1.5,
    )
    ax.set_xticks(list(xs), [t(_day(d)) for d in days], fontsize=10, **style)
    top = max([*active, *(r.in_group for r in report.daily), 1])
    ax.set_ylim(0, top * 1.3)
    ax.tick_params(axis="y", labelsize=9)
    ax.set_title(t(_("Active members per day")), loc="left", fontsize=14, fontweight="bold", **style)
    ax.legend(prop={"family": style["family"], "size": 10}, ncols=2, loc="upper right", frameon=False)
    _tidy(ax)


def _tidy(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#eeeeee")
    ax.set_axisbelow(True)


# --- the HTML page -----------------------------------------------------------------------------


def echarts_js() -> str:
    return (resources.files("bot") / "assets" / "echarts.min.js").read_text(encoding="utf-8")


def write_html(report: Report, path: Path) -> Path:
    """One page, everything in it: the charts' script, their data, the names."""
    text = page(report)
    return write_file(path, lambda part: _write_text(part, text))


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside <script>: no "</script>" can end it early."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _days_axis(days: Sequence[int]) -> dict[str, Any]:
    """Cohort days, numbered under the bars and named once below them (a half-width chart
    has no room for "day 1" eight times)."""
    return {
        "type": "category",
        "data": [str(d) for d in days],
        "name": _("day"),
        "nameLocation": "middle",
        "nameGap": 25,
        "axisLabel": {"interval": 0},
    }


def charts(report: Report) -> dict[str, Any]:
    """The ECharts options of the page, from the report's own numbers."""
    days = sorted({r.day for r in report.funnel})
    tracks = [tr.name for tr in report.tracks if tr.days]
    funnel = {(r.track, r.day): r for r in report.funnel}
    rounds = [f"{_day(r.day)}\n{r.at:%H:%M} {_(KINDS[r.kind])}" for r in report.reminders]
    return {
        "funnel": {
            "title": {"text": _("Completion per day and track (%)")},
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 28},
            "grid": {"top": 70, "left": 45, "right": 15, "bottom": 45},
            "xAxis": _days_axis(days),
            "yAxis": {"type": "value", "max": 100, "axisLabel": {"formatter": "{value}%"}},
            "series": [
                {
                    "name": name,
                    "type": "bar",
                    "label": {"show": True, "position": "top", "fontSize": 10},
                    "data": [
                        {
                            "value": funnel[(name, d)].rate,
                            "done": funnel[(name, d)].done,
                            "in_group": funnel[(name, d)].in_group,
                        }
                        if (name, d) in funnel
                        else None
                        for d in days
                    ],
                }
                for name in tracks
            ],
        },
        "activity": {
            "title": {"text": _("Active members per day")},
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 28},
            "grid": {"top": 70, "left": 45, "right": 45, "bottom": 45},
            "xAxis": _days_axis([r.day for r in report.daily]),
            "yAxis": [{"type": "value"}, {"type": "value", "splitLine": {"show": False}}],
            "series": [
                {"name": _("active members"), "type": "bar", "data": [r.active for r in report.daily]},
                {
                    "name": _("members in the group"),
                    "type": "line",
                    "lineStyle": {"type": "dashed"},
                    "data": [r.in_group for r in report.daily],
                },
                {
                    "name": _("messages per member"),
                    "type": "line",
                    "yAxisIndex": 1,
                    "data": [r.per_member for r in report.daily],
                },
            ],
        },
        "tiers": {
            "title": {"text": _("Members by tier (in the group now)")},
            "tooltip": {"trigger": "item", "formatter": "{b}: {c} ({d}%)"},
            "series": [
                {
                    "type": "pie",
                    "radius": ["28%", "52%"],
                    "center": ["50%", "56%"],
                    "label": {"formatter": "{b}\n{c}"},
                    "data": [{"name": _(TIERS[code]), "value": len(people)} for code, people in report.tiers],
                }
            ],
        },
        "hours": {
            "title": {"text": _("When members check in (by local hour)")},
            "tooltip": {"trigger": "axis"},
            "grid": {"top": 50, "left": 45, "right": 15, "bottom": 30},
            "xAxis": {"type": "category", "data": [f"{h:02d}" for h in range(24)]},
            "yAxis": {"type": "value"},
            "series": [{"name": _("check-ins"), "type": "bar", "data": list(report.hours)}],
        },
        "reminders": {
            "title": {"text": _("Checked in within 2 hours (%)")},
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 28},
            "grid": {"top": 70, "left": 45, "right": 15, "bottom": 50},
            "xAxis": {"type": "category", "data": rounds, "axisLabel": {"interval": 0}},
            "yAxis": {"type": "value", "max": 100, "axisLabel": {"formatter": "{value}%"}},
            "series": [
                {"name": _("reminded"), "type": "bar", "data": [r.reminded_rate for r in report.reminders]},
                {"name": _("others"), "type": "bar", "data": [r.others_rate for r in report.reminders]},
            ],
        },
        **_conversion_chart(report),  # the funnel ends in it
    }


def _conversion_chart(report: Report) -> dict[str, Any]:
    """The share enrolled per group, a bar each, coloured by what groups them; none before
    anyone is marked enrolled (every bar would be empty)."""
    if not report.conversion.overall.converted:
        return {}
    rows = conversion_rows(report)
    sections = list(dict.fromkeys(by for by, *_rest in rows))
    return {
        "conversion": {
            "title": {"text": _("Enrolled in the full course (%), by group")},
            "tooltip": {"trigger": "item"},
            "grid": {"top": 45, "left": 10, "right": 100, "bottom": 10, "containLabel": True},
            "xAxis": {"type": "value", "max": 100, "axisLabel": {"formatter": "{value}%"}},
            "yAxis": {
                "type": "category",
                "inverse": True,
                "data": [group for _by, group, *_rest in rows],
                "axisLabel": {"interval": 0},
            },
            "series": [
                {
                    "name": _("enrolled"),
                    "type": "bar",
                    "data": [
                        {
                            "value": rate,
                            "itemStyle": {"color": COLORS[sections.index(by) % len(COLORS)]},
                            "label": {
                                "show": True,
                                "position": "right",
                                "formatter": f"{pct(rate)} ({enrolled}/{members})",
                            },
                        }
                        for by, _group, members, enrolled, rate in rows
                    ],
                }
            ],
        }
    }


def _conversion_section(report: Report) -> str:
    notes = [enrolled_line(report)]
    if not report.conversion.by_completion:
        notes.append(no_completion_note())
    table = _rows(
        [_("grouped by"), _("which members"), _("members"), _("enrolled"), _("rate (%)")],
        conversion_rows(report),
    )
    meta = "".join(f'<p class="meta">{html.escape(n)}</p>' for n in notes)
    return _section(_("Conversion: enrolled in the full course (报名)"), meta + table)


def _survey_section(report: Report) -> str:
    f = report.survey
    if f is None:
        return _section(_("Questionnaire"), f'<p class="meta">{html.escape(no_survey_note(report))}</p>')
    rows = [(head, label, n, share) for head, label, n, share, _last in survey_table(report)]
    table = _rows([_("question"), _("answer"), _("count"), _("share (%)")], rows)
    head = f'<p class="meta">{html.escape(survey_head(report))}</p>'
    return _section(_("Questionnaire {survey}").format(survey=f.survey_id), head + table)


def _rows(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(heading: str, inner: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2>{inner}</section>"


def page(report: Report) -> str:
    lists = [
        *((_(TIERS[code]), people) for code, people in report.tiers),
        *((r.reward, r.people) for r in report.rewards),
        (_("opted out (mute)"), report.muted),
        (_("not reachable privately"), report.unreachable),
        (_("left the group"), report.left),
        (_("enrolled (报名)"), tuple(Person(m.member_id, m.name) for m in report.members if m.enrolled)),
    ]
    who = _rows([_("list"), _("members"), _("who")], [(label, len(p), names(p)) for label, p in lists])
    tracks = [tr.name for tr in report.tracks]
    member_rows = _rows(
        [
            _("name"),
            _("tier"),
            _("messages"),
            _("check-ins"),
            *(_("{track}, day {day}").format(track=tr, day=d) for tr, d in report.grid),
            *(_("{track}: streak now").format(track=tr) for tr in tracks),
            _("rewards"),
            _("enrolled"),
        ],
        [
            (
                m.name + ("" if m.present else " " + _("(left)")),
                _(TIERS[m.tier]) if m.tier else "",
                m.messages,
                m.checkins,
                *(_(STATUS[s]) if s else "" for s in m.statuses),
                *(now for now, _longest in m.streaks),
                _(", ").join(m.rewards),
                _("yes") if m.enrolled else "",
            )
            for m in report.members
        ],
    )
    wide = ("hours", "reminders", "conversion")  # many bars: the whole width
    boxes = "".join(
        f'<div class="chart{" wide" if key in wide else ""}" id="{key}"></div>' for key in charts(report)
    )
    return TEMPLATE.format(
        lang="zh-CN" if i18n.current() == "zh" else "en",
        title=html.escape(title(report)),
        as_of=html.escape(as_of(report)),
        headline=html.escape(headline(report)),
        enrolled=html.escape(enrolled_line(report)),
        charts=boxes,
        funnel=_conversion_section(report) + _survey_section(report),
        lists=_section(_("Who"), who),
        members=_section(_("Each member's days"), member_rows),
        echarts=echarts_js().replace("</script", "<\\/script"),
        options=_script_json(charts(report)),
        tooltip=_script_json({"done": _("checked in"), "in_group": _("members in the group")}),
    )


TEMPLATE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Zen Hei",
  sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px; color: #222; background: #fff; }}
h1 {{ font-size: 22px; margin: 4px 0; }}
.meta {{ color: #666; font-size: 14px; margin: 2px 0; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 12px;
  margin-top: 12px; }}
.chart {{ height: 340px; border: 1px solid #eee; border-radius: 6px; padding: 6px; }}
.chart.wide {{ grid-column: 1 / -1; }}
section {{ margin-top: 20px; overflow-x: auto; }}
h2 {{ font-size: 17px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }}
th {{ background: #f5f7fa; position: sticky; top: 0; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">{as_of}</p>
<p class="meta">{headline}</p>
<p class="meta">{enrolled}</p>
<div class="grid">{charts}</div>
{funnel}
{lists}
{members}
<script>{echarts}</script>
<script>
(function () {{
  var options = {options};
  var words = {tooltip};
  var pending = 0;
  var charts = [];
  Object.keys(options).forEach(function (key) {{
    var option = options[key];
    option.animationDuration = 300;
    option.title.textStyle = {{ fontSize: 15 }};
    if (key === "funnel") {{
      option.series.forEach(function (s) {{
        s.label.formatter = function (p) {{ return p.value == null ? "" : Math.round(p.value); }};
      }});
      option.tooltip.formatter = function (items) {{
        return items.filter(function (p) {{ return p.data; }}).map(function (p) {{
          return p.marker + p.seriesName + ": " + p.data.value + "% (" + words.done + " " +
            p.data.done + " / " + words.in_group + " " + p.data.in_group + ")";
        }}).join("<br>") || "";
      }};
    }}
    var chart = echarts.init(document.getElementById(key), null, {{ renderer: "canvas" }});
    pending += 1;
    chart.on("finished", function once() {{
      chart.off("finished", once);
      pending -= 1;
      if (pending === 0) {{ document.body.setAttribute("data-ready", "1"); }}
    }});
    chart.setOption(option);
    charts.push(chart);
  }});
  window.addEventListener("resize", function () {{ charts.forEach(function (c) {{ c.resize(); }}); }});
}})();
</script>
</body>
</html>
"""
