"""The catalog over the lake's tables: DuckDB tables kept in step locally, Glue tables read by Athena on AWS.

Both implementations offer `sync` (register the tables they cover) and `query` (run SQL), so the
`athena_tables` asset and `python -m b3_platform query` never know which one is active.
"""
