"""Bar charts drawn on the server as SVG: no chart library, no script, readable without one.

Each chart has a title and a description for screen readers; the page puts the same numbers in
a table beside it, so the chart is never the only way to read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 640
BAR_H = 14
GAP = 10
LABEL_W = 150
COLOURS = ("#1f5f99", "#c2571a", "#4d7f2a")


def _fmt(value: float, unit: str) -> str:
    return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"


def bar_chart(chart_id: str, title: str, categories: Sequence[str],
              series: Sequence[tuple[str, Sequence[float | None]]], unit: str) -> str:
    """Grouped horizontal bars: one group per category, one bar per series."""
    values = [v for _, vs in series for v in vs if v is not None]
    top = max(values) if values else 1.0
    top = top if top > 0 else 1.0
    group_h = len(series) * BAR_H + GAP
    legend_h = 24
    height = legend_h + max(1, len(categories)) * group_h + 10
    plot_w = WIDTH - LABEL_W - 80
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart_id}-t">{escape(title)}</title>',
             f'<desc id="{chart_id}-d">{escape(title)}; the same numbers are in the table '
             'next to this chart.</desc>']
    x = LABEL_W
    for i, (name, _) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 16}" y="15" font-size="12">{escape(name)}</text>')
        x += 30 + 8 * len(name)
    for row, category in enumerate(categories):
        y0 = legend_h + row * group_h
        parts.append(f'<text x="{LABEL_W - 6}" y="{y0 + len(series) * BAR_H / 2 + 4:.0f}" '
                     f'font-size="12" text-anchor="end">{escape(category[:24])}</text>')
        for i, (_, vs) in enumerate(series):
            value = vs[row]
            y = y0 + i * BAR_H
            if value is None:
                parts.append(f'<text x="{LABEL_W + 4}" y="{y + 11}" font-size="11">'
                             'no data</text>')
                continue
            w = max(1.0, plot_w * value / top)
            parts.append(f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H - 2}" '
                         f'fill="{COLOURS[i % len(COLOURS)]}"/>'
                         f'<text x="{LABEL_W + w + 4:.1f}" y="{y + 11}" font-size="11">'
                         f'{escape(_fmt(value, unit))}</text>')
    parts.append("</svg>")
    return "".join(parts)
