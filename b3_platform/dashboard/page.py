"""The dashboard page: one self-contained HTML file.

Vega, Vega-Lite and vega-embed come from vl-convert's bundle (the JavaScript shipped inside the
vl-convert-python wheel, the same libraries that render the PNGs), and the data and chart specs are
JSON in the page itself, so the page makes no request at view time: it can be opened from disk or
served from the bucket as it is.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import re
from importlib import resources

import vl_convert

from b3_platform.dashboard import specs
from b3_platform.dashboard.data import DashboardData

STATIC = resources.files("b3_platform.dashboard") / "static"


@functools.cache
def vega_bundle() -> str:
    """Vega + Vega-Lite + vega-embed as one script defining `vegaEmbed`, `vega`, `vegaLite` (built
    once per process: about a second)."""
    return vl_convert.javascript_bundle(vl_version=specs.VEGA_LITE_VERSION)


def _script_json(value) -> str:
    """JSON safe inside a <script> element: `</` cannot close it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def _static(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def render(data: DashboardData, built_at: dt.datetime) -> str:
    """The page, with `data` and every chart spec inlined."""
    parts = {
        "/*STYLE*/": _static("app.css"),
        "/*BUILT*/": html.escape(built_at.strftime("%Y-%m-%d %H:%M UTC")),
        "/*SOURCE*/": html.escape(data.source),
        "/*DATA*/": _script_json(data.to_json()),
        "/*SPECS*/": _script_json(specs.all_specs(data.top_n)),
        "/*VEGA*/": vega_bundle(),
        "/*APP*/": _static("app.js"),
    }
    # One pass: text put in (the data, the bundle) is never searched for markers again.
    pattern = re.compile("|".join(re.escape(marker) for marker in parts))
    return pattern.sub(lambda match: parts[match.group(0)], _static("page.html"))
