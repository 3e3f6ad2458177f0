"""b3_platform: B3 index portfolios, captured verbatim and typed into a partitioned lake."""

import warnings

__version__ = "0.1.0"

# Two Dagster APIs the graph relies on on purpose are marked beta/preview in 1.13, and Dagster
# warns on every definition that uses them, in every process that loads the code (the CLI, the
# webserver, each run): 14 lines per command that say nothing is wrong. Only these two exact
# messages are silenced (by text, so this import stays free of Dagster); any other Beta/Preview
# warning still shows.
#: `BackfillPolicy.single_run()` on every partitioned asset: a range is one run per layer.
warnings.filterwarnings(
    "ignore", message=r"Parameter `backfill_policy` of (function|class) `\w+` is currently in beta"
)
#: `partitions_def` on the asset check specs: each date's check status shows in the UI.
warnings.filterwarnings(
    "ignore", message=r"Specifying a partitions_def on an AssetCheckSpec is currently in preview"
)
