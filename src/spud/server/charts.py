"""Charts drawn on the server as SVG: grouped bars and lines, styled by spud.css, no script."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 28, 36, 56  # room for the title and the axis labels
SERIES = 6  # spud.css colours series s0 … s5


@dataclass
class Series:
    """One named row of values (None: no value there)."""

    name: str
    values: list[float | None]


def _frame(title: str, body: list[str], legend: list[str]) -> Markup:
    label = escape(title)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label={quoteattr(title)} xmlns="http://www.w3.org/2000/svg">',
        f"<title>{label}</title>",
        f'<text class="chart-title" x="{LEFT}" y="18">{label}</text>',
        *body,
        *legend,
        "</svg>",
    ]
    return Markup("".join(parts))


def _axis(top: float) -> list[str]:
    """The y axis from 0 to top, with four grid lines."""
    plot_h = HEIGHT - TOP - BOTTOM
    out = []
    for i in range(5):
        y = TOP + plot_h * (1 - i / 4)
        value = top * i / 4
        text = f"{value:.0f}" if top >= 4 else f"{value:.2g}"
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>'
        )
    return out


def _legend(series: list[Series]) -> list[str]:
    if len(series) < 2:
        return []
    out, x = [], LEFT
    for i, s in enumerate(series):
        name = s.name if len(s.name) <= 28 else s.name[:27] + "…"
        out.append(
            f'<rect class="s{i % SERIES}" x="{x}" y="{HEIGHT - 14}" width="10" height="10"/>'
        )
        out.append(f'<text class="tick" x="{x + 14}" y="{HEIGHT - 5}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def _label(text: str, limit: int = 16) -> str:
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def bars(title: str, labels: list[str], series: list[Series], top: float | None = None) -> Markup:
    """Grouped bars: one group per label, one bar per series."""
    top = top or max([v for s in series for v in s.values if v is not None] + [1.0])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group = plot_w / max(1, len(labels))
    bar = group * 0.8 / max(1, len(series))
    body = _axis(top)
    for j, label in enumerate(labels):
        x0 = LEFT + j * group + group * 0.1
        for i, s in enumerate(series):
            value = s.values[j] if j < len(s.values) else None
            if value is None:
                continue
            h = plot_h * min(value, top) / top
            x, y = x0 + i * bar, TOP + plot_h - h
            tip = escape(f"{s.name}, {label}: {value:.3g}")
            body.append(
                f'<rect class="s{i % SERIES}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}"><title>{tip}</title></rect>'
            )
        middle = LEFT + j * group + group / 2
        body.append(
            f'<text class="tick" x="{middle:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{_label(label)}</text>"
        )
    return _frame(title, body, _legend(series))


def lines(title: str, labels: list[str], series: list[Series], top: float | None = None) -> Markup:
    """Lines with a dot per point, the labels along the x axis in order."""
    top = top or max([v for s in series for v in s.values if v is not None] + [1.0])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels) - 1) if len(labels) > 1 else 0
    body = _axis(top)

    def xy(j: int, v: float) -> tuple[float, float]:
        x = LEFT + (j * step if len(labels) > 1 else plot_w / 2)
        return x, TOP + plot_h - plot_h * min(v, top) / top

    every = max(1, len(labels) // 10)  # at most about ten labels on the axis
    for j, label in enumerate(labels):
        if j % every == 0 or j == len(labels) - 1:
            x, _ = xy(j, 0)
            body.append(
                f'<text class="tick" x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
                f"{_label(label, 12)}</text>"
            )
    for i, s in enumerate(series):
        points = [(j, v) for j, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(j, v) for j, v in points))
            body.append(f'<polyline class="line s{i % SERIES}" points="{path}"/>')
        for j, v in points:
            x, y = xy(j, v)
            tip = escape(f"{s.name}, {labels[j]}: {v:.3g}")
            body.append(
                f'<circle class="s{i % SERIES}" cx="{x:.1f}" cy="{y:.1f}" r="4">'
                f"<title>{tip}</title></circle>"
            )
    return _frame(title, body, _legend(series))
