"""infra/b3_platform.yaml: cfn-lint, what the template declares, and what moto's CloudFormation
really creates from it.

moto could not prove (asserted below as skipped, or not observable on moto at all):
- the bucket's versioning, public access block, ownership controls, lifecycle rules and landing
  notification, and the bucket policy, the queue policy, the Glue database and the Athena
  workgroup: moto's CloudFormation skips them (they are checked structurally here, and
  `deploy_stack` applies all but the bucket policy through the plain APIs);
- that S3 may send to the queue under the queue policy, that the TLS-only policies deny plain HTTP
  and nothing else, and that the managed policy is enough for the pipeline: moto does not evaluate
  IAM or queue policies (and evaluates the bucket policy's condition wrongly, see below);
- that CreateStack needs CAPABILITY_IAM: moto does not check capabilities (the botocore
  CreateStack documentation lists AWS::IAM::ManagedPolicy among the resources that need it).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from b3_platform import aws
from b3_platform_tests.moto_aws import REGION
from b3_platform_tests.stack import (
    MOTO_CFN_SKIPPED_TYPES,
    TEMPLATE,
    client,
    create_stack,
    deploy_stack,
    load_template,
    session,
    stack_environment,
)

# moto warns once per skipped resource each time it evaluates the stack; create_stack records them.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse .* not supported by moto's CloudFormation:UserWarning"
)

#: What the AWS mode is designed to call (lake, Glue registration, Athena queries, landing sensor);
#: the policy must allow it. test_pipeline_policy_grants_every_call_the_package_makes adds the code's.
PIPELINE_ACTIONS = {
    "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
    "glue:CreateDatabase", "glue:GetDatabase", "glue:CreateTable", "glue:UpdateTable", "glue:GetTable",
    "glue:GetTables", "glue:GetTableVersions", "glue:GetPartitions", "glue:BatchCreatePartition",
    "glue:BatchUpdatePartition", "glue:BatchDeletePartition",
    "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults",
    "athena:StopQueryExecution", "athena:GetWorkGroup",
    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility",
}  # fmt: skip


@pytest.fixture(scope="module")
def template():
    return load_template()


def resource(template, logical_id: str, kind: str) -> dict:
    found = template["Resources"][logical_id]
    assert found["Type"] == kind
    return found


def properties(template, logical_id: str, kind: str) -> dict:
    return resource(template, logical_id, kind)["Properties"]


def statements(document: dict) -> list[dict]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def sub_text(node) -> str:
    """The text of a `!Sub` (either form); a plain string as is."""
    if isinstance(node, str):
        return node
    (key, arg), = node.items()  # fmt: skip
    assert key == "Fn::Sub", node
    return arg if isinstance(arg, str) else arg[0]


# (a) cfn-lint -----------------------------------------------------------------------------------


def test_template_passes_cfn_lint():
    """What `cfn-lint infra/b3_platform.yaml` reports (errors and warnings), for us-east-1 and
    São Paulo, where a B3 lake naturally lives: nothing, with no rule ignored."""
    from cfnlint.api import lint_file
    from cfnlint.config import ManualArgs

    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1", "sa-east-1"]))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []
    assert '"cfn-lint":' not in json.dumps(load_template()), "no rule is ignored in the template's Metadata"


# (b) what the template declares -----------------------------------------------------------------


def test_parameter_defaults_match_the_settings_defaults(template):
    params = template["Parameters"]
    assert params["LakePrefix"]["Default"] == aws.DEFAULT_PREFIX
    assert params["GlueDatabaseName"]["Default"] == aws.DEFAULT_GLUE_DATABASE
    assert params["WorkGroupName"]["Default"] == aws.DEFAULT_WORKGROUP
    assert params["BucketName"]["Default"] == ""  # generated unless given
    assert params["BytesScannedCutoffPerQuery"]["Default"] == 10 * 1024**3
    prefix = re.compile(params["LakePrefix"]["AllowedPattern"])
    assert prefix.match("b3_platform") and prefix.match("lake/b3")
    for bad in ("", "/lake", "lake/", "a//b", "..", "a/../b", "athena-results", "athena-results/x"):
        assert not prefix.match(bad), bad
    database = re.compile(params["GlueDatabaseName"]["AllowedPattern"])
    assert database.match("b3_platform") and not database.match("B3-platform")


def test_bucket_is_versioned_encrypted_private_and_retained(template):
    bucket = resource(template, "LakeBucket", "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}  # SSE-S3, see the template
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    assert "AccessControl" not in props


def test_lifecycle_expires_results_noncurrent_versions_and_incomplete_uploads(template):
    rules = {
        r["Id"]: r
        for r in properties(template, "LakeBucket", "AWS::S3::Bucket")["LifecycleConfiguration"]["Rules"]
    }
    assert all(r["Status"] == "Enabled" for r in rules.values())
    results = rules["expire-athena-results"]
    assert results["Prefix"] == "athena-results/"
    assert results["ExpirationInDays"] == {"Ref": "AthenaResultsRetentionDays"}
    noncurrent = rules["expire-noncurrent-versions"]
    assert noncurrent["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "NoncurrentVersionRetentionDays"}
    }
    assert "Prefix" not in noncurrent and "ExpirationInDays" not in noncurrent  # never expires current data
    assert (
        rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        > 0
    )
    # Only athena-results expires current objects: the lake itself never does.
    assert [r["Id"] for r in rules.values() if "ExpirationInDays" in r] == ["expire-athena-results"]


def test_bucket_policy_denies_plain_http(template):
    props = properties(template, "LakeBucketPolicy", "AWS::S3::BucketPolicy")
    assert props["Bucket"] == {"Ref": "LakeBucket"}
    (deny,) = statements(props["PolicyDocument"])
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [{"Fn::GetAtt": ["LakeBucket", "Arn"]}, {"Fn::Sub": "${LakeBucket.Arn}/*"}]


def test_landing_uploads_notify_the_queue_filtered_on_the_landing_prefix(template):
    props = properties(template, "LakeBucket", "AWS::S3::Bucket")
    (queue,) = props["NotificationConfiguration"]["QueueConfigurations"]
    assert queue["Event"] == "s3:ObjectCreated:*"
    assert queue["Queue"] == {"Fn::GetAtt": ["LandingQueue", "Arn"]}
    (rule,) = queue["Filter"]["S3Key"]["Rules"]
    assert rule["Name"] == "prefix"
    # The same prefix the sensor reads (AwsSettings.landing_prefix), for any LakePrefix.
    assert sub_text(rule["Value"]) == "${LakePrefix}/" + aws.LANDING_FOLDER + "/"
    settings = aws.AwsSettings.from_env(
        {aws.BUCKET_VAR: "b3-lake", aws.REGION_VAR: REGION, aws.PREFIX_VAR: "lake/b3"}
    )
    assert sub_text(rule["Value"]).replace("${LakePrefix}", "lake/b3") == settings.landing_prefix
    assert sub_text(template["Outputs"]["LandingPrefix"]["Value"]) == sub_text(rule["Value"])


def test_bucket_and_queue_policy_have_no_cycle(template):
    """The bucket waits for the queue policy (S3 checks it may send when the notification is set);
    the queue policy names the bucket through the bucket's own name expression, not the bucket."""
    bucket = resource(template, "LakeBucket", "AWS::S3::Bucket")
    assert "LandingQueuePolicy" in as_list(bucket["DependsOn"])
    policy = properties(template, "LandingQueuePolicy", "AWS::SQS::QueuePolicy")
    text = json.dumps(policy)
    assert not re.search(r'"Ref": "LakeBucket"|"Fn::GetAtt": \["LakeBucket"|\$\{LakeBucket', text), text
    assert policy["Queues"] == [{"Ref": "LandingQueue"}]
    allow, deny = statements(policy["PolicyDocument"])
    assert allow["Effect"] == "Allow" and allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Resource"] == {"Fn::GetAtt": ["LandingQueue", "Arn"]}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    text, variables = allow["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    assert text == "arn:${AWS::Partition}:s3:::${Name}"
    assert variables["Name"] == bucket["Properties"]["BucketName"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_queue_has_dead_letter_queue_encryption_and_retention(template):
    queue = properties(template, "LandingQueue", "AWS::SQS::Queue")
    dead = properties(template, "LandingDeadLetterQueue", "AWS::SQS::Queue")
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["LandingDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "LandingMaxReceiveCount"},
    }
    assert queue["SqsManagedSseEnabled"] is True and dead["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == dead["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["VisibilityTimeout"] == {"Ref": "LandingVisibilityTimeoutSeconds"}
    visibility = template["Parameters"]["LandingVisibilityTimeoutSeconds"]
    # Longer than Dagster's default sensor evaluation timeout (60 s).
    assert visibility["Default"] >= 300 and visibility["MinValue"] >= 60


def test_glue_database_and_workgroup(template):
    database = properties(template, "GlueDatabase", "AWS::Glue::Database")
    assert database["CatalogId"] == {"Ref": "AWS::AccountId"}
    assert database["DatabaseInput"]["Name"] == {"Ref": "GlueDatabaseName"}
    workgroup = properties(template, "AthenaWorkGroup", "AWS::Athena::WorkGroup")
    assert workgroup["Name"] == {"Ref": "WorkGroupName"}
    config = workgroup["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["PublishCloudWatchMetricsEnabled"] is True
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "BytesScannedCutoffPerQuery"}
    assert config["EngineVersion"] == {"SelectedEngineVersion": "AUTO"}
    assert sub_text(config["ResultConfiguration"]["OutputLocation"]) == "s3://${LakeBucket}/athena-results/"
    assert sub_text(template["Outputs"]["AthenaOutput"]["Value"]) == "s3://${LakeBucket}/athena-results/"


def test_pipeline_policy_is_least_privilege(template):
    policy = resource(template, "PipelinePolicy", "AWS::IAM::ManagedPolicy")
    # No custom name: CAPABILITY_IAM is enough (CAPABILITY_NAMED_IAM otherwise), no collisions.
    assert "ManagedPolicyName" not in policy["Properties"]
    granted = set()
    for statement in statements(policy["Properties"]["PolicyDocument"]):
        assert statement["Effect"] == "Allow"
        assert not {"NotAction", "NotResource", "Principal"} & set(statement)
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), actions  # no s3:*, no glue:Get*
        services = {action.split(":")[0] for action in actions}
        assert len(services) == 1, actions
        service = services.pop()
        for res in as_list(statement["Resource"]):
            assert res != "*", statement["Sid"]
            text = res if isinstance(res, str) else json.dumps(res)
            if service == "s3":
                # the bucket, its lake prefix, its query results: nothing else
                if res == {"Fn::GetAtt": ["LakeBucket", "Arn"]}:
                    assert set(actions) <= {
                        "s3:GetBucketLocation",
                        "s3:ListBucket",
                        "s3:ListBucketMultipartUploads",
                    }
                else:
                    assert sub_text(res) in (
                        "${LakeBucket.Arn}/${LakePrefix}/*",
                        "${LakeBucket.Arn}/athena-results/*",
                    ), text
                    assert not {"s3:ListBucket", "s3:GetBucketLocation"} & set(actions)
            elif service == "glue":
                assert sub_text(res) in (
                    "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog",
                    "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/${GlueDatabaseName}",
                    "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/${GlueDatabaseName}/*",
                ), text
            elif service == "athena":
                assert sub_text(res) == (
                    "arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:workgroup/${WorkGroupName}"
                )
            elif service == "sqs":
                assert res == {"Fn::GetAtt": ["LandingQueue", "Arn"]}
            else:
                pytest.fail(f"unexpected service {service}")
        granted |= set(actions)
    assert PIPELINE_ACTIONS <= granted, PIPELINE_ACTIONS - granted
    assert "sqs:SendMessage" not in granted and not any(a.startswith(("iam:", "kms:")) for a in granted)
    assert not any(a.startswith(("s3:Put", "s3:Delete")) and "Bucket" in a for a in granted)


#: Names in b3_platform's source that match an AWS operation but are not AWS calls.
NOT_AWS_CALLS = {
    "glue:DeletePartition",  # b3_platform.lake.tables.delete_partition (a lake file)
    "glue:GetConnection",  # DuckDB connections
    "athena:GetDatabase",  # the Glue call of the same name
    "sqs:SendMessage",  # smtplib's send_message (alert e-mails)
}
#: S3 operations authorized under another action name.
S3_ACTION_OF = {
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "DeleteObjects": "s3:DeleteObject",  # a batch delete is authorized per key, as a DeleteObject
}


def test_pipeline_policy_grants_every_call_the_package_makes(template):
    """Every S3, Glue, Athena and SQS operation named in b3_platform's source (as the boto3 method
    or operation string) is granted: a new call without a grant fails here, not on AWS."""
    import botocore.session
    from botocore import xform_name

    source = "\n".join(p.read_text() for p in Path(aws.__file__).parent.rglob("*.py"))
    words = set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", source))
    models = botocore.session.get_session()
    needed = set()
    for service in ("s3", "glue", "athena", "sqs"):
        for operation in models.get_service_model(service).operation_names:
            if xform_name(operation) in words:
                needed.add(
                    S3_ACTION_OF.get(operation, f"s3:{operation}")
                    if service == "s3"
                    else f"{service}:{operation}"
                )
    assert {"s3:PutObject", "glue:CreateTable", "athena:StartQueryExecution", "sqs:ReceiveMessage"} <= needed
    granted = {
        action
        for statement in statements(
            properties(template, "PipelinePolicy", "AWS::IAM::ManagedPolicy")["PolicyDocument"]
        )
        for action in as_list(statement["Action"])
    }
    assert needed - NOT_AWS_CALLS <= granted, (needed - NOT_AWS_CALLS) - granted


def test_outputs_give_every_setting_of_the_aws_mode(template):
    outputs = template["Outputs"]
    assert {
        "BucketName", "LakePrefix", "LandingPrefix", "QueueUrl", "QueueArn", "GlueDatabase",
        "WorkGroup", "AthenaOutput", "PipelinePolicyArn", "EnvironmentExports",
    } <= set(outputs)  # fmt: skip
    exports = sub_text(outputs["EnvironmentExports"]["Value"])
    assert exports.startswith("export ")
    names = [item.split("=", 1)[0] for item in exports[len("export ") :].split()]
    assert names == [
        "B3_PLATFORM_ENV", aws.BUCKET_VAR, aws.PREFIX_VAR, aws.REGION_VAR, aws.GLUE_DATABASE_VAR,
        aws.WORKGROUP_VAR, aws.ATHENA_OUTPUT_VAR, aws.LANDING_QUEUE_VAR,
    ]  # fmt: skip
    # No output !Ref/!GetAtts a resource moto's CloudFormation skips (see the test below).
    skipped = {lid for lid, r in template["Resources"].items() if r["Type"] in MOTO_CFN_SKIPPED_TYPES}
    for name, output in outputs.items():
        assert not skipped & set(re.findall(r'"(?:Ref|Fn::GetAtt)": \[?"(\w+)', json.dumps(output))), name
        assert not skipped & set(re.findall(r"\$\{(\w+)", json.dumps(output))), name


# (c) what moto's CloudFormation really does -----------------------------------------------------


def test_moto_cloudformation_creates_the_bucket_queues_and_policy(moto_server):
    stack = create_stack(moto_server)
    assert stack.skipped_types == MOTO_CFN_SKIPPED_TYPES
    assert set(stack.physical_ids) == {
        "LakeBucket",
        "LandingDeadLetterQueue",
        "LandingQueue",
        "PipelinePolicy",
    }
    s3, sqs, iam = (client(moto_server, s) for s in ("s3", "sqs", "iam"))
    outputs = stack.outputs

    # The bucket, under the generated name built from the stack id (the queue policy's expression).
    bucket = outputs["BucketName"]
    assert bucket == stack.physical_ids["LakeBucket"]
    assert bucket == f"b3-platform-123456789012-{REGION}-{stack.stack_id.rsplit('-', 1)[1]}"
    s3.head_bucket(Bucket=bucket)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    # The queue and its dead-letter queue, with the template's attributes.
    queue = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
    dead = sqs.get_queue_attributes(QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert queue["QueueArn"] == outputs["QueueArn"]
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead["QueueArn"],
        "maxReceiveCount": 5,
    }
    assert (queue["VisibilityTimeout"], queue["MessageRetentionPeriod"]) == ("300", "1209600")
    assert dead["MessageRetentionPeriod"] == "1209600"
    assert queue["SqsManagedSseEnabled"] == dead["SqsManagedSseEnabled"] == "true"

    # The managed policy, its document exactly the template's, resolved.
    arn = outputs["PipelinePolicyArn"]
    assert arn == stack.physical_ids["PipelinePolicy"]
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    document = json.loads(unquote(document)) if isinstance(document, str) else document
    expected = stack.resolver(moto_server).resolve(
        stack.template["Resources"]["PipelinePolicy"]["Properties"]
    )
    assert document == json.loads(json.dumps(expected["PolicyDocument"]))
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["LakeObjects"]["Resource"] == f"arn:aws:s3:::{bucket}/b3_platform/*"
    assert by_sid["LandingQueue"]["Resource"] == outputs["QueueArn"]
    assert by_sid["GlueDatabase"]["Resource"][1].endswith(f":database/{stack.parameters['GlueDatabaseName']}")

    # Every output resolved.
    assert all("${" not in value and value for value in outputs.values()), outputs
    assert outputs["AthenaOutput"] == f"s3://{bucket}/athena-results/"
    assert (outputs["GlueDatabase"], outputs["WorkGroup"]) == (
        stack.parameters["GlueDatabaseName"],
        stack.parameters["WorkGroupName"],
    )

    # What moto's CloudFormation skipped: none of it exists until deploy_stack applies it.
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    for call, code in (
        (s3.get_public_access_block, "NoSuchPublicAccessBlockConfiguration"),
        (s3.get_bucket_ownership_controls, "OwnershipControlsNotFoundError"),
        (s3.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration"),
        (s3.get_bucket_policy, "NoSuchBucketPolicy"),
    ):
        with pytest.raises(ClientError) as raised:
            call(Bucket=bucket)
        assert raised.value.response["Error"]["Code"] == code
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert not notification.get("QueueConfigurations")
    assert "Policy" not in queue
    with pytest.raises(ClientError, match="EntityNotFoundException"):
        client(moto_server, "glue").get_database(Name=outputs["GlueDatabase"])
    assert "WorkGroup" not in client(moto_server, "athena").get_work_group(WorkGroup=outputs["WorkGroup"])


def test_moto_cloudformation_outputs_that_name_a_skipped_resource(moto_server):
    """Why the template's outputs take the Glue database and workgroup names from the parameters
    (on AWS the same value as !Ref of those resources): on moto, !Ref of a skipped resource drops
    the output, !Sub leaves `${...}` in it, and !GetAtt fails CreateStack with an HTTP 500."""
    # No retries: the !GetAtt case is a server error, which boto3 would otherwise retry.
    no_retries = Config(retries={"max_attempts": 1})
    cfn = session().client("cloudformation", endpoint_url=moto_server.endpoint, config=no_retries)

    def stack_outputs(value) -> dict[str, str]:
        name = f"skipped-{uuid.uuid4().hex[:10]}"
        database = {"CatalogId": "123456789012", "DatabaseInput": {"Name": name.replace("-", "_")}}
        body = {
            "Resources": {
                "Db": {"Type": "AWS::Glue::Database", "Properties": database},
                "Queue": {"Type": "AWS::SQS::Queue"},
            },
            "Outputs": {"Name": {"Value": value}, "Queue": {"Value": {"Ref": "Queue"}}},
        }
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(body))
        described = cfn.describe_stacks(StackName=name)["Stacks"][0]
        assert described["StackStatus"] == "CREATE_COMPLETE"
        return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}

    assert set(stack_outputs({"Ref": "Db"})) == {"Queue"}
    assert stack_outputs({"Fn::Sub": "db=${Db}"})["Name"] == "db=${Db}"
    with pytest.raises(ResponseParserError, match="500 Internal Server Error"):
        stack_outputs({"Fn::GetAtt": ["Db", "Name"]})


def test_deploy_stack_applies_what_moto_cloudformation_skips(moto_server):
    outputs = deploy_stack(moto_server, BucketName=f"b3-lake-{uuid.uuid4().hex[:10]}", LakePrefix="lake/b3")
    s3, sqs = client(moto_server, "s3"), client(moto_server, "sqs")
    bucket = outputs["BucketName"]
    assert outputs["LandingPrefix"] == "lake/b3/landing/"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert lifecycle["expire-athena-results"]["Expiration"]["Days"] == 7
    assert lifecycle["expire-athena-results"]["Filter"]["Prefix"] == "athena-results/"
    assert lifecycle["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert (
        lifecycle["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"][
            "DaysAfterInitiation"
        ]
        == 7
    )
    (notify,) = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert notify["QueueArn"] == outputs["QueueArn"] and notify["Events"] == ["s3:ObjectCreated:*"]
    assert notify["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "lake/b3/landing/"}]

    # The queue policy names the bucket CloudFormation created (a constructed ARN, no !GetAtt).
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["Policy"])["Attributes"][
            "Policy"
        ]
    )
    allow = policy["Statement"][0]
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{bucket}"
    assert allow["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"

    database = client(moto_server, "glue").get_database(Name=outputs["GlueDatabase"])["Database"]
    assert database["LocationUri"] == f"s3://{bucket}/lake/b3/"
    workgroup = client(moto_server, "athena").get_work_group(WorkGroup=outputs["WorkGroup"])["WorkGroup"]
    config = workgroup["Configuration"]
    assert config["ResultConfiguration"]["OutputLocation"] == outputs["AthenaOutput"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == 10 * 1024**3

    # The bucket policy is left out: under it moto refuses every object write (HTTP or not).
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=bucket)


def test_moto_refuses_object_writes_under_the_tls_bucket_policy(moto_server):
    """Why deploy_stack does not apply the bucket policy: moto gives a Deny whose condition it cannot
    evaluate (aws:SecureTransport) to every object request, so nothing could be written. When this
    fails, moto has changed: apply the policy in stack.py."""
    stack = create_stack(moto_server)
    resolver = stack.resolver(moto_server)
    props = resolver.resolve(stack.template["Resources"]["LakeBucketPolicy"]["Properties"])
    s3 = client(moto_server, "s3")
    s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=props["Bucket"], Key="b3_platform/raw/x.json", Body=b"{}")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_landing_upload_on_the_deployed_stack_reaches_the_queue(moto_server):
    outputs = deploy_stack(moto_server)
    s3, sqs = client(moto_server, "s3"), client(moto_server, "sqs")
    bucket, queue = outputs["BucketName"], outputs["QueueUrl"]
    s3.put_object(Bucket=bucket, Key=f"{outputs['LakePrefix']}/raw/not-announced.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key=f"{outputs['LandingPrefix']}IBOV/2025-07-10.json", Body=b"{}")
    keys = []
    for _ in range(3):
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", ()):
            body = json.loads(message["Body"])
            keys += [
                unquote(r["s3"]["object"]["key"])
                for r in body.get("Records", ())
                if r["eventName"].startswith("ObjectCreated")
            ]
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert keys == ["b3_platform/landing/IBOV/2025-07-10.json"]


def test_stack_environment_is_a_valid_aws_configuration(moto_server):
    outputs = deploy_stack(moto_server)
    env = stack_environment(outputs, moto_server.endpoint)
    assert env["B3_PLATFORM_ENV"] == "aws"
    settings = aws.AwsSettings.from_env(env)
    assert (settings.bucket, settings.prefix, settings.region) == (
        outputs["BucketName"],
        "b3_platform",
        REGION,
    )
    assert (settings.glue_database, settings.athena_workgroup) == (
        outputs["GlueDatabase"],
        outputs["WorkGroup"],
    )
    assert settings.athena_output == outputs["AthenaOutput"]
    assert settings.landing_queue_url == outputs["QueueUrl"]
    assert settings.landing_prefix == outputs["LandingPrefix"]
    assert settings.lake_root == f"s3://{outputs['BucketName']}/b3_platform"
