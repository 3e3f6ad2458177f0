"""Real portfolios of every kind reach gold, and one index that cannot be typed costs only itself.

Materializes the real graph in-process over several indices: the IBOV sample re-filed under other
index codes, and small synthetic portfolios written in test bodies with the type codes, tiny and
huge numbers and row counts of real B3 downloads (IBEE's 6 rows, IEEX's reductor and quantities,
IBBR's reductor, BDR classes, fund quotas)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from b3_platform.importer import import_body
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.schemas import GOLD_COMPOSITION, GOLD_INDEX_SUMMARY, SILVER_ASSETS, SILVER_HEADER
from b3_platform.lake.storage import LocalStorage
from b3_platform_tests.replay import sample_bytes, with_changes
from b3_platform_tests.test_pipeline import (
    check_evaluations,
    materializations,
    partition_evaluations,
    path_of,
    run,
    seed,
)

D = dt.date(2025, 7, 10)


def store(lake_root: Path, day: dt.date, index: str, body: bytes) -> str:
    """File a capture in raw as a live capture is filed (verbatim); returns its id."""
    capture, new = RawStore(LocalStorage(lake_root)).store(
        day,
        index,
        [body],
        fetched_at=dt.datetime.now(dt.timezone.utc),
        source_format="json",
        meta={"source": "test"},
    )
    assert new
    return capture.capture_id


def ibov_as(day: dt.date, change=None) -> bytes:
    body = sample_bytes(f"GetPortfolioDay/IBOV/{day}.json")
    return with_changes(body, change) if change else body


def pt_br_int(n: int) -> str:
    return f"{n:,}".replace(",", ".")


def portfolio(day: dt.date, reductor: str, rows: list[tuple[str, str, str, str]]) -> bytes:
    """A GetPortfolioDay body: rows of (ticker, company, type code, pt-br quantity); weights split
    100 evenly in B3's 3 decimals (the last rows absorb the rounding)."""
    n = len(rows)
    base = (Decimal(100) / n).quantize(Decimal("0.001"))
    weights = [base] * n
    for i in range(n - 1, -1, -1):
        gap = Decimal(100) - sum(weights)
        if gap == 0:
            break
        weights[i] += max(min(gap, Decimal("0.001")), Decimal("-0.001"))
    assert sum(weights) == 100
    total = sum(int(q.replace(".", "")) for _, _, _, q in rows)
    return json.dumps(
        {
            "page": {"pageNumber": 1, "pageSize": 20, "totalRecords": n, "totalPages": 1},
            "header": {
                "date": day.strftime("%d/%m/%y"),
                "text": "Quantidade Teórica Total",
                "part": "100,000",
                "partAcum": None,
                "textReductor": "Redutor",
                "reductor": reductor,
                "theoricalQty": pt_br_int(total),
            },
            "results": [
                {
                    "segment": None,
                    "cod": cod,
                    "asset": asset,
                    "type": type_code,
                    "part": str(w).replace(".", ","),
                    "partAcum": None,
                    "theoricalQty": qty,
                }
                for (cod, asset, type_code, qty), w in zip(rows, weights, strict=True)
            ],
        },
        ensure_ascii=False,
    ).encode("utf-8")


#: 6 rows, IEEX's reductor and quantities in the thousands; flags of every kind, a bare PNA.
IBEE = portfolio(
    D,
    "36,84861823",
    [
        ("CMIG4", "CEMIG", "PN  EDB N1", "4.500"),
        ("CPLE6", "COPEL", "PNB EJB N2", "12.300"),
        ("EGIE3", "ENGIE BRASIL", "ON  EG  NM", "7.250"),
        ("ELET6", "ELETROBRAS", "PNB ER  N1", "980"),
        ("TAEE11", "TAESA", "UNT EJS N2", "15.000"),
        ("CESP6", "CESP", "PNA", "3.100"),
    ],
)
#: BDR classes with digits, the underlying's class letter in the flag slot, IBBR's huge reductor.
BDRX = portfolio(
    D,
    "2.437.340.002,15461000",
    [
        ("INBR32", "INTER CO", "DR2", "1.234.567"),
        ("GOGL34", "ALPHABET", "DRN A", "98.765.432"),
        ("GOGL35", "ALPHABET", "DRN C", "87.654.321"),
        ("AAPL34", "APPLE", "DRN", "123.456.789"),
        ("MELI34", "MERCADOLIBRE", "DR1 EDJ", "2.345.678"),
        ("ROXO34", "NU HOLDINGS", "DR3 EX", "45.678.901"),
    ],
)
#: Fund quotas and their flags.
IFIX = portfolio(
    D,
    "1.234,56789012",
    [
        ("HGLG11", "CSHG LOG", "CI", "1.000.000"),
        ("KNRI11", "KINEA RENDA", "CI  ER", "2.000.000"),
        ("XPML11", "XP MALLS", "CI  ERS", "3.000.000"),
        ("MXRF11", "MAXI RENDA", "CI  EB", "4.000.000"),
        ("VISC11", "VINCI SC", "CI  ES", "5.000.000"),
        ("BTLG11", "BTG LOG", "CI  ATZ", "6.000.000"),
    ],
)


def test_portfolios_of_every_kind_reach_gold(lake_root, resources):
    for index, body in (("IBEE", IBEE), ("BDRX", BDRX), ("IFIX", IFIX)):
        store(lake_root, D, index, body)
    seed(lake_root, D)
    result = run(resources, day=D)
    assert result.success
    checks = check_evaluations(result)
    assert [
        n for n, e in checks.items() if not e.passed
    ] == []  # the day before: imported history, not judged

    header = {r["index"]: r for r in pq.read_table(path_of(lake_root, SILVER_HEADER, D)).to_pylist()}
    assert set(header) == {"IBOV", "IBEE", "BDRX", "IFIX"}
    assert header["IBEE"]["reductor"] == Decimal("36.84861823")
    assert header["BDRX"]["reductor"] == Decimal("2437340002.15461000")
    assert header["IBEE"]["row_count"] == 6
    assert header["IBEE"]["theoretical_quantity_total"] == 4500 + 12300 + 7250 + 980 + 15000 + 3100

    assets = {
        r["ticker"]: r
        for r in pq.read_table(path_of(lake_root, SILVER_ASSETS, D)).to_pylist()
        if r["index"] != "IBOV"  # CMIG4 is in IBOV too
    }
    split = {
        t: (r["share_class"], r["event_flag"], r["listing_segment"], r["type_code"])
        for t, r in assets.items()
    }
    assert split["CMIG4"] == ("PN", "EDB", "N1", "PN  EDB N1")
    assert assets["CMIG4"]["theoretical_quantity"] == 4500
    assert split["CESP6"] == ("PNA", None, None, "PNA")
    assert split["INBR32"] == ("DR2", None, None, "DR2")
    assert split["GOGL34"] == ("DRN A", None, None, "DRN A")
    assert split["GOGL35"] == ("DRN C", None, None, "DRN C")
    assert split["MELI34"] == ("DR1", "EDJ", None, "DR1 EDJ")
    assert split["XPML11"] == ("CI", "ERS", None, "CI  ERS")
    assert split["BTLG11"] == ("CI", "ATZ", None, "CI  ATZ")

    # Gold: the two Alphabet classes are two share-class groups; a 6-row index's concentration.
    composition = pq.read_table(path_of(lake_root, GOLD_COMPOSITION, D)).to_pylist()
    classes = {
        r["group_name"] for r in composition if r["index"] == "BDRX" and r["dimension"] == "share_class"
    }
    assert classes == {"DR1", "DR2", "DR3", "DRN", "DRN A", "DRN C"}
    summary = {r["index"]: r for r in pq.read_table(path_of(lake_root, GOLD_INDEX_SUMMARY, D)).to_pylist()}
    assert summary["IBEE"]["components"] == 6
    assert summary["IBEE"]["reductor"] == Decimal("36.84861823")
    assert abs(summary["IBEE"]["hhi"] - Decimal(10_000) / 6) < 1


def test_type_code_no_rule_recognises_is_kept_and_reported_by_a_warning(lake_root, resources):
    def odd_code(data):
        assert data["results"][5]["cod"] == "B3SA3"
        data["results"][5]["type"] = "ON  QQ  NM"

    body = ibov_as(D, odd_code)
    assert import_body(RawStore(LocalStorage(lake_root)), f"IBOV/{D}.json", body).status == "imported"
    result = run(resources, day=D)
    assert result.success
    row = next(
        r for r in pq.read_table(path_of(lake_root, SILVER_ASSETS, D)).to_pylist() if r["ticker"] == "B3SA3"
    )
    assert (row["type_code"], row["share_class"], row["event_flag"], row["listing_segment"]) == (
        "ON  QQ  NM",
        "ON",
        "QQ",
        "NM",
    )
    # A warning rule of silver_assets' blocking check: the date fails with severity WARN, which
    # does not block (gold below is built).
    check = check_evaluations(result)["silver_assets_rules"]
    assert not check.passed and check.blocking and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["failed_rules"].value == "type_codes_recognised"
    expected = "IBOV: type code 'ON  QQ  NM' (unknown event flag 'QQ') of B3SA3"
    assert check.description == f"2025-07-10: type_codes_recognised: {expected}"
    assert expected in materializations(result)["silver_assets", D.isoformat()]["unrecognised_type_codes"]
    assert pq.read_table(path_of(lake_root, GOLD_INDEX_SUMMARY, D)).num_rows == 1  # gold built


def test_malformed_number_in_one_index_fails_only_that_index(lake_root, resources):
    """Three indices on two consecutive trading days; IDIV's 07-08 capture has a weight no rule
    reads. Over one range run, IDIV alone is left out of 07-08: silver and gold build IBOV and IBXX
    that day (compared with 07-07) and every index on 07-07."""
    first, last = dt.date(2025, 7, 7), dt.date(2025, 7, 8)
    seed(lake_root, first, last)

    def bad_weight(data):
        data["results"][3]["part"] = "1,2,3"

    for day in (first, last):
        store(lake_root, day, "IBXX", ibov_as(day))
        idiv = store(lake_root, day, "IDIV", ibov_as(day, bad_weight if day == last else None))
    result = run(resources, first=first, last=last)
    assert result.success

    def indices(table_def, day):
        return sorted(set(pq.read_table(path_of(lake_root, table_def, day)).column("index").to_pylist()))

    assert indices(SILVER_ASSETS, first) == ["IBOV", "IBXX", "IDIV"]
    assert indices(SILVER_ASSETS, last) == ["IBOV", "IBXX"]
    summary = {r["index"]: r for r in pq.read_table(path_of(lake_root, GOLD_INDEX_SUMMARY, last)).to_pylist()}
    assert set(summary) == {"IBOV", "IBXX"}
    assert all(r["previous_in_lake"] for r in summary.values())

    assert partition_evaluations(result, "bronze_portfolio_rules") == {
        "2025-07-07": True,
        "2025-07-08": False,
    }
    audit = check_evaluations(result)["bronze_portfolio_rules"]
    assert not audit.passed
    assert audit.metadata["failed_rules"].value == "captures_pass_audit"
    assert audit.description.startswith(
        f"2025-07-08: captures_pass_audit: IDIV: left out of the date, no capture passes the audit; refused capture {idiv}: "
        "IDIV 2025-07-08 row 4 (AURE3): field 'part' = '1,2,3'"
    )
    bronze = materializations(result)["bronze_portfolio", last.isoformat()]
    assert bronze["left_out_indices"] == "IDIV"
    assert set(bronze["capture_ids"]) == {"IBOV", "IBXX"}
