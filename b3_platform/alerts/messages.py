"""What an alert says, Dagster-free: a subject line and a plain-text body that name the date, the
indices or the asset, what failed, and a link into the UI.

The same text goes to every channel (SNS, Slack, e-mail), so whoever reads it on a phone at 10:00
knows which day is at risk and where to click without opening anything else. B3 serves a day's
portfolio only until the next trading day: a missed capture is the one failure that cannot be
redone later, so its message says until when it can still be captured.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

PREFIX = "[b3_platform]"
#: SNS refuses subjects longer than 100 characters; the other channels take the same subject.
MAX_SUBJECT = 100
#: At most this many characters of an error message in an alert: the run's page has the rest.
MAX_ERROR_CHARS = 600


@dataclass(frozen=True)
class Alert:
    subject: str
    body: str
    link: str

    def text(self) -> str:
        """Subject and body as one message (Slack, which has no subject)."""
        return f"{self.subject}\n{self.body}"


@dataclass(frozen=True)
class FailedStep:
    step: str
    error: str


@dataclass(frozen=True)
class FailedCheck:
    asset: str
    check: str
    #: the dates the check failed on (a range run names each failing date)
    dates: tuple[str, ...]
    #: the check's own description of what is wrong (its metadata), shortened
    problems: str
    #: the blocking rules that failed, when the check reports several (the `failed_rules` metadata
    #: of its ERROR evaluations; warning rules that failed beside them are in `warned_rules`)
    rules: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """`asset.check`, or `asset.rule` for a check that reports several rules: the rule is
        what a reader acts on (the check only groups the asset's rules), and the subject has no
        room for both."""
        return f"{self.asset}.{', '.join(self.rules) or self.check}"


def _subject(text: str) -> str:
    subject = f"{PREFIX} {text}"
    return subject if len(subject) <= MAX_SUBJECT else subject[: MAX_SUBJECT - 1] + "…"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _join(url: str, path: str) -> str:
    return url.rstrip("/") + path


def run_link(ui_url: str, run_id: str) -> str:
    return _join(ui_url, f"/runs/{run_id}")


def asset_link(ui_url: str, asset: str, view: str) -> str:
    return _join(ui_url, f"/assets/{quote(asset)}?view={view}")


def describe_dates(partition: str | None, range_start: str | None, range_end: str | None) -> str:
    """The run's date(s) as a run's tags give them: one partition, or a range."""
    if partition:
        return partition
    if range_start and range_end:
        return range_start if range_start == range_end else f"{range_start}...{range_end}"
    return "no date (unpartitioned)"


def run_failed(
    *,
    ui_url: str,
    run_id: str,
    job: str,
    dates: str,
    assets: Sequence[str],
    steps: Sequence[FailedStep],
    reason: str,
) -> Alert:
    link = run_link(ui_url, run_id)
    lines = [
        f"Run {run_id} of job {job} failed.",
        f"Date: {dates}",
        f"Assets: {', '.join(assets) if assets else 'the whole job'}",
    ]
    if steps:
        lines += [f"Failed step {s.step}: {_short(s.error)}" for s in steps]
    else:
        lines.append(f"What failed: {_short(reason)}")
    lines.append(f"Open: {link}")
    return Alert(_subject(f"run failed: {job} {dates}"), "\n".join(lines), link)


def check_failed(*, ui_url: str, run_id: str, job: str, checks: Sequence[FailedCheck]) -> Alert:
    """A blocking check failed: the date was written but the layers below it did not run."""
    first = checks[0]
    link = asset_link(ui_url, first.asset, "checks")
    dates = sorted({d for c in checks for d in c.dates})
    lines = [
        f"Blocking check failed in run {run_id} of job {job}: the layers below did not run for "
        f"{', '.join(dates) if dates else 'the run'}."
    ]
    for c in checks:
        lines.append(
            f"Asset {c.asset}, check {c.check}"
            + (f", rules failed {', '.join(c.rules)}" if c.rules else "")
            + f", date {', '.join(c.dates) or 'n/a'}"
            + (f": {_short(c.problems)}" if c.problems else "")
        )
    lines += [f"Open: {link}", f"Run: {run_link(ui_url, run_id)}"]
    what = first.name + (f" (+{len(checks) - 1} more)" if len(checks) > 1 else "")
    return Alert(_subject(f"blocking check failed: {what} {', '.join(dates)}"), "\n".join(lines), link)


def missed_capture(
    *, ui_url: str, day: dt.date, deadline: str, missing: Sequence[str], captured: Sequence[str]
) -> Alert:
    link = asset_link(ui_url, "raw_portfolio", "partitions")
    lines = [
        f"Trading day {day}: no capture of {', '.join(missing)} by {deadline} São Paulo time.",
        f"Captured so far: {', '.join(captured) if captured else 'nothing'}.",
        "B3 serves this portfolio only until the next trading day: capture it today (materialize "
        f"raw_portfolio for {day}) or it is lost.",
        f"Open: {link}",
    ]
    return Alert(
        _subject(f"missed capture {day}: {', '.join(missing)} (by {deadline})"), "\n".join(lines), link
    )
