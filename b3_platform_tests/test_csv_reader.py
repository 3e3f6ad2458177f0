"""The "Carteira do Dia" CSV reader on every real download in demo_data/csv, and on broken copies
built in tmp_path from their bytes (the samples themselves are never touched)."""

from __future__ import annotations

import datetime as dt

import pytest

from b3_platform.b3.contract import ContractError
from b3_platform.b3.csv_reader import looks_like_portfolio_csv, read_portfolio_csv
from b3_platform_tests.replay import SAMPLES

CSV_DIR = SAMPLES / "csv"

#: file -> (index, title date, component rows, footer total, footer reductor), from demo_data/PROVENANCE.md
#: and the files' last two lines.
EXPECTED = {
    "IBOVDia_02-10-23.csv": ("IBOV", dt.date(2023, 10, 2), 86, "98.476.454.882", "17.486.930,35034135"),
    "IBOVDia_03-10-25.csv": ("IBOV", dt.date(2025, 10, 3), 82, "90.587.133.892", "15.019.274,20202473"),
    "IBOVDia_06-01-25.csv": ("IBOV", dt.date(2025, 1, 6), 87, "98.370.249.996", "16.279.911,48376400"),
    "IBOVDia_26-03-21.csv": ("IBOV", dt.date(2021, 3, 26), 82, "76.862.590.858", "18.296.80337677573"),
    "IBOV_2025-07-10.csv": ("IBOV", dt.date(2025, 7, 10), 84, "91.922.324.640", "15.438.607,05630450"),
    "IBOV_2025-07-11.csv": ("IBOV", dt.date(2025, 7, 11), 84, "91.922.324.640", "15.438.607,05630450"),
    "IBRADia_01-07-21.csv": ("IBRA", dt.date(2021, 7, 1), 178, "102.547.598.423", "565.131.573,48994190"),
    "IBRADia_22-06-21.csv": ("IBRA", dt.date(2021, 6, 22), 179, "101.889.008.898", "568.578.828,97373784"),
    "IBRADia_24-06-21.csv": ("IBRA", dt.date(2021, 6, 24), 179, "101.889.008.898", "566.470.327,33334266"),
    "IBXXDia_20-06-25.csv": ("IBXX", dt.date(2025, 6, 20), 97, "97.512.712.042", "38.326.543,39575764"),
}
CRLF_FILES = {
    "IBOVDia_06-01-25.csv",
    "IBRADia_01-07-21.csv",
    "IBRADia_22-06-21.csv",
    "IBRADia_24-06-21.csv",
    "IBXXDia_20-06-25.csv",
}

SAMPLE = "IBOV_2025-07-10.csv"


def test_expected_table_covers_every_demo_csv():
    assert sorted(p.name for p in CSV_DIR.iterdir()) == sorted(EXPECTED)


def _data_lines(body: bytes) -> list[bytes]:
    lines = [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]
    return lines[2:-2]  # title, column header ... two footer lines


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_demo_csv_parses(name):
    body = (CSV_DIR / name).read_bytes()
    index, day, rows, total, reductor = EXPECTED[name]
    assert looks_like_portfolio_csv(body)
    portfolio = read_portfolio_csv(body)
    assert portfolio.index == index
    assert portfolio.reference_date == day
    assert portfolio.source_format == "csv"
    assert portfolio.language == "pt-br"
    assert portfolio.total_records is None
    assert not portfolio.has_sector
    assert len(portfolio.results) == rows == len(_data_lines(body))
    assert portfolio.header.theoricalQty == total
    assert portfolio.header.reductor == reductor
    assert portfolio.header.part == "100,000"
    assert portfolio.header.text.startswith("Quantidade Te")
    assert portfolio.header.textReductor == "Redutor"
    # Rows in file order, values as B3 wrote them (ISO-8859-1 decoded).
    first = _data_lines(body)[0].decode("iso-8859-1").split(";")
    row = portfolio.results[0]
    assert (row.cod, row.asset, row.type, row.theoricalQty, row.part) == (
        first[0],
        first[1],
        first[2].rstrip(),
        first[3],
        first[4],
    )
    assert row.segment is None and row.partAcum is None


def test_sample_rows_in_detail():
    portfolio = read_portfolio_csv((CSV_DIR / SAMPLE).read_bytes())
    first = portfolio.results[0]
    assert (first.cod, first.asset, first.type, first.theoricalQty, first.part) == (
        "ALOS3",
        "ALLOS",
        "ON      NM",
        "476.976.044",
        "0,493",
    )
    assert portfolio.header.date == "10/07/25"
    assert portfolio.header.text == "Quantidade Teórica Total"  # decoded from ISO-8859-1


def test_requested_date_must_match_the_title():
    body = (CSV_DIR / SAMPLE).read_bytes()
    assert read_portfolio_csv(body, requested_date=dt.date(2025, 7, 10)).reference_date == dt.date(
        2025, 7, 10
    )
    with pytest.raises(ContractError, match="portfolio of 2025-07-10, not 2025-07-11"):
        read_portfolio_csv(body, requested_date=dt.date(2025, 7, 11))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_lf_and_crlf_give_the_same_portfolio(name, tmp_path):
    original = (CSV_DIR / name).read_bytes()
    is_crlf = b"\r\n" in original
    assert is_crlf == (name in CRLF_FILES)
    other = original.replace(b"\r\n", b"\n") if is_crlf else original.replace(b"\n", b"\r\n")
    assert other != original
    copy = tmp_path / name
    copy.write_bytes(other)
    assert read_portfolio_csv(copy.read_bytes()) == read_portfolio_csv(original)


def test_trailing_blank_lines_are_ignored():
    body = (CSV_DIR / SAMPLE).read_bytes()
    assert read_portfolio_csv(body + b"\n\n  \n") == read_portfolio_csv(body)


# ---------------------------------------------------------------------------------------------
# Broken copies


def _lines(name: str = SAMPLE) -> list[bytes]:
    return (CSV_DIR / name).read_bytes().split(b"\n")


def _join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines)


def _error(body: bytes) -> ContractError:
    with pytest.raises(ContractError) as err:
        read_portfolio_csv(body)
    return err.value


def test_error_not_a_carteira_do_dia_title():
    lines = _lines()
    lines[0] = "IBOV - Carteira Teórica 10/07/25".encode("iso-8859-1")
    err = _error(_join(lines))
    assert "line 1" in str(err)
    assert "Carteira Te" in str(err) and "is not '<INDEX> - Carteira do Dia DD/MM/YY'" in str(err)
    assert not looks_like_portfolio_csv(_join(lines))


def test_error_title_with_an_impossible_date():
    lines = _lines()
    lines[0] = b"IBOV - Carteira do Dia 32/07/25"
    err = _error(_join(lines))
    assert "line 1" in str(err) and "'32/07/25'" in str(err)


def test_error_wrong_column_header():
    lines = _lines()
    lines[1] = b"Codigo;Acao;Tipo;Qtde;Part"
    err = _error(_join(lines))
    assert err.index == "IBOV"
    assert "line 2" in str(err) and "column header" in str(err) and "Codigo;Acao" in str(err)


def test_error_extra_column_in_header():
    lines = _lines()
    lines[1] = lines[1].rstrip(b"\r") + b";Setor"
    err = _error(_join(lines))
    assert "column header" in str(err) and "line 2" in str(err)


@pytest.mark.parametrize(
    "row",
    [
        b"ALOS3;ALLOS;476.976.044;0,493;",  # no Tipo; the trailing ';' must not pass for Part. (%)
        b"ALOS3;ALLOS;476.976.044;0,493",  # no Tipo, no trailing ';'
        b"ALOS3;ALLOS;ON      NM;476.976.044;",  # no Part. (%)
        b"ALOS3;ALLOS;ON      NM;476.976.044",
    ],
)
def test_error_row_with_a_missing_column(row):
    lines = _lines()
    assert lines[2] == b"ALOS3;ALLOS;ON      NM;476.976.044;0,493;"
    lines[2] = row
    err = _error(_join(lines))
    assert err.index == "IBOV"
    assert "line 3" in str(err)
    assert repr(row.decode()) in str(err) and "does not have the 5 columns" in str(err)


def test_error_row_with_an_extra_value():
    lines = _lines()
    lines[3] = lines[3] + b"extra;"
    err = _error(_join(lines))
    assert "line 4" in str(err) and "does not have the 5 columns" in str(err)


def test_error_row_without_ticker():
    lines = _lines()
    lines[2] = b";ALLOS;ON      NM;476.976.044;0,493;"
    err = _error(_join(lines))
    assert "line 3" in str(err) and "no ticker" in str(err)


def test_error_missing_reductor_footer():
    lines = [line for line in _lines() if line.strip()]
    assert lines[-1].startswith(b"Redutor")
    err = _error(_join(lines[:-1]))
    assert "footer" in str(err)
    assert "Quantidade Te" in str(err)  # the last row is no longer where the total should be


def test_error_missing_both_footer_lines():
    lines = [line for line in _lines() if line.strip()]
    err = _error(_join(lines[:-2]))
    assert "footer" in str(err) and "is not 'Quantidade Teórica Total;;;<qty>;<part>'" in str(err)


def test_error_reductor_footer_renamed():
    lines = [line for line in _lines() if line.strip()]
    lines[-1] = b"Divisor;;;15.438.607,05630450"
    err = _error(_join(lines))
    assert "footer" in str(err) and "'Redutor;;;<reductor>'" in str(err)


def test_error_no_component_rows():
    lines = [line for line in _lines() if line.strip()]
    err = _error(_join(lines[:2] + lines[-2:] + [b""]))  # 4 lines + blank
    assert "only 4 lines" in str(err)


def test_error_only_footers_and_no_rows_between():
    lines = [line for line in _lines() if line.strip()]
    body = _join(lines[:2] + [b"   "] + lines[-2:])
    err = _error(body)
    assert "row" in str(err) and "line 3" in str(err)


@pytest.mark.parametrize("body", [b"", b"\n", b"\r\n\r\n", b"   "])
def test_error_empty_file(body):
    err = _error(body)
    assert "only 0 lines" in str(err)
    assert str(err).startswith("B3 response: CSV download")
