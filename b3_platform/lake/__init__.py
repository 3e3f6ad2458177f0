"""The lake: one path scheme, byte storage on a local folder (or, later, S3), Parquet tables."""
