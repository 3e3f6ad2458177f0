import datetime as dt

import pytest

from b3_platform.b3.client import B3Client, B3RequestError
from b3_platform_tests.replay import Reply


def test_replay_serves_sample_and_records_request(b3_server):
    client = B3Client(b3_server.base_url, max_attempts=1)
    capture = client.fetch_portfolio_day("IBOV", requested_date=dt.date(2025, 7, 10))
    assert len(capture.portfolio.results) == 84
    assert b3_server.requests_for("IBOV")[0].headers["User-Agent"].startswith("b3_platform/")


def test_replay_520_then_ok_is_retried(b3_server):
    b3_server.script("IBOV", Reply(520))
    client = B3Client(b3_server.base_url, max_attempts=2, backoff_seconds=0)
    assert client.fetch_portfolio_day("IBOV").index == "IBOV"
    assert len(b3_server.requests_for("IBOV")) == 2


def test_replay_404_not_retried(b3_server):
    b3_server.script("IBOV", Reply(404, b"nope"))
    client = B3Client(b3_server.base_url, max_attempts=3, backoff_seconds=0)
    with pytest.raises(B3RequestError, match="HTTP 404"):
        client.fetch_portfolio_day("IBOV")
    assert len(b3_server.requests_for("IBOV")) == 1
