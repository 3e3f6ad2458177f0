"""What every layer's asset shares: check bookkeeping across a date range, schema metadata."""

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, generate_event_batch_id

from b3_platform.catalog.types import sql_type
from b3_platform.lake.schemas import TableDef
from b3_platform.partitions import trading_days
from b3_platform.quality import Rule

SINGLE_RUN = dg.BackfillPolicy.single_run()
PARTITIONED = {"partitions_def": trading_days, "backfill_policy": SINGLE_RUN}


def column_schema(table_def: TableDef) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=sql_type(f.type),
                description=(f.metadata or {}).get(b"description", b"").decode(),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in table_def.schema
        ]
    )


def table_metadata(table_def: TableDef) -> dict:
    return {
        "dagster/column_schema": column_schema(table_def),
        "dagster/table_name": table_def.name,
        "table_location": f"<lake root>/{table_def.location}date=YYYY-MM-DD/",
    }


def check_spec(name: str, asset: str, *, blocking: bool, description: str) -> dg.AssetCheckSpec:
    """Checks are partitioned like their asset, so the UI shows each day's check status."""
    return dg.AssetCheckSpec(
        name, asset=asset, blocking=blocking, description=description, partitions_def=trading_days
    )


#: The check metadata key listing the rules one check reports (absent: the check is its one rule).
RULES_KEY = "rules"
#: The check metadata key listing which of a blocking check's rules only warn (absent: none do).
WARNING_RULES_KEY = "warning_rules"


def check_name(asset: str, blocking: bool) -> str:
    """The name of the check that reports several rules of one asset: `<asset>_rules` when any of
    them blocks, `<asset>_warnings` when every one only warns."""
    return f"{asset}_rules" if blocking else f"{asset}_warnings"


def check_specs(
    rules: Iterable[Rule], asset: str, extra: Sequence[dg.AssetCheckSpec] = ()
) -> list[dg.AssetCheckSpec]:
    """One check for all of `asset`'s rules, blocking and warning ones together; a single rule
    keeps its own name. Dagster plans, stores and shows every check of a partitioned asset once
    per date, so in a range run each check costs one planned row and one evaluation per date:
    one check per asset keeps that to one row and one evaluation per asset and date, while each
    evaluation still names every rule's result (`CheckBook`).

    A check holding both kinds is blocking, and each evaluation carries the severity of what
    failed: ERROR when a blocking rule failed, WARN when only warning rules did. Dagster stops the
    layers below only on a failed ERROR evaluation of a blocking check, so a warning rule never
    blocks; the UI shows a WARN failure as a warning."""
    specs = [
        check_spec(r.name, r.table, blocking=r.blocking, description=r.description)
        for r in rules
        if r.table == asset
    ] + list(extra)
    if len(specs) <= 1:
        return specs
    blocking = [s for s in specs if s.blocking]
    warning = [s for s in specs if not s.blocking]
    sections = [
        lead + ":\n" + "\n".join(f"- {s.name}: {s.description}" for s in group)
        for lead, group in (
            (
                "Blocking rules (one failing fails the date with severity ERROR and stops the layers below)",
                blocking,
            ),
            ("Warning rules (one failing fails the date with severity WARN; never blocking)", warning),
        )
        if group
    ]
    metadata = {RULES_KEY: ", ".join(s.name for s in blocking + warning)}
    if blocking and warning:
        metadata[WARNING_RULES_KEY] = ", ".join(s.name for s in warning)
    return [
        dg.AssetCheckSpec(
            check_name(asset, bool(blocking)),
            asset=asset,
            blocking=bool(blocking),
            description="\n".join(sections),
            partitions_def=trading_days,
            metadata=metadata,
        )
    ]


def _listed(spec: dg.AssetCheckSpec, key: str) -> list[str] | None:
    listed = (spec.metadata or {}).get(key)
    if listed is None:
        return None
    text = listed.value if isinstance(listed, dg.MetadataValue) else listed
    return str(text).split(", ")


def rules_of(spec: dg.AssetCheckSpec) -> list[str]:
    """The rules a check reports, in order: the ones its metadata lists, or the check itself."""
    return _listed(spec, RULES_KEY) or [spec.name]


def warning_rules_of(spec: dg.AssetCheckSpec) -> frozenset[str]:
    """The rules of a check that only warn: all of a non-blocking check's, the listed ones of a
    blocking check that holds both kinds."""
    if not spec.blocking:
        return frozenset(rules_of(spec))
    return frozenset(_listed(spec, WARNING_RULES_KEY) or ())


ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN


@dataclass(frozen=True)
class _Result:
    """One check's result over some dates (one date, or a run's): what failed and how badly."""

    #: each problem, named by its rule when the check reports several
    problems: list[str]
    #: the failed rules that block (their failure is an ERROR), in the check's order
    blocking: list[str]
    #: the failed rules that only warn, in the check's order
    warning: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def severity(self) -> dg.AssetCheckSeverity:
        """ERROR when a blocking rule failed, WARN when only warning rules did (or none)."""
        return ERROR if self.blocking else WARN

    def rules_metadata(self) -> dict[str, str]:
        """`failed_rules`: the rules whose failure gives the severity (the blocking ones when any
        failed, else the warning ones; "none" when it passed); `warned_rules`: warning rules
        that failed beside a blocking one."""
        return {
            "failed_rules": ", ".join(self.blocking or self.warning) or "none",
            **({"warned_rules": ", ".join(self.warning)} if self.blocking and self.warning else {}),
        }


class CheckBook:
    """Collects each rule's problems date by date, then reports them when the dates are stored.

    The asset records by rule name; a check that reports several rules (`check_specs`) reports
    them as one evaluation: it fails when any of its rules does, with severity ERROR when a
    blocking rule failed and WARN when only warning rules did; its description starts each problem
    with the rule's name, and its metadata gives every rule's result.

    A single-partition run's result is that partition's evaluation. In a range run (a single-run
    backfill) Dagster plans one check row per date, so every date gets its own evaluation — passed
    or failed — or the UI would show the dates that passed as "Skipped". Those evaluations are
    logged by `results()`, which the asset calls after its materializations were recorded: an
    evaluation counts in the UI only when it targets the partition's latest materialization, so
    each one names it. The run-level result, one per check covering every date, is what gates the
    layers below (a failed blocking check with severity ERROR stops them)."""

    def __init__(self, specs: Sequence[dg.AssetCheckSpec], context: dg.AssetExecutionContext) -> None:
        self._context = context
        self._per_partition = len(context.partition_keys) > 1
        self._specs = {s.name: s for s in specs}
        self._rules = {name: rules_of(spec) for name, spec in self._specs.items()}
        self._warns = {name: warning_rules_of(spec) for name, spec in self._specs.items()}
        rule_names = [r for rules in self._rules.values() for r in rules]
        #: Per rule, each evaluated date's problems, in the order the dates were recorded.
        self._by_date: dict[str, dict[str, list[str]]] = {r: {} for r in rule_names}
        #: Per rule, the dates it did not judge, with why (they pass, and say so).
        self._not_judged: dict[str, dict[str, str]] = {r: {} for r in rule_names}

    def record(self, name: str, day: dt.date, problems: list[str], not_judged: str | None = None) -> None:
        """A date's problems for rule `name`; or, with `not_judged`, that the rule does not apply
        to the date (it passes, and its evaluation says why instead of a bare "passed")."""
        key = day.isoformat()
        if not_judged is not None:
            self._not_judged[name][key] = not_judged
        self._by_date[name][key] = list(problems)

    def _named(self, check: str, rule: str, problems: Iterable[str]) -> list[str]:
        """Problems of a rule as its check reports them: with the rule's name when it shares it."""
        if len(self._rules[check]) == 1:
            return list(problems)
        return [f"{rule}: {p}" for p in problems]

    def _date(self, check: str, key: str) -> tuple[_Result, str | None, dict[str, str]]:
        """One date's result of `check`, why it was not judged (when none of its rules judged
        the date), and each rule's result."""
        problems: list[str] = []
        blocking: list[str] = []
        warning: list[str] = []
        not_judged: list[str] = []
        by_rule: dict[str, str] = {}
        for rule in self._rules[check]:
            found = self._by_date[rule].get(key)
            if found is None:
                continue
            problems.extend(self._named(check, rule, found))
            if found:
                (warning if rule in self._warns[check] else blocking).append(rule)
            reason = self._not_judged[rule].get(key)
            if reason is not None:
                not_judged.append(reason if len(self._rules[check]) == 1 else f"{rule}: {reason}")
            by_rule[rule] = (
                f"failed: {found[0]}" + (f" (+{len(found) - 1} more)" if len(found) > 1 else "")
                if found
                else "not judged"
                if reason is not None
                else "passed"
            )
        all_unjudged = bool(not_judged) and len(not_judged) == len(by_rule)
        return (
            _Result(problems, blocking, warning),
            "; ".join(not_judged) if all_unjudged else None,
            by_rule,
        )

    def _targets(self, asset_key: dg.AssetKey, keys: Sequence[str]) -> dict[str, object]:
        """The latest materialization of each of `keys` (one query per asset), as check targets:
        from the index's columns when the event log can (`READS_MATERIALIZATION_TARGETS`, the
        repo's sqlite one), else from the records Dagster reads back whole."""
        storage = self._context.instance.event_log_storage
        if getattr(storage, READS_MATERIALIZATION_TARGETS, False):
            return storage.latest_materialization_targets(asset_key, keys)
        records = self._context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=list(keys)), limit=len(keys)
        ).records
        targets: dict[str, object] = {}
        for record in records:  # newest first: keep each partition's latest
            key = record.partition_key
            if key is not None and key not in targets:
                targets[key] = AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id,
                    run_id=record.run_id,
                    timestamp=record.timestamp,
                )
        return targets

    def _dates(self, check: str) -> list[str]:
        """The dates any rule of `check` was evaluated on, in recording order."""
        return list(dict.fromkeys(k for rule in self._rules[check] for k in self._by_date[rule]))

    def _log_per_date(
        self, per_date: dict[str, dict[str, tuple[_Result, str | None, dict[str, str]]]]
    ) -> None:
        keys_by_asset: dict[dg.AssetKey, set[str]] = {}
        for name, spec in self._specs.items():
            keys_by_asset.setdefault(spec.asset_key, set()).update(per_date[name])
        targets_by_asset = {
            asset: self._targets(asset, sorted(keys)) for asset, keys in keys_by_asset.items() if keys
        }
        evaluations = []
        for name, spec in self._specs.items():
            targets = targets_by_asset.get(spec.asset_key, {})
            grouped = len(self._rules[name]) > 1
            for key, (result, not_judged, by_rule) in per_date[name].items():
                evaluations.append(
                    dg.AssetCheckEvaluation(
                        asset_key=spec.asset_key,
                        check_name=name,
                        passed=result.passed,
                        partition=key,
                        severity=result.severity if result.problems else _severity(spec),
                        blocking=spec.blocking,
                        target_materialization_data=targets.get(key),
                        description="; ".join(result.problems)[:1000] or not_judged,
                        metadata=_date_metadata(result, not_judged, by_rule, grouped),
                    )
                )
        self._log_evaluations(evaluations)

    def _log_evaluations(self, evaluations: list[dg.AssetCheckEvaluation]) -> None:
        """Each date's evaluation, as `context.log_event` logs it, but as one batch of events when
        the instance's event log writes batches of any kind (`STORES_ANY_EVENT_BATCH`, the repo's
        sqlite one): Dagster then hands them to it together (with DAGSTER_EVENT_BATCH_SIZE > 0,
        in batches of that many) instead of storing each with its own transactions. Elsewhere
        (PostgreSQL's event log refuses a batch of check evaluations, and Dagster would retry it
        event by event after printing the error) they are logged one by one. The events are the
        same either way: same message, same data, and each is also yielded by the step as
        `log_event` does (its private event list; the Dagster release is pinned, and
        test_sqlite_batch compares the two ways' run logs)."""
        op_context = self._context.op_execution_context
        step = op_context.get_step_execution_context()
        if not evaluations or not getattr(step.instance.event_log_storage, STORES_ANY_EVENT_BATCH, False):
            for evaluation in evaluations:
                op_context.log_event(evaluation)
            return
        batch_id = generate_event_batch_id()
        last = len(evaluations) - 1
        for i, evaluation in enumerate(evaluations):
            op_context._events.append(  # noqa: SLF001  (what log_event does with the event)
                DagsterEvent.from_step(
                    event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
                    step_context=step,
                    event_specific_data=evaluation,
                    message=_evaluation_message(evaluation),
                    batch_metadata=DagsterEventBatchMetadata(batch_id, i == last),
                )
            )

    def results(self) -> list[dg.AssetCheckResult]:
        """The run's check results; in a range run, first logs every date's own evaluation. Call
        it after the asset's materializations (after its outputs, or after `MaterializeResult`).
        A failed check that reports several rules also logs which of them failed, as an ERROR
        line when a blocking rule did and a warning otherwise, so the run log names the rule where
        Dagster's own failure message names only the check."""
        per_date = {name: {key: self._date(name, key) for key in self._dates(name)} for name in self._specs}
        if self._per_partition:
            self._log_per_date(per_date)
        results = []
        for name, spec in self._specs.items():
            rules = self._rules[name]
            dates = per_date[name]
            run = _Result(
                [f"{key}: {p}" for key, (found, _, _) in dates.items() for p in found.problems],
                [r for r in rules if any(r in found.blocking for found, _, _ in dates.values())],
                [r for r in rules if any(r in found.warning for found, _, _ in dates.values())],
            )
            failed_dates = [key for key, (found, _, _) in dates.items() if not found.passed]
            skipped = [key for key, (_, reason, _) in dates.items() if reason is not None]
            # The first problem that gives the run its severity (a blocking one when any failed: a
            # check lists its blocking rules first, so an ERROR date's first problem is a blocking one).
            first = next(
                (
                    f"{key}: {found.problems[0]}"
                    for key, (found, _, _) in dates.items()
                    if found.problems and found.severity == run.severity
                ),
                None,
            )
            by_rule = {
                rule: (
                    f"failed on {len(failed)} date(s)"
                    if (failed := _failed_dates(self._by_date[rule]))
                    else "passed"
                )
                for rule in rules
                if self._by_date[rule]
            }
            grouped = len(rules) > 1
            if first is not None and grouped:
                what = f"{spec.asset_key.to_user_string()}.{name}"
                rules_metadata = run.rules_metadata()
                if run.severity == ERROR:
                    also = (
                        f" (warned: {rules_metadata['warned_rules']})"
                        if "warned_rules" in rules_metadata
                        else ""
                    )
                    self._context.log.error(
                        f"{what} failed: {rules_metadata['failed_rules']}{also}; first: {first}"
                    )
                else:
                    self._context.log.warning(
                        f"{what} failed with warnings only (not blocking): {rules_metadata['failed_rules']}; "
                        f"first: {first}"
                    )
            results.append(
                dg.AssetCheckResult(
                    asset_key=spec.asset_key,
                    check_name=name,
                    passed=run.passed,
                    severity=run.severity if run.problems else _severity(spec),
                    description=(
                        first
                        if len(run.problems) == 1
                        else f"{len(run.problems)} problems, first: {first}"
                        if run.problems
                        else self._not_judged_summary(name, skipped, len(dates))
                    ),
                    metadata={
                        "dates_checked": len(dates),
                        **({"dates_not_judged": len(skipped)} if skipped else {}),
                        "dates_failed": len(failed_dates),
                        "failed_dates": ", ".join(failed_dates[:50]) or "none",
                        **({**run.rules_metadata(), **by_rule} if grouped else {}),
                        "problems": dg.MetadataValue.md(
                            "\n".join(f"- {p}" for p in run.problems[:100]) or "none"
                        ),
                    },
                )
            )
        return results

    def _not_judged_summary(self, check: str, skipped: list[str], evaluated: int) -> str | None:
        """A passed run's description when some dates were not judged: the one date's reason, or
        how many were not and the first one's reason."""
        if not skipped:
            return None
        first = self._date(check, skipped[0])[1]
        if len(skipped) == 1 and evaluated == 1:
            return first
        return f"{len(skipped)} of {evaluated} date(s) not judged; {skipped[0]}: {first}"


#: An event log's attribute saying it stores a batch of events of any kind (check evaluations too);
#: b3_platform.sqlite_storage's class sets it.
STORES_ANY_EVENT_BATCH = "stores_any_event_batch"
#: An event log's attribute saying it has `latest_materialization_targets(asset_key, partitions)`:
#: each partition's latest materialization as a check target, without reading the events back whole.
READS_MATERIALIZATION_TARGETS = "reads_materialization_targets"


def _evaluation_message(evaluation: dg.AssetCheckEvaluation) -> str:
    """The message Dagster gives a check evaluation's event (`DagsterEvent.asset_check_evaluation`)."""
    return (
        f"Asset check '{evaluation.check_name}' on '{evaluation.asset_key.to_user_string()}' "
        + ("passed." if evaluation.passed else "did not pass.")
        + ("" if evaluation.description is None else f" Description: '{evaluation.description}'")
    )


def _severity(spec: dg.AssetCheckSpec) -> dg.AssetCheckSeverity:
    """A passed evaluation's severity: the check's own (what a failure of its blocking rules is)."""
    return ERROR if spec.blocking else WARN


def _date_metadata(result: _Result, not_judged: str | None, by_rule: dict[str, str], grouped: bool) -> dict:
    """One date's evaluation metadata in a range run: none when every rule passed, which is what
    nearly every date of a backfill does. Its "Passed" says it all (the check's description
    lists its rules), and each date's evaluation is stored three times in the instance (the
    run's event log, the index and the check's row), so a bare pass is the bulk of a backfill's
    check bookkeeping. A date one rule did not judge says so (its description says why); a failed
    date, or a grouped check's with a rule not judged, gives its problems and each rule's result."""
    if result.passed and not_judged is None and all(r == "passed" for r in by_rule.values()):
        return {}
    if result.passed and not_judged is not None and not grouped:
        return {"judged": False}  # the description says why
    return {
        "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in result.problems) or "none"),
        **({"judged": False} if not_judged is not None else {}),
        **({**result.rules_metadata(), **by_rule} if grouped else {}),
    }


def _failed_dates(by_date: dict[str, list[str]]) -> list[str]:
    return [key for key, problems in by_date.items() if problems]
