"""The geometry of an object's sightings timeline, drawn as an SVG bar chart by the object page's template.

Pure: counts per day in, bars and axis labels out. The chart spans the first to the last day with
sightings; past ``MAX_BARS`` days, each bar covers several days, so a long history still fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.admin.display import when

DAY_US = 86_400_000_000
MAX_BARS = 60
WIDTH, HEIGHT = 720, 180
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 30  # margins around the plot, for the axis labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    start: str  # first day of the bar, YYYY-MM-DD
    end: str  # last day of the bar
    count: int


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    peak: int
    days_per_bar: int
    total: int
    first: str
    last: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM  # the baseline's y
    right: int = WIDTH - RIGHT


def _day(day: int) -> str:
    return when(day * DAY_US)[:10]


def chart(per_day: dict[int, int]) -> Chart | None:
    """Lay out the bars of ``per_day`` (days since the epoch -> sightings); None when there is none."""
    days = {d: n for d, n in per_day.items() if n > 0}
    if not days:
        return None
    first, last = min(days), max(days)
    span = last - first + 1
    per_bar = -(-span // MAX_BARS)  # ceiling
    buckets = [0] * (-(-span // per_bar))
    for d, n in days.items():
        buckets[(d - first) // per_bar] += n
    peak = max(buckets)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(buckets)
    bars = []
    for i, n in enumerate(buckets):
        h = plot_h * n / peak
        start = first + i * per_bar
        bars.append(
            Bar(
                round(LEFT + i * slot + slot * 0.1, 2),
                round(TOP + plot_h - h, 2),
                round(max(slot * 0.8, 1.0), 2),
                round(h, 2),
                _day(start),
                _day(min(start + per_bar - 1, last)),
                n,
            )
        )
    return Chart(bars, peak, per_bar, sum(buckets), _day(first), _day(last))
