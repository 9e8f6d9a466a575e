"""Small SVG charts, for `backups --chart` and `make bench`: grouped horizontal bars, and
values over time in stacked panels.

Our own writer rather than a plotting library: two chart shapes in plain SVG text, written
with xml.etree (so every label is escaped), where matplotlib would add tens of megabytes and
pygal a dependency to the ops image for them. Every data mark carries its number and what it
is (`data-value`, `data-label`, and a <title> that viewers show on hover), so a reader - or a
test - finds the figures in the file, not only in the picture.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

CHAR_WIDTH = 6.6  # of a 12-pixel label, on average: enough to size the label column
MAX_LABEL_WIDTH = 440
FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif"
COLOURS = ("#2563eb", "#f59e0b", "#10b981", "#a855f7", "#ef4444", "#64748b")
INK, GRID, MUTED = "#1f2937", "#e5e7eb", "#6b7280"
Format = Callable[[float], str]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    series: int = 0  # which colour: bars of one series share it
    note: str = ""  # written after the bar (default: the formatted value)


@dataclass(frozen=True)
class BarGroup:
    label: str
    bars: list[Bar]


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float
    label: str


@dataclass(frozen=True)
class Panel:
    title: str
    points: list[Point]
    format: Format
    unit: float = 1.0  # grid lines fall on round multiples of this (1024**2 for bytes in MB)


def bar_chart(title: str, groups: list[BarGroup], *, legend: list[str], fmt: Format,
              subtitle: str = "", reference: tuple[float, str] | None = None) -> str:
    """Groups of horizontal bars on one scale from 0; `reference` (value, label) draws a
    dashed line across them (a ratio's 1.0, say)."""
    bar_width, row, gap = 460, 18, 14
    longest = max((len(b.label) for g in groups for b in g.bars), default=0)
    label_width = min(40 + int(longest * CHAR_WIDTH), MAX_LABEL_WIDTH)
    top = 74 if subtitle else 56
    height = top + sum(row * (len(g.bars) + 1) + gap for g in groups) + 30
    longest_note = max((len(b.note or fmt(b.value)) for g in groups for b in g.bars), default=0)
    svg, body = _document(title, subtitle,
                          label_width + bar_width + 20 + int(longest_note * CHAR_WIDTH), height)
    _legend(body, legend, x=label_width, y=top - 22)
    peak = max([b.value for g in groups for b in g.bars] + [reference[0] if reference else 0])
    scale = bar_width / peak if peak > 0 else 0.0
    y = top
    spans = []  # where each group's bars are, for the reference line
    for group in groups:
        _text(body, 12, y + 12, group.label, weight="600")
        y += row
        spans.append((y, y + row * len(group.bars)))
        for bar in group.bars:
            _text(body, 24, y + 12, _fit(bar.label, label_width - 36), size=12, fill=MUTED)
            rect = ET.SubElement(body, "rect", {
                "class": "bar", "x": str(label_width), "y": str(y + 2),
                "width": _num(max(bar.value * scale, 0.5)), "height": str(row - 5),
                "fill": COLOURS[bar.series % len(COLOURS)], "data-group": group.label,
                "data-label": bar.label, "data-value": repr(bar.value)})
            ET.SubElement(rect, "title").text = f"{group.label}: {bar.label} {fmt(bar.value)}"
            _text(body, label_width + bar.value * scale + 6, y + 12, bar.note or fmt(bar.value),
                  size=12)
            y += row
        y += gap
    if reference is not None and scale:
        x = _num(label_width + reference[0] * scale)
        for start, end in spans:
            ET.SubElement(body, "line", {"x1": x, "x2": x, "y1": str(start), "y2": str(end),
                                         "stroke": INK, "stroke-dasharray": "4 3"})
        _text(body, float(x) + 4, y + 4, reference[1], size=12, fill=MUTED)
    return _serialise(svg)


def time_chart(title: str, panels: list[Panel], *, subtitle: str = "") -> str:
    """Each panel's points over one shared time axis, joined by a line, one panel under the
    other."""
    left, plot_width, plot_height, panel_gap = 90, 700, 170, 70
    top = 90 if subtitle else 72
    height = top + len(panels) * (plot_height + panel_gap) + 10
    svg, body = _document(title, subtitle, left + plot_width + 40, height)
    moments = [p.at.timestamp() for panel in panels for p in panel.points]
    first, last = (min(moments), max(moments)) if moments else (0.0, 1.0)
    span = (last - first) or 1.0

    def x_of(moment: float) -> float:  # one point alone sits in the middle
        return left + ((moment - first) / span if last > first else 0.5) * plot_width

    for index, panel in enumerate(panels):
        y0 = top + index * (plot_height + panel_gap)
        _text(body, left - 80, y0 - 16, panel.title, weight="600")
        peak = max((p.value for p in panel.points), default=0.0)
        step = (_nice_step(peak / panel.unit / 4) if peak > 0 else 1.0) * panel.unit
        ceiling = step * max(1, math.ceil(peak / step))

        def y_of(value: float, y0: float = y0, ceiling: float = ceiling) -> float:
            return y0 + plot_height - value / ceiling * plot_height

        for tick in range(int(round(ceiling / step)) + 1):
            y = y_of(tick * step)
            ET.SubElement(body, "line", {"x1": str(left), "x2": str(left + plot_width),
                                         "y1": _num(y), "y2": _num(y), "stroke": GRID})
            _text(body, left - 8, y + 4, panel.format(tick * step), size=11, fill=MUTED,
                  anchor="end")
        ordered = sorted(panel.points, key=lambda p: p.at)
        if len(ordered) > 1:
            ET.SubElement(body, "polyline", {
                "fill": "none", "stroke": COLOURS[index % len(COLOURS)], "stroke-width": "1.5",
                "points": " ".join(f"{_num(x_of(p.at.timestamp()))},{_num(y_of(p.value))}"
                                   for p in ordered)})
        for point in ordered:
            mark = ET.SubElement(body, "circle", {
                "class": "point", "cx": _num(x_of(point.at.timestamp())),
                "cy": _num(y_of(point.value)),
                "r": "3.5", "fill": COLOURS[index % len(COLOURS)], "data-panel": panel.title,
                "data-label": point.label, "data-time": point.at.isoformat(),
                "data-value": repr(point.value)})
            ET.SubElement(mark, "title").text = \
                f"{point.label}: {panel.format(point.value)} ({point.at:%Y-%m-%d %H:%M} UTC)"
        axis_y = y0 + plot_height
        for moment in _time_ticks(first, last):
            when = datetime.fromtimestamp(moment, tz=UTC)
            _text(body, x_of(moment), axis_y + 16, f"{when:%Y-%m-%d}" if span > 2 * 86400
                  else f"{when:%m-%d %H:%M}", size=11, fill=MUTED, anchor="middle")
    return _serialise(svg)


def _document(title: str, subtitle: str, width: int, height: int
              ) -> tuple[ET.Element, ET.Element]:
    svg = ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "width": str(width),
                             "height": str(height), "viewBox": f"0 0 {width} {height}",
                             "role": "img"})
    ET.SubElement(svg, "title").text = title
    ET.SubElement(svg, "rect", {"width": "100%", "height": "100%", "fill": "#ffffff"})
    body = ET.SubElement(svg, "g", {"style": FONT, "fill": INK})
    _text(body, 12, 24, title, size=16, weight="600")
    if subtitle:
        _text(body, 12, 44, subtitle, size=12, fill=MUTED)
    return svg, body


def _legend(body: ET.Element, labels: list[str], *, x: float, y: float) -> None:
    for index, label in enumerate(labels):
        ET.SubElement(body, "rect", {"x": _num(x), "y": _num(y), "width": "12",
                                     "height": "12",
                                     "fill": COLOURS[index % len(COLOURS)]})
        _text(body, x + 17, y + 10, label, size=12)
        x += 40 + 7 * len(label)


def _text(parent: ET.Element, x: float, y: float, text: str, *, size: int = 13,
          weight: str = "400", fill: str = INK, anchor: str = "start") -> None:
    ET.SubElement(parent, "text", {"x": _num(x), "y": _num(y), "font-size": str(size),
                                   "font-weight": weight, "fill": fill,
                                   "text-anchor": anchor}).text = text


def _fit(label: str, width: float) -> str:
    """The label, cut short with … to fit `width` (the whole label is in data-label)."""
    most = int(width / CHAR_WIDTH)
    return label if len(label) <= most else label[:most - 1] + "…"


def _nice_step(rough: float) -> float:
    """1, 2 or 5 times a power of ten, at least `rough`."""
    power = 10 ** math.floor(math.log10(rough))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= rough))


def _time_ticks(first: float, last: float, count: int = 5) -> list[float]:
    if last <= first:
        return [first]
    return [first + (last - first) * i / (count - 1) for i in range(count)]


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _serialise(svg: ET.Element) -> str:
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + ET.tostring(svg, encoding="unicode") \
        + "\n"
