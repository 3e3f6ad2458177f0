"""The B3 client against servers that misbehave slowly or hugely, and credentials in its URL.

requests' timeout bounds each socket read, so a server sending a byte at a time never trips it: a
real HTTP server on 127.0.0.1 drips its body, and the client's total deadline per attempt has to
stop it. A body over the cap is refused (from its Content-Length, or while streaming)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from b3_platform.assets import raw_portfolio
from b3_platform.b3.client import B3Client, B3RequestError, public_url
from b3_platform.b3.contract import MAX_BODY_BYTES
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform.resources import LakeResource, lake_resources
from b3_platform_tests.conftest import SAMPLE_DAY, replay_b3_resource
from b3_platform_tests.replay import Reply

PASSWORD = "s3cret-pw-0815"


class MisbehavingServer:
    """Answers every GET in one of three ways: `drip` (a 2,000-byte body, one byte per 50 ms: 100 s
    in all), `declared_huge` (a Content-Length of 100 MB, then a few bytes), `streamed_huge` (no
    Content-Length, 64 KB chunks until the client hangs up, at most 200 MB)."""

    def __init__(self, mode: str) -> None:
        self.mode, self.requests, self.sent = mode, 0, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests += 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    if server.mode == "drip":
                        self.send_header("Content-Length", "2000")
                        self.end_headers()
                        for _ in range(2000):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            server.sent += 1
                            time.sleep(0.05)
                    elif server.mode == "declared_huge":
                        self.send_header("Content-Length", str(100 * 1024 * 1024))
                        self.end_headers()
                        self.wfile.write(b"{" * 1024)
                        server.sent += 1024
                    else:
                        self.send_header("Connection", "close")
                        self.end_headers()
                        chunk = b" " * 65536
                        while server.sent < 200 * 1024 * 1024:
                            self.wfile.write(chunk)
                            server.sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what the tests want

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MisbehavingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/indexProxy/indexCall"


def client(server: MisbehavingServer, **options) -> B3Client:
    config = dict(timeout=0.5, connect_timeout=1.0, backoff_seconds=0.01, max_attempts=2)
    return B3Client(server.base_url, **{**config, **options})


def fetch(b3: B3Client):
    return b3.fetch_page("GetPortfolioDay", {"index": "IBOV"}, "GetPortfolioDay IBOV")


def test_a_dripping_server_is_stopped_by_the_total_deadline_of_each_attempt():
    """Each byte comes well within the 0.5 s read timeout, so only the 1 s deadline can stop an
    attempt (the body would take 100 s); two attempts, then a message saying why."""
    with MisbehavingServer("drip") as server:
        started = time.monotonic()
        with pytest.raises(B3RequestError) as info:
            fetch(client(server, deadline=1.0))
        elapsed = time.monotonic() - started
    message = str(info.value)
    assert (
        "GetPortfolioDay IBOV: gave up after 2 attempts; last: no complete answer within the 1 s deadline"
        in message
    )
    assert 2.0 <= elapsed < 5.0, elapsed
    assert server.requests == 2
    assert server.sent < 200  # stopped early: ~20 bytes per attempt of the 2,000


def test_a_response_declaring_more_than_the_cap_is_refused_unread_and_not_retried():
    with MisbehavingServer("declared_huge") as server:
        with pytest.raises(B3RequestError) as info:
            fetch(client(server, max_response_bytes=1024 * 1024))
    assert f"the response is {100 * 1024 * 1024} bytes, more than the {1024 * 1024} allowed: refused" in str(
        info.value
    )
    assert "not retried" in str(info.value)
    assert server.requests == 1


def test_a_streamed_response_over_the_cap_is_cut_off_and_not_retried():
    with MisbehavingServer("streamed_huge") as server:
        with pytest.raises(B3RequestError) as info:
            fetch(client(server, max_response_bytes=1024 * 1024))
        time.sleep(0.2)  # let the handler see the hang-up
    assert f"the response is over {1024 * 1024} bytes, more than the {1024 * 1024} allowed" in str(info.value)
    assert server.requests == 1
    assert server.sent < 20 * 1024 * 1024  # the client hung up; it did not read 200 MB


def test_the_client_caps_responses_at_the_imports_cap_by_default():
    assert B3Client().max_response_bytes == MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://user:pass@b3.example/indexProxy/indexCall", "https://b3.example/indexProxy/indexCall"),
        ("http://token@127.0.0.1:8080/a?b=1", "http://127.0.0.1:8080/a?b=1"),
        ("https://b3.example/indexProxy/indexCall", "https://b3.example/indexProxy/indexCall"),
    ],
)
def test_public_url_drops_the_userinfo(url, public):
    assert public_url(url) == public


def test_credentials_in_the_base_url_reach_b3_but_no_sidecar_metadata_or_log(
    b3_server, today, tmp_path, caplog
):
    """B3_PLATFORM_B3_URL=http://user:password@host/…: the password is sent (HTTP basic auth), and
    stored nowhere: not in the raw sidecar, not in the run's events and metadata, not in a log line
    (a first attempt answered 500 makes the client log a retry)."""
    today(SAMPLE_DAY)
    b3_server.script("IBOV", Reply(500, b"oops"))
    lake = tmp_path / "lake"
    base_url = b3_server.base_url.replace("http://", f"http://b3user:{PASSWORD}@")
    resources = {
        **lake_resources(LakeResource(root=str(lake))),
        "b3": replay_b3_resource(b3_server, base_url=base_url),
    }
    instance = dg.DagsterInstance.ephemeral()
    with caplog.at_level("DEBUG"):
        result = dg.materialize(
            [raw_portfolio], resources=resources, partition_key=SAMPLE_DAY.isoformat(), instance=instance
        )
    assert result.success
    assert all(
        r.headers.get("Authorization", "").startswith("Basic ") for r in b3_server.requests_for("IBOV")
    )

    (capture,) = RawStore(LocalStorage(lake)).captures(SAMPLE_DAY)
    assert capture.meta["url"].startswith(b3_server.base_url + "/GetPortfolioDay/")
    sidecars = b"".join(p.read_bytes() for p in lake.rglob("*.meta.json"))
    events = "\n".join(serialize_value(e) for e in instance.all_logs(result.run_id))
    metadata = json.dumps(
        {
            k: str(v.value)
            for k, v in result.asset_materializations_for_node("raw_portfolio")[0].metadata.items()
        }
    )
    assert b3_server.base_url in metadata  # the URL is recorded, without its credentials
    assert "retry 1/2" in caplog.text
    for text in (sidecars.decode(), events, metadata, caplog.text):
        assert PASSWORD not in text and "b3user" not in text
