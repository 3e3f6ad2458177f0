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
import importlib.metadata
import json
import logging
import os
import re
import tempfile
from importlib import resources
from pathlib import Path

import vl_convert

from b3_platform.dashboard import specs
from b3_platform.dashboard.data import DashboardData

STATIC = resources.files("b3_platform.dashboard") / "static"
log = logging.getLogger(__name__)


def bundle_cache_file() -> Path:
    """Where the built bundle is kept between processes: the user's cache folder (XDG_CACHE_HOME,
    else ~/.cache), named for the vl-convert release and Vega-Lite version that built it, so an
    upgrade builds a new one."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    version = importlib.metadata.version("vl-convert-python")
    return root / "b3_platform" / f"vega-bundle-{version}-{specs.VEGA_LITE_VERSION}.js"


@functools.cache
def vega_bundle() -> str:
    """Vega + Vega-Lite + vega-embed as one script defining `vegaEmbed`, `vega`, `vegaLite`.

    Building it takes vl-convert about 1.5-2 s of CPU, in every process that draws a page (each
    dashboard run), for the same text each time: it is built once per vl-convert release and kept
    in the user's cache folder (written whole or not at all). An unwritable cache folder only
    means building it each time."""
    cached = bundle_cache_file()
    try:
        return cached.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vl_convert.javascript_bundle(vl_version=specs.VEGA_LITE_VERSION)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=cached.parent, delete=False) as tmp:
            tmp.write(bundle)
        os.replace(tmp.name, cached)
    except OSError as exc:
        log.debug("the Vega bundle is not cached (%s): it is built again next time", exc)
    return bundle


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
