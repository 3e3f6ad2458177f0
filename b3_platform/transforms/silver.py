"""Bronze → silver: B3's strings typed by the parse rules of `b3.parse`; a value that does not parse
is an error naming the field, the value, the index and the date. The publish audit
(`b3_platform.audit`) runs this very typing on each capture before bronze takes it, so bronze only
holds captures that type: the error here can only come from bronze written under older rules.

Two ways to the same tables. The columnar one (pyarrow.compute over whole columns) types a date of
34 indices in a few milliseconds; the row one (`silver_tables_by_row`, each value through the
Python rule) is the reference. The columnar way only accepts what it can prove the row way types
to the same values (ASCII digits, whitespace both trim alike, every number matching its rule); on
anything else it steps aside and the row way decides, so every error is the row way's own, naming
the first bad value in row order.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from b3_platform.b3.parse import (
    LOCALES,
    Locale,
    ParseError,
    ascii_number_pattern,
    number_separators,
    parse_date,
    parse_decimal,
    parse_int,
    parse_reductor,
    split_type,
)
from b3_platform.lake.paths import fetched_at_from_stem
from b3_platform.lake.schemas import SILVER_ASSETS, SILVER_HEADER

#: Outside printable ASCII and these blanks, Python's str.strip and Arrow's trims may disagree on
#: what is whitespace (\x1c, U+00A0, …): a text column holding such a character is trimmed by
#: str.strip itself, a number column holding one is typed row by row.
_BLANKS = " \t\n\r"
_NOT_PLAIN = r"[^\x20-\x7e\t\n\r]"
#: `_NOT_PLAIN` over the bytes of a string column's data buffer (UTF-8: any character beyond ASCII
#: has a byte ≥ 0x80, which it finds too).
_NOT_PLAIN_BYTES = re.compile(_NOT_PLAIN.encode())
#: The columnar typing costs ~1.5 ms whatever the size and ~2 µs a row; the row one ~14 µs a row.
#: Below this many rows (one capture: the publish audit, an import) the row typing is the cheaper.
COLUMNAR_FROM_ROWS = 200
_REQUIRED_COLUMNS = ("index", "language", "cod", "asset", "type", "part", "theorical_qty")


def silver_tables(bronze: pa.Table, day: dt.date) -> tuple[pa.Table, pa.Table]:
    """Typed (header, assets) tables for one date's bronze table."""
    columnar = _silver_tables_columnar(bronze, day) if bronze.num_rows >= COLUMNAR_FROM_ROWS else None
    return columnar if columnar is not None else silver_tables_by_row(bronze, day)


def _groups(bronze: pa.Table) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in bronze.to_pylist():
        groups.setdefault(row["index"], []).append(row)
    return groups


def _header_values(index: str, first: dict, row_count: int, has_sector: bool, day: dt.date) -> dict:
    """One index's typed header row, from its first bronze row (the header is repeated on each)."""
    locale = first["language"]
    where = f"{index} {day}"
    try:
        reference_date = parse_date(first["header_date"], locale, field="header.date")
        reductor = parse_reductor(first["header_reductor"], locale, field="header.reductor")
        header_values = {
            "index": index,
            "reference_date": reference_date,
            "theoretical_quantity_total": parse_int(
                first["header_theorical_qty"], locale, field="header.theoricalQty"
            ),
            "part_total": parse_decimal(first["header_part"], locale, field="header.part"),
            "reductor": reductor.value,
            "reductor_note": reductor.note,
            "row_count": row_count,
            "total_records": first["total_records"],
            "has_sector": has_sector,
            "language": locale,
            "source_format": first["source_format"],
            "capture_id": first["capture_id"],
            "fetched_at": fetched_at_from_stem(first["capture_id"]),
        }
    except ParseError as exc:
        raise exc.at(where) from None
    if reference_date != day:
        raise ParseError(
            "header.date",
            first["header_date"],
            f"is {reference_date}, not the partition date",
            where=where,
        )
    return header_values


def silver_tables_by_row(bronze: pa.Table, day: dt.date) -> tuple[pa.Table, pa.Table]:
    """The reference typing: every value through its Python rule, row by row (see the module doc)."""
    headers: dict[str, list] = {f.name: [] for f in SILVER_HEADER.schema}
    assets: dict[str, list] = {f.name: [] for f in SILVER_ASSETS.schema}
    for index, rows in _groups(bronze).items():
        first = rows[0]
        locale = first["language"]
        where = f"{index} {day}"
        header_values = _header_values(index, first, len(rows), any(r["segment"] for r in rows), day)
        for name, value in header_values.items():
            headers[name].append(value)
        for row in rows:
            try:
                type_code = split_type(row["type"])
                values = {
                    "index": index,
                    "ticker": row["cod"].strip(),
                    "company": row["asset"].strip(),
                    "share_class": type_code.share_class,
                    "event_flag": type_code.event_flag,
                    "listing_segment": type_code.listing_segment,
                    "sector": row["segment"].strip() if row["segment"] else None,
                    "sector_weight": (
                        parse_decimal(row["part_acum"], locale, field="partAcum")
                        if row["part_acum"]
                        else None
                    ),
                    "weight": parse_decimal(row["part"], locale, field="part"),
                    "theoretical_quantity": parse_int(row["theorical_qty"], locale, field="theoricalQty"),
                    "type_code": row["type"],
                    "row_number": row["row_number"],
                    "capture_id": row["capture_id"],
                }
            except ParseError as exc:
                raise exc.at(f"{where} row {row['row_number']} ({row['cod']})") from None
            for name, value in values.items():
                assets[name].append(value)
    return (typed_table(headers, SILVER_HEADER.schema, day), typed_table(assets, SILVER_ASSETS.schema, day))


class _StepAside(Exception):
    """The columnar typing cannot prove it types this bronze as the row typing would."""


def _silver_tables_columnar(bronze: pa.Table, day: dt.date) -> tuple[pa.Table, pa.Table] | None:
    """The same tables as `silver_tables_by_row`, typed a column at a time; None when not sure."""
    if bronze.num_rows == 0:
        return None
    try:
        bronze = bronze.combine_chunks()
        starts = _group_starts(bronze)
        has_segment = _present(bronze.column("segment"))
        headers = _headers(bronze, starts, has_segment, day)
        assets = _assets(bronze, starts, has_segment)
    except (_StepAside, ParseError, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return headers, assets


def _group_starts(bronze: pa.Table) -> np.ndarray:
    """Where each index's rows start; the rows of an index must be contiguous (bronze writes them
    so), else the row typing's grouping by first appearance decides."""
    index = bronze.column("index")
    if any(bronze.column(c).null_count for c in _REQUIRED_COLUMNS):
        raise _StepAside("a required column holds a null")
    n = bronze.num_rows
    changes = pc.indices_nonzero(pc.not_equal(index.slice(1), index.slice(0, n - 1))).to_numpy()
    starts = np.concatenate((np.zeros(1, np.int64), changes.astype(np.int64) + 1))
    if len(starts) != len(pc.unique(index)):
        raise _StepAside("an index's rows are not contiguous")
    return starts


def _present(texts) -> pa.ChunkedArray:
    """Which rows hold a text that is not empty (what the row typing's `if row[...]` keeps)."""
    return pc.fill_null(pc.not_equal(texts, ""), False)


def _none_present(present) -> bool:
    """Whether no row holds a value: the column types to nulls alone, with nothing to parse
    (sectors and sector weights, on every date captured without segment 2)."""
    return not pc.any(present).as_py()


#: The bronze columns the header typing reads from each index's first row.
_HEADER_SOURCES = (
    "index",
    "language",
    "header_date",
    "header_reductor",
    "header_theorical_qty",
    "header_part",
    "total_records",
    "source_format",
    "capture_id",
)


def _headers(bronze: pa.Table, starts: np.ndarray, has_segment, day: dt.date) -> pa.Table:
    counts = np.diff(np.append(starts, bronze.num_rows))
    if _none_present(has_segment):
        sector_rows = np.zeros(len(starts), np.int64)
    else:
        with_sector = has_segment.to_numpy(zero_copy_only=False)
        sector_rows = np.add.reduceat(with_sector.astype(np.int64), starts)
    firsts = bronze.select(_HEADER_SOURCES).take(pa.array(starts)).to_pylist()
    headers: dict[str, list] = {f.name: [] for f in SILVER_HEADER.schema}
    for first, count, sectors in zip(firsts, counts, sector_rows):
        values = _header_values(first["index"], first, int(count), bool(sectors), day)
        for name, value in values.items():
            headers[name].append(value)
    return typed_table(headers, SILVER_HEADER.schema, day)


def _assets(bronze: pa.Table, starts: np.ndarray, has_segment) -> pa.Table:
    counts = np.diff(np.append(starts, bronze.num_rows))
    # The row typing reads every row of an index in its first row's locale.
    first_locales = bronze.column("language").take(pa.array(starts)).to_pylist()
    if any(locale not in LOCALES for locale in first_locales):
        raise _StepAside("an unknown locale")
    # A date's captures are nearly always in one language: then its numbers are read by that
    # locale's rule alone (one pattern, one pair of replacements per column, not both and a choice).
    locale: str | pa.Array = (
        first_locales[0]
        if len(set(first_locales)) == 1
        else pa.array(np.repeat(np.array(first_locales, dtype=object), counts), pa.string())
    )
    segment, part_acum = bronze.column("segment"), bronze.column("part_acum")
    has_part_acum = _present(part_acum)
    share_class, event_flag, listing_segment = _split_types(bronze.column("type"))
    sector_weight_type = SILVER_ASSETS.schema.field("sector_weight").type
    columns = {
        "index": bronze.column("index"),
        "ticker": _stripped(bronze.column("cod")),
        "company": _stripped(bronze.column("asset")),
        "share_class": share_class,
        "event_flag": event_flag,
        "listing_segment": listing_segment,
        "sector": (
            pa.nulls(len(segment), pa.string())
            if _none_present(has_segment)
            else pc.if_else(has_segment, _stripped(segment), None)
        ),
        "sector_weight": (
            pa.nulls(len(part_acum), sector_weight_type)
            if _none_present(has_part_acum)
            else _numbers(part_acum, locale, has_part_acum, sector_weight_type)
        ),
        "weight": _numbers(bronze.column("part"), locale, None, SILVER_ASSETS.schema.field("weight").type),
        "theoretical_quantity": _numbers(bronze.column("theorical_qty"), locale, None, pa.int64()),
        "type_code": bronze.column("type"),
        "row_number": bronze.column("row_number"),
        "capture_id": bronze.column("capture_id"),
    }
    schema = SILVER_ASSETS.schema
    return pa.Table.from_arrays([pc.cast(columns[f.name], f.type) for f in schema], schema=schema)


def _plain(texts) -> bool:
    """Whether every text holds only printable ASCII and the blanks both trims agree on.

    Scanned over the columns' UTF-8 data buffers with one compiled pattern (~10x faster than
    Arrow's regex over each value, which compiles it again on every call). A buffer may hold
    bytes no value covers (a slice's neighbours): then this can only say "not plain" wrongly,
    which sends the column down the slower way that is right for any text."""
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    if not all(pa.types.is_string(chunk.type) for chunk in chunks):
        return not pc.any(pc.match_substring_regex(texts, _NOT_PLAIN)).as_py()
    return not any(
        (data := chunk.buffers()[2]) is not None and _NOT_PLAIN_BYTES.search(memoryview(data))
        for chunk in chunks
    )


def _stripped(texts) -> pa.Array:
    """str.strip of every text: Arrow's trim when only plain characters occur, else str.strip."""
    if _plain(texts):
        return pc.utf8_trim(texts, _BLANKS)
    return pa.array([None if t is None else t.strip() for t in texts.to_pylist()], pa.string())


def _numbers(texts, locale: str | pa.Array, present, target: pa.DataType) -> pa.Array:
    """Locale-formatted numbers typed as `target` (a decimal or an integer). `locale` is every
    row's (one name when all rows share it). `present` marks the rows that hold one (None: every
    row); the rest are null, as the row typing leaves them."""
    decimals = pa.types.is_decimal(target)
    if not _plain(texts):
        raise _StepAside("a number holding a character beyond printable ASCII")
    trimmed = pc.utf8_trim(texts, _BLANKS)
    if isinstance(locale, str):
        return _numbers_of(trimmed, locale, present, target)  # type: ignore[arg-type]
    is_pt = pc.equal(locale, "pt-br")
    valid = pc.if_else(
        is_pt,
        pc.match_substring_regex(trimmed, ascii_number_pattern("pt-br", decimals=decimals)),
        pc.match_substring_regex(trimmed, ascii_number_pattern("en-us", decimals=decimals)),
    )
    if present is not None:
        valid = pc.or_kleene(pc.invert(present), valid)
    if not pc.all(pc.fill_null(valid, False)).as_py():
        raise _StepAside("a number the row typing must judge")
    normal = {}
    for name in ("pt-br", "en-us"):
        thousands, decimal = number_separators(name)  # type: ignore[arg-type]
        text = pc.replace_substring(trimmed, thousands, "")
        normal[name] = pc.replace_substring(text, decimal, ".") if decimals else text
    text = pc.if_else(is_pt, normal["pt-br"], normal["en-us"])
    if present is not None:
        text = pc.if_else(present, text, None)
    return pc.cast(text, target)


def _numbers_of(trimmed, locale: Locale, present, target: pa.DataType) -> pa.Array:
    """`_numbers` of trimmed texts that are all in one locale: the same checks and values."""
    decimals = pa.types.is_decimal(target)
    valid = pc.match_substring_regex(trimmed, ascii_number_pattern(locale, decimals=decimals))
    if present is not None:
        valid = pc.or_kleene(pc.invert(present), valid)
    if not pc.all(pc.fill_null(valid, False)).as_py():
        raise _StepAside("a number the row typing must judge")
    thousands, decimal = number_separators(locale)
    text = pc.replace_substring(trimmed, thousands, "")
    if decimals:
        text = pc.replace_substring(text, decimal, ".")
    if present is not None:
        text = pc.if_else(present, text, None)
    return pc.cast(text, target)


def _split_types(codes) -> tuple[pa.Array, pa.Array, pa.Array]:
    """split_type of every code, computed once per distinct code (a date has a few dozen)."""
    encoded = pc.dictionary_encode(codes).combine_chunks()
    parts = [split_type(code) for code in encoded.dictionary.to_pylist()]
    positions = encoded.indices
    return tuple(
        pa.array([getattr(p, name) for p in parts], pa.string()).take(positions)
        for name in ("share_class", "event_flag", "listing_segment")
    )  # type: ignore[return-value]


def typed_table(columns: dict[str, list], schema: pa.Schema, day: dt.date) -> pa.Table:
    """Typed columns as a table of the declared schema, or a ParseError saying why they do not fit."""
    try:
        return pa.Table.from_pydict(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        # e.g. a weight with more decimals than the declared scale: say so rather than round.
        raise ParseError(
            "(table)", None, f"does not fit the declared schema: {exc}", where=str(day)
        ) from None
