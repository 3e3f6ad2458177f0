"""The charts, as Vega-Lite specifications (JSON), shared by the page and the PNG pictures.

Every chart reads a named data set, `rows`: the page feeds it the rows of the chosen index and date
range; `with_rows` inlines rows for rendering without a browser (vl-convert). The x axis is a UTC
time scale over calendar dates, so a stretch the lake lacks takes its real width: stacked weights
are rectangles from each date to the next trading day (a missing date is an empty stretch), and
lines are split by `run` (data.Calendar.stretches) so they never bridge a gap.
"""

from __future__ import annotations

import copy
from typing import Any

from b3_platform.dashboard.queries import DEFAULT_TOP_N, OTHERS

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
#: vl-convert renders with this Vega-Lite version; the page's JavaScript bundle is built for it.
VEGA_LITE_VERSION = "6.4"
ENTERED, EXITED = "#2e7d32", "#c62828"
OTHERS_COLOR = "#c8c8c8"
#: Distinct colours for the top-N bands (Tableau 20, darker shades first): N may be up to 20.
PALETTE = [
    "#4c78a8",
    "#f58518",
    "#e45756",
    "#72b7b2",
    "#54a24b",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#79706e",
    "#9ecae9",
    "#ffbf79",
    "#ff9d98",
    "#88d27a",
    "#83bcb6",
    "#b6992d",
    "#d6a5c9",
    "#fcbfd2",
    "#d8b5a5",
    "#bab0ac",
]
WIDTH, HEIGHT = 760, 220

Spec = dict[str, Any]


def _x(title: str | None = None) -> dict:
    return {"field": "date", "type": "temporal", "scale": {"type": "utc"}, "title": title}


def _date_tooltip() -> dict:
    return {
        "field": "date",
        "type": "temporal",
        "timeUnit": "utcyearmonthdate",
        "format": "%Y-%m-%d",
        "title": "date",
    }


def _weight_tooltip(field: str = "weight", title: str = "weight (%)") -> dict:
    return {"field": field, "type": "quantitative", "format": ".3f", "title": title}


def _base(title: str, height: int = HEIGHT) -> Spec:
    return {
        "$schema": SCHEMA,
        "title": {"text": title, "anchor": "start", "fontSize": 13},
        "width": WIDTH,
        "height": height,
        "data": {"name": "rows"},
    }


def stacked(title: str, series: str, series_title: str, scale: dict) -> Spec:
    """Weights stacked per date, one band per `series`, ordered by `rank` (the rows carry it)."""
    colour = {
        "field": series,
        "type": "nominal",
        "title": series_title,
        "sort": {"field": "rank", "op": "min"},
        "scale": scale,
        "legend": {"columns": 1, "symbolType": "square", "labelLimit": 180},
    }
    return {
        **_base(title, 260),
        "transform": [
            {
                "stack": "weight",
                "groupby": ["date"],
                "sort": [{"field": "rank", "order": "ascending"}],
                "as": ["y0", "y1"],
            }
        ],
        # Clipped: the last date's band runs to the next trading day, past the chosen range.
        "mark": {"type": "rect", "strokeWidth": 1, "clip": True},
        "encoding": {
            "x": _x(),
            "x2": {"field": "end"},
            "y": {
                "field": "y0",
                "type": "quantitative",
                "title": "weight (%)",
                "scale": {"domain": [0, 100]},
            },
            "y2": {"field": "y1"},
            "color": colour,
            # The same colour as a 1-pixel outline keeps a lone date visible on a long axis.
            "stroke": colour,
            "tooltip": [
                _date_tooltip(),
                {"field": series, "type": "nominal", "title": series_title},
                _weight_tooltip(),
            ],
        },
    }


def as_areas(spec: Spec) -> Spec:
    """A stacked chart drawn as areas, one per (band, stretch of consecutive dates), and rectangles
    only for lone dates: what a PNG of years draws (~15 paths instead of a rectangle per band and
    date, which vl-convert takes seconds over). The page keeps the rectangles: exact tooltips."""
    spec = copy.deepcopy(spec)
    encoding = spec.pop("encoding")
    spec["transform"].append(
        {"joinaggregate": [{"op": "distinct", "field": "date", "as": "run_dates"}], "groupby": ["run"]}
    )
    shared = {k: v for k, v in encoding.items() if k not in ("x2", "stroke", "tooltip")}
    spec["encoding"] = shared
    spec["layer"] = [
        {
            "transform": [{"filter": "datum.run_dates > 1"}],
            "mark": {"type": "area", "interpolate": "step-after", "clip": True},
            "encoding": {"detail": {"field": "run", "type": "nominal"}},
        },
        {
            "transform": [{"filter": "datum.run_dates == 1"}],
            "mark": spec.pop("mark"),
            "encoding": {"x2": encoding["x2"], "stroke": {**encoding["stroke"], "legend": None}},
        },
    ]
    return spec


def weights(top_n: int = DEFAULT_TOP_N, ranked_over: str = "the lake's history") -> Spec:
    """The top-N tickers in distinct colours, then "Others" (ranked last) in grey; `ranked_over`
    says which dates the top N were chosen over (the data's: the page loads the whole history)."""
    palette = PALETTE[:top_n] + [OTHERS_COLOR]
    return stacked(
        f"Weight of each component (the {top_n} heaviest over {ranked_over}; the rest as {OTHERS})",
        "series",
        "ticker",
        {"range": palette},
    )


def sectors() -> Spec:
    return stacked("Sector weights (segment-2 captures only)", "sector", "sector", {"scheme": "tableau20"})


def lines(title: str, fields: dict[str, str], y_title: str, fmt: str) -> Spec:
    """One line per field (named by `fields`' values) over time, split at gaps, with a point on
    every date (a lone date is a point)."""
    encoding: dict[str, Any] = {
        "x": _x(),
        "y": {"field": "value", "type": "quantitative", "title": y_title, "scale": {"zero": False}},
        "detail": {"field": "run", "type": "nominal"},
        "tooltip": [
            _date_tooltip(),
            {"field": "measure", "type": "nominal", "title": "measure"},
            {"field": "value", "type": "quantitative", "format": fmt, "title": y_title},
        ],
    }
    if len(fields) > 1:
        encoding["color"] = {
            "field": "measure",
            "type": "nominal",
            "title": None,
            "legend": {"orient": "top"},
        }
    names = ", ".join(f"{field!r}: {label!r}" for field, label in fields.items())
    return {
        **_base(title, 170),
        "transform": [
            {"fold": list(fields), "as": ["field", "value"]},
            {"calculate": f"{{{names}}}[datum.field]", "as": "measure"},
        ],
        "mark": {"type": "line", "point": {"size": 28}, "strokeWidth": 1.6},
        "encoding": encoding,
    }


def concentration() -> Spec:
    return lines(
        "Concentration: weight of the 5 and 10 largest components",
        {"top5_weight": "top 5", "top10_weight": "top 10"},
        "weight (%)",
        ".3f",
    )


def hhi() -> Spec:
    return lines("Herfindahl–Hirschman index (Σ weight², 0–10,000)", {"hhi": "HHI"}, "HHI", ".6f")


def components() -> Spec:
    return lines("Number of components", {"components": "components"}, "components", "d")


def events() -> Spec:
    """Entries and exits: a marker per ticker on the date it entered or left, its ticker beside it."""
    color = {
        "field": "membership",
        "type": "nominal",
        "title": None,
        "scale": {"domain": ["entered", "exited"], "range": [ENTERED, EXITED]},
        "legend": {"orient": "top"},
    }
    encoding = {
        "x": _x(),
        "y": {"field": "membership", "type": "nominal", "title": None, "sort": ["entered", "exited"]},
        "yOffset": {"field": "ticker", "type": "nominal"},
        "color": color,
        "tooltip": [
            _date_tooltip(),
            {"field": "membership", "type": "nominal"},
            {"field": "ticker", "type": "nominal"},
            {"field": "company", "type": "nominal"},
            _weight_tooltip(),
        ],
    }
    return {
        **_base("Entries and exits (against the previous trading day)", 150),
        "encoding": encoding,
        "layer": [
            {
                "mark": {"type": "point", "filled": True, "size": 70},
                "encoding": {
                    "shape": {
                        "field": "membership",
                        "type": "nominal",
                        "scale": {"domain": ["entered", "exited"], "range": ["triangle-up", "triangle-down"]},
                        "title": None,
                        "legend": {"orient": "top"},
                    }
                },
            },
            {
                "mark": {"type": "text", "align": "left", "dx": 7, "fontSize": 10},
                "encoding": {"text": {"field": "ticker"}},
            },
        ],
    }


def compare_lines(title: str, field: str, y_title: str, fmt: str) -> Spec:
    """One line per index over time (the overview), split at each index's gaps."""
    return {
        **_base(title, 200),
        "transform": [{"calculate": "datum.index + ':' + datum.run", "as": "stretch"}],
        "mark": {"type": "line", "point": {"size": 24}, "strokeWidth": 1.6},
        "encoding": {
            "x": _x(),
            "y": {"field": field, "type": "quantitative", "title": y_title, "scale": {"zero": False}},
            "color": {
                "field": "index",
                "type": "nominal",
                "title": "index",
                "scale": {"scheme": "tableau10"},
            },
            "detail": {"field": "stretch", "type": "nominal"},
            "tooltip": [
                _date_tooltip(),
                {"field": "index", "type": "nominal"},
                {"field": field, "type": "quantitative", "format": fmt, "title": y_title},
            ],
        },
    }


def overview_components() -> Spec:
    return compare_lines("Components per index", "components", "components", "d")


def overview_top10() -> Spec:
    return compare_lines(
        "Weight of the 10 largest components per index", "top10_weight", "top-10 weight (%)", ".3f"
    )


def overview_hhi() -> Spec:
    return compare_lines("HHI per index", "hhi", "HHI", ".6f")


def overlap() -> Spec:
    """Index × index on the newest date both are in the lake: the row index's weight in tickers the
    column index also holds, and how many those are."""
    encoding = {
        "x": {
            "field": "index_b",
            "type": "nominal",
            "title": "also in",
            "axis": {"orient": "top", "labelAngle": 0},
        },
        "y": {"field": "index_a", "type": "nominal", "title": "weight of"},
    }
    return {
        "$schema": SCHEMA,
        "title": {
            "text": "Overlap: weight of the row index in tickers the column index also holds",
            "anchor": "start",
            "fontSize": 13,
        },
        "data": {"name": "rows"},
        "width": {"step": 90},
        "height": {"step": 42},
        "encoding": encoding,
        "layer": [
            {
                "mark": "rect",
                "encoding": {
                    "color": {
                        "field": "shared_weight_a",
                        "type": "quantitative",
                        "title": "%",
                        "scale": {"domain": [0, 100], "scheme": "blues"},
                    },
                    "tooltip": [
                        {"field": "index_a", "title": "index"},
                        {"field": "index_b", "title": "also in"},
                        {"field": "date", "title": "date"},
                        {"field": "members_a", "title": "members"},
                        {"field": "shared", "title": "shared"},
                        _weight_tooltip("shared_weight_a", "shared weight (%)"),
                    ],
                },
            },
            {
                "mark": {"type": "text", "fontSize": 11},
                "encoding": {
                    "text": {"field": "label"},
                    "color": {
                        "condition": {"test": "datum.shared_weight_a > 60", "value": "white"},
                        "value": "black",
                    },
                },
            },
        ],
    }


#: The page's charts by element id: per index, then the overview.
INDEX_CHARTS = {
    "weights": weights,
    "sectors": sectors,
    "concentration": concentration,
    "hhi": hhi,
    "components": components,
    "events": events,
}
OVERVIEW_CHARTS = {
    "overview-components": overview_components,
    "overview-top10": overview_top10,
    "overview-hhi": overview_hhi,
    "overlap": overlap,
}


def all_specs(top_n: int = DEFAULT_TOP_N) -> dict[str, Spec]:
    made = {name: make() for name, make in {**INDEX_CHARTS, **OVERVIEW_CHARTS}.items()}
    return {**made, "weights": weights(top_n)}


def with_rows(spec: Spec, rows: list[dict], domain: dict | None = None) -> Spec:
    """A copy of `spec` with its rows inlined (and its time axis spanning `domain`, when given)."""
    spec = copy.deepcopy(spec)
    spec["data"] = {"values": rows}
    if domain and "x" in spec.get("encoding", {}) and spec["encoding"]["x"].get("type") == "temporal":
        spec["encoding"]["x"]["scale"] = {**spec["encoding"]["x"]["scale"], "domain": domain}
    return spec
