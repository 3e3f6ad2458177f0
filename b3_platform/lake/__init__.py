"""The lake: one path scheme, byte storage on a local folder or an S3 bucket, Parquet tables."""
