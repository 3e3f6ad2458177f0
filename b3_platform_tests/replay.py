"""A real HTTP server on 127.0.0.1 that replays B3 sample responses and misbehaves on demand.

Tests point B3Client (or the `b3` resource) at `server.base_url`; each request is decoded like B3
would (base64 JSON in the path) and answered from a per-index script of behaviours, then from the
index's default body. Every request is recorded, so tests assert retries and headers.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "demo_data"


def sample_bytes(relative: str) -> bytes:
    return (SAMPLES / relative).read_bytes()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    delay: float = 0.0  # seconds to wait before answering (a hang when longer than the timeout)


@dataclass
class Request:
    path: str
    method: str
    params: dict | None
    headers: dict
    #: The B3 method called (GetPortfolioDay, GetStockIndex, GetTheoricalPortfolio, …); "" for a path
    #: that names none.
    b3_method: str = "GetPortfolioDay"


@dataclass
class ReplayServer:
    defaults: dict[str, bytes] = field(default_factory=dict)
    pages: dict[str, dict[int, bytes]] = field(default_factory=dict)
    scripts: dict[str, deque] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    #: Other indexProxy methods (GetTheoricalPortfolio, GetQuartelyPreview): bodies and scripts per
    #: (method, index). Without either, an index served for GetPortfolioDay answers with that day
    #: portfolio in the announced shape (`as_announced`); any other gets B3's null results.
    method_defaults: dict[tuple[str, str], bytes] = field(default_factory=dict)
    method_scripts: dict[tuple[str, str], deque] = field(default_factory=dict)

    def start(self) -> "ReplayServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                reply = server._answer(self)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/indexProxy/indexCall"

    def reset(self) -> None:
        self.defaults.clear(), self.pages.clear(), self.scripts.clear(), self.requests.clear()
        self.method_defaults.clear(), self.method_scripts.clear()

    def serve(self, index: str, body: bytes) -> None:
        """Answer every request for `index` with `body` (after any scripted replies)."""
        self.defaults[index] = body

    def serve_pages(self, index: str, bodies: dict[int, bytes]) -> None:
        self.pages[index] = bodies

    def script(self, index: str, *replies: Reply) -> None:
        """Answer the next requests for `index` with these replies, in order."""
        self.scripts.setdefault(index, deque()).extend(replies)

    def serve_method(self, method: str, index: str, body: bytes) -> None:
        """Answer every `method` request for `index` with `body` (after any scripted replies)."""
        self.method_defaults[(method, index)] = body

    def script_method(self, method: str, index: str, *replies: Reply) -> None:
        self.method_scripts.setdefault((method, index), deque()).extend(replies)

    def requests_for(self, index: str, method: str = "GetPortfolioDay") -> list[Request]:
        return [
            r for r in self.requests if r.params and r.params.get("index") == index and r.b3_method == method
        ]

    def _answer(self, handler: BaseHTTPRequestHandler) -> Reply:
        match = re.match(r"^/indexProxy/indexCall/([A-Za-z]+)/([A-Za-z0-9+/=]+)$", handler.path)
        params = None
        if match:
            try:
                params = json.loads(base64.b64decode(match.group(2)))
            except ValueError:
                params = None
        b3_method = match.group(1) if match else ""
        self.requests.append(Request(handler.path, handler.command, params, dict(handler.headers), b3_method))
        if params is None:
            return Reply(404, b"<html><body>Not Found</body></html>", "text/html")
        if b3_method == STOCK_INDEX:
            return self._answer_stock_index()
        index = params.get("index")
        if b3_method != "GetPortfolioDay":
            return self._answer_method(b3_method, index)
        if self.scripts.get(index):
            return self.scripts[index].popleft()
        if index in self.pages:
            body = self.pages[index].get(params.get("pageNumber", 1))
            return Reply(body=body) if body is not None else Reply(404, b"{}")
        if index in self.defaults:
            return Reply(body=self.defaults[index])
        return Reply(
            body=json.dumps(
                {
                    "page": {"pageNumber": 1, "pageSize": 9999, "totalRecords": 0, "totalPages": None},
                    "header": None,
                    "results": None,
                }
            ).encode()
        )

    def _answer_method(self, method: str, index: str) -> Reply:
        key = (method, index)
        if self.method_scripts.get(key):
            return self.method_scripts[key].popleft()
        if key in self.method_defaults:
            return Reply(body=self.method_defaults[key])
        if index in self.defaults:
            return Reply(body=as_announced(self.defaults[index]))
        return Reply(body=json.dumps({"page": {"pageNumber": 1}, "header": None, "results": None}).encode())

    # --- GetStockIndex: served, scripted and recorded under the key STOCK_INDEX --------------------

    def requests_for_method(self, b3_method: str) -> list[Request]:
        return [r for r in self.requests if r.b3_method == b3_method]

    def _answer_stock_index(self) -> Reply:
        """Scripted replies first, then the served listing; not served: 404, as for an unknown path."""
        if self.scripts.get(STOCK_INDEX):
            return self.scripts[STOCK_INDEX].popleft()
        if STOCK_INDEX in self.defaults:
            return Reply(body=self.defaults[STOCK_INDEX])
        return Reply(404, b"<html><body>Not Found</body></html>", "text/html")


def as_announced(day_body: bytes) -> bytes:
    """A GetPortfolioDay body in the shape of GetTheoricalPortfolio's (header of totals only, rows
    {cod, asset, type, theoricalQty, part, cont}, sorted by cod), as B3 announces a quadrimester."""
    data = json.loads(day_body)
    header = {k: data["header"][k] for k in ("part", "theoricalQty", "reductor")}
    rows = sorted(data["results"], key=lambda r: r["cod"])
    results = [
        {k: r[k] for k in ("cod", "asset", "type", "theoricalQty", "part")} | {"cont": n}
        for n, r in enumerate(rows, start=1)
    ]
    page = {"pageNumber": 1, "pageSize": 9999, "totalRecords": len(results), "totalPages": 1}
    return json.dumps({"page": page, "header": header, "results": results}, ensure_ascii=False).encode()


#: The key `serve` and `script` take for GetStockIndex (which names no index): never a B3 index code.
STOCK_INDEX = "GetStockIndex"
STOCK_INDEX_SAMPLE = "GetStockIndex/2025-04-07_vcr.json"


def listing_with_indices(body: bytes, indices_by_ticker: dict[str, list[str]]) -> bytes:
    """A GetStockIndex body whose stocks belong to other indices (a later, synthetic listing)."""

    def change(d):
        for row in d["results"]:
            if row["code"] in indices_by_ticker:
                row["indexes"] = ",".join(indices_by_ticker[row["code"]])

    return with_changes(body, change)


def listing_without_index(body: bytes, code: str) -> bytes:
    """The listing with `code` removed from every stock (B3 dropped the index)."""

    def change(d):
        for row in d["results"]:
            row["indexes"] = ",".join(c for c in row["indexes"].split(",") if c != code)

    return with_changes(body, change)


# --- misbehaving bodies, derived from a real sample -----------------------------------------------

HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Request Rejected</title></head>"
    b"<body>The requested URL was rejected. Please consult with your administrator.</body></html>"
)


def truncated(body: bytes) -> bytes:
    return body[: len(body) // 2]


def json_in_a_string(body: bytes) -> bytes:
    return json.dumps(body.decode("utf-8")).encode("utf-8")


def with_changes(body: bytes, change) -> bytes:
    data = json.loads(body)
    change(data)
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def results_null(body: bytes) -> bytes:
    return with_changes(body, lambda d: d.__setitem__("results", None))


def empty_results(body: bytes) -> bytes:
    return with_changes(body, lambda d: d.__setitem__("results", []))


def with_header_date(body: bytes, date_text: str) -> bytes:
    return with_changes(body, lambda d: d["header"].__setitem__("date", date_text))


def without_field(body: bytes, row: int, field_name: str) -> bytes:
    return with_changes(body, lambda d: d["results"][row].pop(field_name))


def _en_us_number(text: str | None) -> str | None:
    if text is None:
        return None
    return text.replace(".", "\0").replace(",", ".").replace("\0", ",")


def to_en_us(body: bytes) -> bytes:
    """The same response as B3 writes it for language=en-us: US numbers and MM/DD/YY dates."""

    def change(d):
        h = d["header"]
        day, month, year = h["date"].split("/")
        h["date"] = f"{month}/{day}/{year}"
        h["text"], h["textReductor"] = "Total Theorethical Quantity", "Reductor"
        for key in ("part", "partAcum", "reductor", "theoricalQty"):
            h[key] = _en_us_number(h[key])
        for r in d["results"]:
            for key in ("part", "partAcum", "theoricalQty"):
                r[key] = _en_us_number(r[key])

    return with_changes(body, change)


def split_into_pages(body: bytes, page_size: int) -> dict[int, bytes]:
    data = json.loads(body)
    rows = data["results"]
    total_pages = -(-len(rows) // page_size)
    pages = {}
    for number in range(1, total_pages + 1):
        page = dict(data)
        page["page"] = {
            "pageNumber": number,
            "pageSize": page_size,
            "totalRecords": len(rows),
            "totalPages": total_pages,
        }
        page["results"] = rows[(number - 1) * page_size : number * page_size]
        pages[number] = json.dumps(page, ensure_ascii=False).encode("utf-8")
    return pages
