"""SQL names of the lake's Arrow types, shared by the Dagster column schemas and the catalogs."""

from __future__ import annotations

import pyarrow as pa

_ARROW_TO_SQL = {
    pa.string(): "string",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.bool_(): "boolean",
    pa.date32(): "date",
}


def sql_type(type_: pa.DataType) -> str:
    """The column type as Athena (Hive DDL) names it; DuckDB accepts the same names."""
    if pa.types.is_decimal(type_):
        return f"decimal({type_.precision},{type_.scale})"
    if pa.types.is_timestamp(type_):
        return "timestamp"
    return _ARROW_TO_SQL[type_]


def duckdb_type(type_: pa.DataType) -> str:
    """As sql_type, except that a UTC timestamp is TIMESTAMPTZ in DuckDB (what it reads from Parquet)."""
    if pa.types.is_timestamp(type_) and type_.tz is not None:
        return "timestamptz"
    return sql_type(type_)
