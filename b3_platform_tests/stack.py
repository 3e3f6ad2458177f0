"""`infra/b3_platform.yaml` deployed on the moto server: the tests' stand-in for
`aws cloudformation deploy`, so AWS-mode tests can run the pipeline against the stack's resources.

moto's CloudFormation (5.2.x) creates only part of the template (measured in test_infra.py):

- created: the bucket (name and `BucketEncryption` only), both SQS queues (with the redrive
  policy, retention, visibility timeout, SSE flag) and the IAM managed policy; the outputs resolve;
- skipped with a "not supported by moto's CloudFormation implementation" warning:
  `AWS::S3::BucketPolicy`, `AWS::SQS::QueuePolicy`, `AWS::Glue::Database`, `AWS::Athena::WorkGroup`;
- silently ignored bucket properties: versioning, public access block, ownership controls,
  lifecycle, notification configuration.

`deploy_stack` creates the stack, then applies **what moto's CloudFormation skips** through the plain
boto3 APIs, from the template's own (resolved) properties — so nothing is restated here and a
change to the template reaches the tests. A bucket property or resource type this module cannot
apply raises instead of being dropped. One exception, on purpose: the bucket policy is *not*
applied, because moto evaluates its `aws:SecureTransport` condition wrongly (a condition it has no
value for turns the Deny statement into a deny of every object request, HTTPS or not), so every
PutObject would fail; test_infra.py asserts that behaviour, so this exception is revisited when
moto changes.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b3_platform_tests.moto_aws import REGION

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "b3_platform.yaml"

#: The template's resource types moto's CloudFormation does not create (it warns and goes on).
MOTO_CFN_SKIPPED_TYPES = frozenset(
    {"AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::Glue::Database", "AWS::Athena::WorkGroup"}
)
#: Of the RunDagster=true part (ECS, RDS, VPC, roles, alert topic), the types moto's CloudFormation
#: does not create: the database secret. Everything referring to it (the RDS master user and
#: password dynamic references, the task definitions' `secrets`) stays an unresolved string on moto.
MOTO_CFN_SKIPPED_DAGSTER_TYPES = frozenset({"AWS::SecretsManager::Secret"})
#: AWS::S3::Bucket properties moto's CloudFormation applies (moto/s3/models.py
#: FakeBucket.create_from_cloudformation_json); any other property is ignored by it.
MOTO_CFN_BUCKET_PROPERTIES = frozenset({"BucketName", "BucketEncryption", "Tags"})
#: Skipped types `apply_what_moto_cfn_skips` leaves alone, with the reason.
NOT_APPLIED = {"AWS::S3::BucketPolicy": "moto denies every object request under its aws:SecureTransport Deny"}

_NO_VALUE = object()
_SKIP_WARNING = re.compile(r"Tried to parse (\S+) but it's not supported by moto's CloudFormation")


@functools.lru_cache
def session():
    import boto3

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@functools.lru_cache
def _client(endpoint: str, service: str):
    return session().client(service, endpoint_url=endpoint)


def client(server, service: str):
    """A boto3 client on the moto server, cached: building one per call (a new session each time)
    costs about 0.4 s of model loading."""
    return _client(server.endpoint, service)


def load_template() -> dict[str, Any]:
    """The template as data, short-form tags (`!Ref`, `!Sub`, ...) decoded to `Ref`/`Fn::*` keys."""
    from cfnlint.decode import decode

    template, matches = decode(str(TEMPLATE))
    if matches or template is None:
        raise ValueError(f"{TEMPLATE} does not parse: {[str(m) for m in matches]}")
    return template


@dataclass
class Stack:
    """A stack as moto's CloudFormation created it."""

    name: str
    stack_id: str
    parameters: dict[str, Any]
    outputs: dict[str, str]
    #: logical id → physical id, for the resources moto's CloudFormation really created
    physical_ids: dict[str, str]
    #: resource types moto's CloudFormation reported skipping
    skipped_types: set[str]
    template: dict[str, Any] = field(repr=False)
    #: what `apply_what_moto_cfn_skips` applied, one line each
    applied: list[str] = field(default_factory=list)

    def resolver(self, server) -> Resolver:
        return Resolver.for_stack(self, server)


def create_stack(server, *, stack_name: str | None = None, **parameters: str) -> Stack:
    """CreateStack on moto with the real template (as `aws cloudformation deploy` would, with
    CAPABILITY_IAM), wait for CREATE_COMPLETE and describe what was created.

    Glue database and workgroup names default to names unique to this stack: they are
    account-wide, and several tests share one moto server."""
    tag = uuid.uuid4().hex[:10]
    name = stack_name or f"b3-platform-{tag}"
    parameters = {"GlueDatabaseName": f"b3_{tag}", "WorkGroupName": f"b3-{tag}", **parameters}
    cfn = client(server, "cloudformation")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfn.create_stack(
            StackName=name,
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM"],
        )
        cfn.get_waiter("stack_create_complete").wait(
            StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        described = cfn.describe_stacks(StackName=name)["Stacks"][0]
    skipped = {m.group(1) for w in caught if (m := _SKIP_WARNING.search(str(w.message)))}
    resources = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    template = load_template()
    return Stack(
        name=name,
        stack_id=described["StackId"],
        parameters=_typed_parameters(template, parameters),
        outputs={o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", ())},
        # moto lists each skipped resource as a blank entry (no logical id): left out here.
        physical_ids={
            r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"]
        },
        skipped_types=skipped,
        template=template,
    )


def deploy_stack(server, *, stack_name: str | None = None, **parameters: str) -> dict[str, str]:
    """The template deployed on moto as completely as moto allows: `create_stack`, then
    `apply_what_moto_cfn_skips`. Returns the stack's outputs (BucketName, QueueUrl, ...)."""
    stack = create_stack(server, stack_name=stack_name, **parameters)
    apply_what_moto_cfn_skips(server, stack)
    return stack.outputs


def stack_environment(outputs: dict[str, str], endpoint_url: str) -> dict[str, str]:
    """The `EnvironmentExports` output as a dict, plus the moto endpoint (the one variable a real
    deployment does not set)."""
    exports = outputs["EnvironmentExports"]
    assert exports.startswith("export "), exports
    env = dict(item.split("=", 1) for item in exports[len("export ") :].split())
    return {**env, "B3_PLATFORM_AWS_ENDPOINT_URL": endpoint_url}


# What moto's CloudFormation skips ---------------------------------------------------------------


def apply_what_moto_cfn_skips(server, stack: Stack) -> None:
    """Apply, through the plain boto3 APIs, the template's bucket properties moto's CloudFormation
    ignores and the resources it skips (except NOT_APPLIED), from their resolved properties."""
    resolver = stack.resolver(server)
    resources = stack.template["Resources"]
    # Same order as the real stack: the queue policy before the bucket's notification.
    order = sorted(resources, key=lambda lid: resources[lid]["Type"] == "AWS::S3::Bucket")
    for logical_id in order:
        resource = resources[logical_id]
        kind = resource["Type"]
        if kind == "AWS::S3::Bucket":
            props = resolver.resolve(resource.get("Properties", {}))
            _apply_bucket_properties(server, stack, stack.physical_ids[logical_id], props)
        elif kind in stack.skipped_types:
            if "Condition" in resource and not resolver.condition(resource["Condition"]):
                continue
            if kind in NOT_APPLIED:
                stack.applied.append(f"{logical_id} ({kind}) not applied: {NOT_APPLIED[kind]}")
                continue
            props = resolver.resolve(resource.get("Properties", {}))
            applied = _APPLY_RESOURCE[kind](server, props)
            stack.applied.append(f"{logical_id} ({kind})" + (f": {applied}" if applied else ""))


def _apply_bucket_properties(server, stack: Stack, bucket: str, props: dict[str, Any]) -> None:
    s3 = client(server, "s3")
    for name, value in props.items():
        if name in MOTO_CFN_BUCKET_PROPERTIES:
            continue
        if name == "VersioningConfiguration":
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": value["Status"]})
        elif name == "PublicAccessBlockConfiguration":
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=value)
        elif name == "OwnershipControls":
            s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=value)
        elif name == "LifecycleConfiguration":
            rules = [_lifecycle_rule(rule) for rule in value["Rules"]]
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        elif name == "NotificationConfiguration":
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration=_notification(value)
            )
        else:
            raise NotImplementedError(f"AWS::S3::Bucket property {name}: moto's CloudFormation ignores it")
        stack.applied.append(f"bucket {name}")


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    rule = dict(rule)
    api: dict[str, Any] = {
        "ID": rule.pop("Id"),
        "Status": rule.pop("Status"),
        "Filter": {"Prefix": rule.pop("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        api.setdefault("Expiration", {})["Days"] = rule.pop("ExpirationInDays")
    if "ExpiredObjectDeleteMarker" in rule:
        api.setdefault("Expiration", {})["ExpiredObjectDeleteMarker"] = rule.pop("ExpiredObjectDeleteMarker")
    if "NoncurrentVersionExpiration" in rule:
        api["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": rule.pop("NoncurrentVersionExpiration")["NoncurrentDays"]
        }
    if "AbortIncompleteMultipartUpload" in rule:
        api["AbortIncompleteMultipartUpload"] = rule.pop("AbortIncompleteMultipartUpload")
    if rule:
        raise NotImplementedError(f"lifecycle rule properties {sorted(rule)}")
    return api


def _notification(config: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation NotificationConfiguration in the S3 API's shape (queues only)."""
    unknown = set(config) - {"QueueConfigurations"}
    if unknown:
        raise NotImplementedError(f"notification configurations {sorted(unknown)}")
    return {
        "QueueConfigurations": [
            {
                "QueueArn": queue["Queue"],
                "Events": [queue["Event"]],
                "Filter": {
                    "Key": {
                        "FilterRules": [
                            {"Name": rule["Name"], "Value": rule["Value"]}
                            for rule in queue.get("Filter", {}).get("S3Key", {}).get("Rules", ())
                        ]
                    }
                },
            }
            for queue in config["QueueConfigurations"]
        ]
    }


def _apply_queue_policy(server, props: dict[str, Any]) -> None:
    sqs = client(server, "sqs")
    for queue_url in props["Queues"]:
        sqs.set_queue_attributes(
            QueueUrl=queue_url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
        )


def _apply_glue_database(server, props: dict[str, Any]) -> None:
    client(server, "glue").create_database(CatalogId=props["CatalogId"], DatabaseInput=props["DatabaseInput"])


def _apply_workgroup(server, props: dict[str, Any]) -> None:
    # State and RecursiveDeleteOption are CloudFormation-only (a new workgroup is ENABLED).
    client(server, "athena").create_work_group(
        Name=props["Name"],
        Description=props.get("Description", ""),
        Configuration=props["WorkGroupConfiguration"],
    )


def _apply_secret(server, props: dict[str, Any]) -> str:
    """The secret with a value generated as GenerateSecretString says (Secrets Manager's own
    GetRandomPassword); returns its ARN. Named like CloudFormation names it: no Name property."""
    secrets = client(server, "secretsmanager")
    generate = props["GenerateSecretString"]
    value = json.loads(generate["SecretStringTemplate"])
    value[generate["GenerateStringKey"]] = secrets.get_random_password(
        PasswordLength=generate["PasswordLength"],
        ExcludePunctuation=generate.get("ExcludePunctuation", False),
    )["RandomPassword"]
    created = secrets.create_secret(
        Name=props.get("Name", f"DagsterDbSecret-{uuid.uuid4().hex[:12]}"),
        Description=props.get("Description", ""),
        SecretString=json.dumps(value),
    )
    return created["ARN"]


_APPLY_RESOURCE = {
    "AWS::SecretsManager::Secret": _apply_secret,
    "AWS::SQS::QueuePolicy": _apply_queue_policy,
    "AWS::Glue::Database": _apply_glue_database,
    "AWS::Athena::WorkGroup": _apply_workgroup,
}


# Intrinsic functions -----------------------------------------------------------------------------


def _typed_parameters(template: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name, spec in template.get("Parameters", {}).items():
        value = given.get(name, spec.get("Default"))
        if value is None:
            raise ValueError(f"parameter {name} has no value")
        values[name] = int(value) if spec["Type"] == "Number" else str(value)
    return values


class Resolver:
    """Resolves the intrinsic functions this template uses (Ref, Fn::GetAtt, Fn::Sub, Fn::If,
    Fn::Equals, Fn::Not, Fn::Or, Fn::And, Condition, Fn::Join, Fn::Select, Fn::Split) against a
    created stack; anything else raises."""

    def __init__(self, template: dict[str, Any], refs: dict[str, Any], attrs: dict[tuple[str, str], str]):
        self.template = template
        self.refs = refs
        self.attrs = attrs

    @classmethod
    def for_stack(cls, stack: Stack, server) -> Resolver:
        account = client(server, "sts").get_caller_identity()["Account"]
        refs: dict[str, Any] = {
            "AWS::AccountId": account,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack.name,
            "AWS::StackId": stack.stack_id,
            "AWS::NoValue": _NO_VALUE,
            **stack.parameters,
            **stack.physical_ids,
        }
        attrs = {}
        sqs = client(server, "sqs")
        for logical_id, physical in stack.physical_ids.items():
            kind = stack.template["Resources"][logical_id]["Type"]
            if kind == "AWS::S3::Bucket":
                attrs[(logical_id, "Arn")] = f"arn:aws:s3:::{physical}"
            elif kind == "AWS::SQS::Queue":
                got = sqs.get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])
                attrs[(logical_id, "Arn")] = got["Attributes"]["QueueArn"]
        return cls(stack.template, refs, attrs)

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.refs[arg]
            if key == "Fn::GetAtt":
                logical_id, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attrs[(logical_id, attr)]
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                name, if_true, if_false = arg
                return self.resolve(if_true if self.condition(name) else if_false)
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if key.startswith("Fn::") or key == "Condition":
                raise NotImplementedError(key)
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {name: self.resolve(value) for name, value in variables.items()}

        def value(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self.attrs[tuple(name.split(".", 1))])
            return str(self.refs[name])

        return re.sub(r"\$\{([^}]+)\}", value, text)
