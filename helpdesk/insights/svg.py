"""Bar charts as SVG, drawn on the server: no script, no chart library, no CDN.

The SVG is built with ``xml.etree.ElementTree``, which escapes every text and attribute
(a gap query such as ``<script>`` or ``&`` stays text). Colours and fonts come from
``static/console.css`` through classes (the CSP forbids ``style`` attributes). Every bar
is a ``<rect class="bar">`` with a ``<title>`` (its label and value, shown on hover), so
that the chart is readable with a screen reader and countable by a test.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

SVG_NS = "http://www.w3.org/2000/svg"
# Room for the value axis (left) and the labels (bottom), in SVG units.
LEFT = 44
BOTTOM = 22
TOP = 8
# Horizontal bars: room for the labels on the left.
LABEL_WIDTH = 220
ROW_HEIGHT = 22


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    #: Shown on hover (and read by screen readers); the label and value by default.
    title: str | None = None


def _svg(width: int, height: int, title: str, css_class: str) -> ET.Element:
    root = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "viewBox": f"0 0 {width} {height}",
            "width": str(width),
            "height": str(height),
            "class": f"chart {css_class}",
            "role": "img",
        },
    )
    ET.SubElement(root, "title").text = title
    return root


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _nice_max(value: float) -> float:
    """A round top for the value axis, at least ``value`` (1, 2, 5 times a power of ten)."""
    if value <= 0:
        return 1
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def _render(root: ET.Element) -> Markup:
    return Markup(ET.tostring(root, encoding="unicode"))


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    unit: str = "",
    width: int = 720,
    height: int = 200,
    label_every: int | None = None,
) -> Markup:
    """Vertical bars, one per item (a day, usually), left to right; every ``label_every``
    item is labelled below (by default about eight labels)."""
    root = _svg(width, height, title, "bar-chart")
    top = _nice_max(max((bar.value for bar in bars), default=0))
    plot_width, plot_height = width - LEFT - 4, height - BOTTOM - TOP
    axis = ET.SubElement(root, "g", {"class": "axis"})
    for fraction in (0, 0.5, 1):
        y = TOP + plot_height * (1 - fraction)
        ET.SubElement(
            axis,
            "line",
            {"x1": str(LEFT), "x2": str(width - 4), "y1": f"{y:.1f}", "y2": f"{y:.1f}"},
        )
        label = ET.SubElement(
            axis, "text", {"x": str(LEFT - 4), "y": f"{y + 4:.1f}", "text-anchor": "end"}
        )
        label.text = _number(top * fraction)
    if not bars:
        return _render(root)
    slot = plot_width / len(bars)
    gap = min(2.0, slot * 0.2)
    every = label_every or max(1, round(len(bars) / 8))
    group = ET.SubElement(root, "g", {"class": "bars"})
    for index, bar in enumerate(bars):
        bar_height = plot_height * (bar.value / top) if top else 0
        x = LEFT + index * slot + gap / 2
        rect = ET.SubElement(
            group,
            "rect",
            {
                "class": "bar",
                "x": f"{x:.1f}",
                "y": f"{TOP + plot_height - bar_height:.1f}",
                "width": f"{max(slot - gap, 0.5):.1f}",
                "height": f"{bar_height:.1f}",
            },
        )
        ET.SubElement(rect, "title").text = bar.title or f"{bar.label}: {_number(bar.value)}{unit}"
        if index % every == 0:
            text = ET.SubElement(
                root,
                "text",
                {
                    "class": "x-label",
                    "x": f"{x + (slot - gap) / 2:.1f}",
                    "y": str(height - 6),
                    "text-anchor": "middle",
                },
            )
            text.text = bar.label
    return _render(root)


def hbar_chart(bars: Sequence[Bar], *, title: str, unit: str = "", width: int = 720) -> Markup:
    """Horizontal bars, one row per item, top to bottom, with the label on the left and
    the value at the end of the bar."""
    height = TOP * 2 + ROW_HEIGHT * max(len(bars), 1)
    root = _svg(width, height, title, "hbar-chart")
    top = max((bar.value for bar in bars), default=0) or 1
    plot_width = width - LABEL_WIDTH - 70
    group = ET.SubElement(root, "g", {"class": "bars"})
    for index, bar in enumerate(bars):
        y = TOP + index * ROW_HEIGHT
        label = ET.SubElement(
            root,
            "text",
            {"class": "y-label", "x": str(LABEL_WIDTH - 6), "y": str(y + 15), "text-anchor": "end"},
        )
        label.text = bar.label if len(bar.label) <= 18 else bar.label[:17] + "…"
        bar_width = plot_width * bar.value / top
        rect = ET.SubElement(
            group,
            "rect",
            {
                "class": "bar",
                "x": str(LABEL_WIDTH),
                "y": str(y + 3),
                "width": f"{bar_width:.1f}",
                "height": str(ROW_HEIGHT - 6),
            },
        )
        ET.SubElement(rect, "title").text = bar.title or f"{bar.label}: {_number(bar.value)}{unit}"
        value = ET.SubElement(
            root,
            "text",
            {"class": "value", "x": f"{LABEL_WIDTH + bar_width + 4:.1f}", "y": str(y + 15)},
        )
        value.text = f"{_number(bar.value)}{unit}"
    return _render(root)
