"""B3's "Carteira do Dia" CSV download (`IBOVDia_DD-MM-YY.csv`, GetDownloadPortfolioDay).

ISO-8859-1, `;`-separated, LF or CRLF:
    IBOV - Carteira do Dia 10/07/25
    Código;Ação;Tipo;Qtde. Teórica;Part. (%)
    ALOS3;ALLOS;ON      NM;476.976.044;0,493;
    ...
    Quantidade Teórica Total;;;91.922.324.640;100,000
    Redutor;;;15.438.607,05630450
It carries the same header values as the JSON (no page, no sector), so it becomes the same
`Portfolio` and flows through the same parse rules.
"""

from __future__ import annotations

import datetime as dt
import re

from b3_platform.b3.contract import Component, ContractError, Header, Portfolio
from b3_platform.b3.parse import ParseError, parse_date

ENCODING = "iso-8859-1"
_TITLE = re.compile(r"^([A-Z][A-Z0-9]{3}) - Carteira do Dia (\d{2}/\d{2}/\d{2,4})$")
_B3_TITLE_LIKE = re.compile(r"^[A-Z][A-Z0-9]{3} - ")
_COLUMNS = ["Código", "Ação", "Tipo", "Qtde. Teórica", "Part. (%)"]


def looks_like_portfolio_csv(body: bytes) -> bool:
    first_line = body[:200].split(b"\n", 1)[0].decode(ENCODING, "replace").strip()
    return bool(_TITLE.match(first_line))


def read_portfolio_csv(body: bytes, *, requested_date: dt.date | None = None) -> Portfolio:
    """Parse a Carteira do Dia CSV; every deviation from the layout is a ContractError."""
    lines = [line.rstrip("\r") for line in body.decode(ENCODING).split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    index = None

    def fail(reason: str, line_no: int | None = None):
        at = f" (line {line_no})" if line_no else ""
        raise ContractError(f"CSV download{at}: {reason}", index=index, requested_date=requested_date)

    if len(lines) < 5:
        fail(f"only {len(lines)} lines; expected title, column header, rows and 2 footer lines")
    title = _TITLE.match(lines[0].strip())
    if not title:
        # Quoted only when it reads like a B3 title ("IBOV - Carteira Teórica …"): a file whose first
        # line is no B3 title may be anything (a link to /etc/passwd), and is not echoed.
        first = repr(lines[0][:80]) if _B3_TITLE_LIKE.match(lines[0]) else "the first line"
        fail(f"{first} is not '<INDEX> - Carteira do Dia DD/MM/YY': not a Carteira do Dia download", 1)
    index = title.group(1)
    try:
        reference_date = parse_date(title.group(2), "pt-br", field="title date")
    except ParseError as exc:
        fail(str(exc), 1)
    columns = [c.strip() for c in lines[1].split(";")]
    if columns[: len(_COLUMNS)] != _COLUMNS or any(columns[len(_COLUMNS) :]):
        fail(f"column header {lines[1]!r} is not {';'.join(_COLUMNS)}", 2)

    total_line, reductor_line = lines[-2].split(";"), lines[-1].split(";")
    if not total_line[0].startswith("Quantidade Te") or len(total_line) < 5:
        fail(f"footer {lines[-2]!r} is not 'Quantidade Teórica Total;;;<qty>;<part>'", len(lines) - 1)
    if reductor_line[0] != "Redutor" or len(reductor_line) < 4:
        fail(f"footer {lines[-1]!r} is not 'Redutor;;;<reductor>'", len(lines))

    results = []
    for line_no, line in enumerate(lines[2:-2], start=3):
        fields = line.split(";")
        # Data rows end with ';': five values and one empty trailing field. An empty fifth field
        # is a row missing a column whose trailing ';' would otherwise pass for the fifth value.
        if len(fields) not in (5, 6) or (len(fields) == 6 and fields[5].strip()) or not fields[4].strip():
            fail(f"row {line!r} does not have the 5 columns {';'.join(_COLUMNS)}", line_no)
        cod, asset, type_code, qty, part = (f.strip() if i != 2 else f for i, f in enumerate(fields[:5]))
        if not cod or not asset:
            fail(f"row {line!r} has no ticker or company", line_no)
        results.append(
            Component(
                segment=None,
                cod=cod,
                asset=asset,
                type=type_code.rstrip(),
                part=part,
                partAcum=None,
                theoricalQty=qty,
            )
        )
    if not results:
        fail("no component rows between the column header and the footer")

    if requested_date is not None and reference_date != requested_date:
        fail(f"the download is the portfolio of {reference_date}, not {requested_date}")
    header = Header(
        date=title.group(2),
        text=total_line[0],
        part=total_line[4].strip(),
        partAcum=None,
        textReductor=reductor_line[0],
        reductor=reductor_line[3].strip(),
        theoricalQty=total_line[3].strip(),
    )
    return Portfolio(
        header=header,
        results=results,
        language="pt-br",
        reference_date=reference_date,
        source_format="csv",
        total_records=None,
        index=index,
    )
