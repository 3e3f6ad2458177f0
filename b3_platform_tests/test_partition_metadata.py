"""Per-date metadata in a range run (b3_platform.partition_metadata): each date's materialization
carries exactly what Dagster's own `add_asset_metadata` gives it, and a date or asset outside the
step is refused the same way."""

import dagster as dg
import pytest

from b3_platform.partition_metadata import add_partition_metadata
from b3_platform.partitions import trading_days

RANGE = dg.PartitionKeyRange("2025-07-01", "2025-07-10")


def build(helper: bool, bad: str | None = None, mixed: bool = False):
    @dg.multi_asset(
        specs=[dg.AssetSpec("left"), dg.AssetSpec("right")],
        partitions_def=trading_days,
        can_subset=False,
    )
    def pair(context: dg.AssetExecutionContext):
        for n, key in enumerate(context.partition_keys):
            for asset in ("left", "right"):
                metadata = {"n": n, "asset": asset, "dagster/row_count": n * 10}
                target = bad if bad and n == 2 else key
                if helper:
                    add_partition_metadata(context, metadata, asset_key=asset, partition_key=target)
                else:
                    context.add_asset_metadata(metadata, asset_key=asset, partition_key=target)
            if helper and not mixed:
                add_partition_metadata(context, {"second": True}, asset_key="left", partition_key=key)
            else:
                context.add_asset_metadata({"second": True}, asset_key="left", partition_key=key)
        yield dg.Output(None, output_name="left")
        yield dg.Output(None, output_name="right")

    return pair


def materializations(helper: bool, mixed: bool = False) -> dict:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [build(helper, mixed=mixed)],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": RANGE.start,
            "dagster/asset_partition_range_end": RANGE.end,
        },
    )
    assert result.success
    out = {}
    for asset in ("left", "right"):
        for record in instance.fetch_materializations(dg.AssetKey(asset), limit=100).records:
            m = record.asset_materialization
            out[(asset, m.partition)] = {k: v.value for k, v in m.metadata.items()}
    return out


def test_each_date_carries_what_dagsters_own_method_gives_it():
    ours, dagsters = materializations(helper=True), materializations(helper=False)
    assert ours == dagsters
    days = trading_days.get_partition_keys_in_range(RANGE)
    assert len(days) == 8  # 2025-07-01..10: the weekdays
    assert set(ours) == {(a, d) for a in ("left", "right") for d in days}
    assert ours[("left", days[3])] == {"n": 3, "asset": "left", "dagster/row_count": 30, "second": True}
    assert ours[("right", days[3])] == {"n": 3, "asset": "right", "dagster/row_count": 30}


def test_additions_through_dagster_in_between_are_kept_too():
    """The helper adds in place to an accumulator of its own; Dagster's own method, called in
    between, replaces the step's accumulator: nothing either added may be lost."""
    assert materializations(helper=True, mixed=True) == materializations(helper=False)


@pytest.mark.parametrize("helper", [True, False])
def test_a_date_outside_the_run_is_refused_like_dagster_refuses_it(helper):
    with pytest.raises(
        dg.DagsterInvariantViolationError, match="partition key '2025-08-01' that is not being targeted"
    ):
        dg.materialize(
            [build(helper, bad="2025-08-01")],
            instance=dg.DagsterInstance.ephemeral(),
            tags={
                "dagster/asset_partition_range_start": RANGE.start,
                "dagster/asset_partition_range_end": RANGE.end,
            },
        )


def test_an_asset_the_step_does_not_materialize_is_refused():
    @dg.asset(partitions_def=trading_days)
    def alone(context: dg.AssetExecutionContext):
        add_partition_metadata(context, {"x": 1}, asset_key="other", partition_key=context.partition_key)

    with pytest.raises(
        dg.DagsterInvariantViolationError, match="asset key 'other' that is not being materialized"
    ):
        dg.materialize([alone], instance=dg.DagsterInstance.ephemeral(), partition_key="2025-07-10")
