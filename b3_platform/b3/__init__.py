"""B3's API and file formats, Dagster-free: URLs, HTTP client, contract, parse rules, CSV reader."""
