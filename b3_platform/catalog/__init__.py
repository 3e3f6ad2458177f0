"""The catalog over the lake's tables: DuckDB views locally (the AWS mode registers Glue tables).

Both implementations offer `sync` (register every table) and `query` (run SQL), so the
`athena_tables` asset and `python -m b3_platform query` never know which one is active.
"""
