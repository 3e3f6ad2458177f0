"""PNG pictures of an index's main charts, rendered without a browser by vl-convert (the same
Vega-Lite specs the page draws, over the dates the data holds: the page's bounded history — older
dates one point per month — for the dashboard's own data, a trailing window for gold's)."""

from __future__ import annotations

import base64
import datetime as dt

import vl_convert

from b3_platform.dashboard import specs
from b3_platform.dashboard.data import DashboardData

#: The charts a picture stacks, top to bottom, and the table each draws.
PICTURE_CHARTS = (
    ("weights", "weights"),
    ("concentration", "summary"),
    ("components", "summary"),
    ("events", "events"),
)


def utc_domain(first: dt.date, last: dt.date) -> dict:
    """The time axis from `first` to the day after `last`, as a Vega expression (as the page sets it)."""
    end = last + dt.timedelta(days=1)
    return {
        "expr": f"[utc({first.year}, {first.month - 1}, {first.day}), utc({end.year}, {end.month - 1}, {end.day})]"
    }


def index_spec(data: DashboardData, index: str, title: str | None = None) -> specs.Spec | None:
    """One Vega-Lite spec stacking the index's main charts (None: the index has no date). `title`
    replaces the default one (the index, its first and last dates in the lake, and how many)."""
    days = data.dates(index)
    if not days:
        return None
    first, last = dt.date.fromisoformat(days[0]), dt.date.fromisoformat(days[-1])
    domain = utc_domain(first, last)
    charts = []
    for chart, table in PICTURE_CHARTS:
        rows = [r for r in getattr(data, table).records() if r["index"] == index]
        if rows:
            make = specs.INDEX_CHARTS[chart]
            if chart == "weights":
                # The picture's data is what it draws (gold's: a trailing window), so the top N
                # were ranked over those dates.
                made = specs.as_areas(specs.weights(data.top_n, ranked_over="the dates drawn"))
            else:
                made = make()
            spec = specs.with_rows(made, rows, domain)
            spec.pop("$schema")
            charts.append(spec)
    return {
        "$schema": specs.SCHEMA,
        "title": {
            "text": title or _default_title(data, index),
            "anchor": "start",
        },
        "vconcat": charts,
        "resolve": {"scale": {"color": "independent", "stroke": "independent", "shape": "independent"}},
        "config": {"background": "white"},
    }


def _default_title(data: DashboardData, index: str) -> str:
    held, first, last = data.span(index)
    text = f"{index}: {first} to {last} ({held} dates in the lake"
    if len(data.dates(index)) < held:
        text += "; older ones one point per month, the month's last date"
    return text + ")"


def index_png(data: DashboardData, index: str, scale: float = 1.0, title: str | None = None) -> bytes | None:
    spec = index_spec(data, index, title)
    if spec is None:
        return None
    return vl_convert.vegalite_to_png(spec, vl_version=specs.VEGA_LITE_VERSION, scale=scale)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown showing the PNG inline (a data: URI: the Dagster UI renders base64 images)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
