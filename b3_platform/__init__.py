"""b3_platform: B3 index portfolios, captured verbatim and typed into a partitioned lake."""

__version__ = "0.1.0"
