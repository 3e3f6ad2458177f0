"""Dagster itself on AWS: the RunDagster=true part of infra/b3_platform.yaml (ECS Fargate services
for the webserver and the daemon, EcsRunLauncher runs, RDS PostgreSQL with its password in Secrets
Manager, compute logs in the lake bucket, the alert topic) and the instance file the tasks use,
deploy/aws/dagster.yaml.

What the template declares is checked structurally; what moto's CloudFormation creates from it is
checked on moto; and the instance file is loaded with the environment the stack's task definition
really has (as moto returns it), its EcsRunLauncher finding the run task definition on moto and
its S3ComputeLogManager writing to the stack's bucket.

Not provable here: that Fargate starts the tasks and they reach RDS (moto does not run
containers); IAM evaluation of the roles (moto does not evaluate IAM); the database secret
(moto's CloudFormation skips AWS::SecretsManager::Secret, so the references to it stay unresolved
strings on moto, pinned below); RDS's own handling of the dynamic references.
"""

from __future__ import annotations

import json
import re

import dagster as dg
import pytest
import yaml

from b3_platform_tests.conftest import REPO
from b3_platform_tests.stack import (
    MOTO_CFN_SKIPPED_DAGSTER_TYPES,
    MOTO_CFN_SKIPPED_TYPES,
    apply_what_moto_cfn_skips,
    client,
    create_stack,
    load_template,
    stack_environment,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse .* not supported by moto's CloudFormation:UserWarning"
)

AWS_INSTANCE = REPO / "deploy" / "aws" / "dagster.yaml"
COMPOSE_ENV = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())["x-dagster-env"]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/b3-platform:test"
DAGSTER_RESOURCES = {
    "DagsterVpc", "DagsterInternetGateway", "DagsterGatewayAttachment", "DagsterSubnetA", "DagsterSubnetB",
    "DagsterRouteTable", "DagsterDefaultRoute", "DagsterSubnetARoutes", "DagsterSubnetBRoutes",
    "DagsterTaskSecurityGroup", "DagsterDbSecurityGroup", "DagsterDbSubnetGroup", "DagsterDatabase",
    "DagsterCluster", "DagsterLogGroup", "DagsterExecutionRole", "DagsterRunRole", "DagsterDaemonRole",
    "DagsterWebserverRole", "DagsterWebserverTaskDefinition", "DagsterDaemonTaskDefinition",
    "DagsterRunTaskDefinition", "DagsterWebserverService", "DagsterDaemonService",
}  # fmt: skip
TASKS = ("DagsterWebserverTaskDefinition", "DagsterDaemonTaskDefinition", "DagsterRunTaskDefinition")


@pytest.fixture(scope="module")
def template():
    return load_template()


def env_vars_of(instance_file) -> set[str]:
    """Every `env:` variable an instance file reads."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"env"}:
                found.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(instance_file.read_text()))
    return found


def container(template, logical_id: str) -> dict:
    (only,) = template["Resources"][logical_id]["Properties"]["ContainerDefinitions"]
    return only


def statements(role: dict) -> list[dict]:
    return [
        s for policy in role["Properties"].get("Policies", ()) for s in policy["PolicyDocument"]["Statement"]
    ]


# What the template declares ---------------------------------------------------------------------


def test_the_dagster_part_is_off_unless_switched_on(template):
    conditional = {lid for lid, r in template["Resources"].items() if "Condition" in r}
    assert (
        DAGSTER_RESOURCES | {"DagsterDbSecret", "DagsterUiIngress", "AlertTopic", "AlertPublishPolicy"}
        == conditional
    )
    assert template["Parameters"]["RunDagster"]["Default"] == "false"
    assert template["Conditions"]["DagsterOnAws"] == {"Fn::Equals": [{"Ref": "RunDagster"}, "true"]}
    (assertion,) = template["Rules"]["DagsterNeedsAnImage"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "DagsterImage"}, ""]}]}


def test_every_task_has_the_settings_the_instance_and_the_pipeline_read(template):
    """The variables deploy/aws/dagster.yaml reads, the AWS mode's settings (the same list as the
    EnvironmentExports output) and the alert topic reach every container; the password and user
    only as ECS secrets from the database secret."""
    exports = template["Outputs"]["EnvironmentExports"]["Value"]["Fn::Sub"]
    pipeline = [item.split("=", 1)[0] for item in exports[len("export ") :].split()]
    read_by_instance = env_vars_of(AWS_INSTANCE)
    assert read_by_instance == {
        "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB",
        "DAGSTER_ECS_RUN_TASK_DEFINITION", "B3_PLATFORM_S3_BUCKET",
    }  # fmt: skip
    for logical_id in TASKS:
        definition = container(template, logical_id)
        env = {e["Name"]: e["Value"] for e in definition["Environment"]}
        secrets = {s["Name"]: s["ValueFrom"] for s in definition["Secrets"]}
        assert read_by_instance <= set(env) | set(secrets), logical_id
        assert set(pipeline) <= set(env) and env["B3_PLATFORM_ENV"] == "aws"
        assert env["B3_PLATFORM_ALERT_SNS_TOPIC_ARN"] == {"Ref": "AlertTopic"}
        assert env["DAGSTER_HOME"] == "/opt/dagster/aws" and env["PGSSLMODE"] == "require"
        # Dagster's event batching, as the compose deployment's (test_deploy.py asserts it there).
        assert env["DAGSTER_EVENT_BATCH_SIZE"] == COMPOSE_ENV["DAGSTER_EVENT_BATCH_SIZE"], logical_id
        assert secrets == {
            "DAGSTER_PG_USERNAME": {"Fn::Sub": "${DagsterDbSecret}:username::"},
            "DAGSTER_PG_PASSWORD": {"Fn::Sub": "${DagsterDbSecret}:password::"},
        }
        assert "PASSWORD" not in json.dumps(env)
    # The image puts the AWS instance where DAGSTER_HOME points, and the run container is the one
    # the launcher overrides.
    assert (
        "COPY deploy/aws/dagster.yaml /opt/dagster/aws/dagster.yaml"
        in (REPO / "deploy" / "Dockerfile").read_text()
    )
    launcher = yaml.safe_load(AWS_INSTANCE.read_text())["run_launcher"]
    assert (
        container(template, "DagsterRunTaskDefinition")["Name"]
        == launcher["config"]["container_name"]
        == "run"
    )
    assert "Command" not in container(template, "DagsterRunTaskDefinition")


def test_database_is_private_encrypted_and_its_password_only_in_secrets_manager(template):
    db = template["Resources"]["DagsterDatabase"]
    props = db["Properties"]
    assert (props["Engine"], props["StorageEncrypted"], props["PubliclyAccessible"]) == (
        "postgres",
        True,
        False,
    )
    assert db["DeletionPolicy"] == db["UpdateReplacePolicy"] == "Snapshot"
    assert props["MasterUserPassword"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${DagsterDbSecret}:SecretString:password}}"
    }
    generate = template["Resources"]["DagsterDbSecret"]["Properties"]["GenerateSecretString"]
    assert generate["GenerateStringKey"] == "password" and generate["PasswordLength"] >= 32
    (ingress,) = template["Resources"]["DagsterDbSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress["SourceSecurityGroupId"] == {"Fn::GetAtt": ["DagsterTaskSecurityGroup", "GroupId"]}
    assert (ingress["FromPort"], ingress["ToPort"]) == (5432, 5432) and "CidrIp" not in ingress
    assert "SecurityGroupIngress" not in template["Resources"]["DagsterTaskSecurityGroup"]["Properties"]


def test_task_roles_are_least_privilege(template):
    resources = template["Resources"]
    logs_prefix = yaml.safe_load(AWS_INSTANCE.read_text())["compute_logs"]["config"]["prefix"]
    for logical_id in ("DagsterRunRole", "DagsterDaemonRole", "DagsterWebserverRole", "DagsterExecutionRole"):
        for statement in statements(resources[logical_id]):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in a for a in actions), (logical_id, actions)
            if statement["Resource"] == "*":  # only reads AWS has no resource-level permission for
                assert set(actions) <= {"ecs:DescribeTaskDefinition", "ec2:DescribeNetworkInterfaces"}
            for action in actions:
                if action.startswith("s3:") and action != "s3:ListBucket":
                    assert statement["Resource"] == {"Fn::Sub": "${LakeBucket.Arn}/" + logs_prefix + "/*"}
    granted = {
        lid: {
            a
            for s in statements(resources[lid])
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        }
        for lid in ("DagsterRunRole", "DagsterDaemonRole", "DagsterWebserverRole")
    }
    assert "ecs:RunTask" in granted["DagsterDaemonRole"] and "iam:PassRole" in granted["DagsterDaemonRole"]
    assert not {"ecs:RunTask", "iam:PassRole"} & (granted["DagsterRunRole"] | granted["DagsterWebserverRole"])
    assert granted["DagsterRunRole"] == {"s3:PutObject", "ecs:DescribeTaskDefinition"}
    assert "s3:PutObject" not in granted["DagsterWebserverRole"]
    (pass_role,) = [s for s in statements(resources["DagsterDaemonRole"]) if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == [
        {"Fn::GetAtt": ["DagsterRunRole", "Arn"]},
        {"Fn::GetAtt": ["DagsterExecutionRole", "Arn"]},
    ]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    managed = {lid: resources[lid]["Properties"].get("ManagedPolicyArns", []) for lid in granted}
    assert managed["DagsterRunRole"] == [{"Ref": "PipelinePolicy"}]
    assert managed["DagsterDaemonRole"] == [{"Ref": "PipelinePolicy"}, {"Ref": "AlertPublishPolicy"}]
    assert managed["DagsterWebserverRole"] == []
    (publish,) = resources["AlertPublishPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (publish["Action"], publish["Resource"]) == ("sns:Publish", {"Ref": "AlertTopic"})


def test_services_run_on_fargate_and_one_daemon_at_a_time(template):
    for logical_id in ("DagsterWebserverService", "DagsterDaemonService"):
        service = template["Resources"][logical_id]["Properties"]
        assert service["LaunchType"] == "FARGATE"
        network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["SecurityGroups"] == [{"Fn::GetAtt": ["DagsterTaskSecurityGroup", "GroupId"]}]
        assert network["Subnets"] == [{"Ref": "DagsterSubnetA"}, {"Ref": "DagsterSubnetB"}]
    daemon = template["Resources"]["DagsterDaemonService"]["Properties"]
    assert daemon["DesiredCount"] == 1
    assert daemon["DeploymentConfiguration"] == {"MaximumPercent": 100, "MinimumHealthyPercent": 0}


# What moto's CloudFormation creates --------------------------------------------------------------


@pytest.fixture(scope="module")
def dagster_stack(moto_server):
    stack = create_stack(moto_server, RunDagster="true", DagsterImage=IMAGE)
    return stack


def test_moto_creates_the_dagster_part_but_the_secret(moto_server, dagster_stack):
    stack = dagster_stack
    assert stack.skipped_types == MOTO_CFN_SKIPPED_TYPES | MOTO_CFN_SKIPPED_DAGSTER_TYPES
    assert DAGSTER_RESOURCES | {"AlertTopic", "AlertPublishPolicy"} <= set(stack.physical_ids)
    assert "DagsterDbSecret" not in stack.physical_ids and "DagsterUiIngress" not in stack.physical_ids
    outputs = stack.outputs
    ecs, rds = client(moto_server, "ecs"), client(moto_server, "rds")
    services = ecs.describe_services(
        cluster=outputs["DagsterCluster"],
        services=[stack.physical_ids["DagsterWebserverService"], stack.physical_ids["DagsterDaemonService"]],
    )["services"]
    # moto's CloudFormation drops LaunchType (every service it creates is EC2); the template's
    # FARGATE is checked in test_services_run_on_fargate_and_one_daemon_at_a_time.
    assert [(s["launchType"], s["desiredCount"]) for s in services] == [("EC2", 1), ("EC2", 1)]
    (database,) = [
        d
        for d in rds.describe_db_instances()["DBInstances"]
        if d["Endpoint"]["Address"] == outputs["DagsterDatabaseEndpoint"]
    ]
    assert (database["Engine"], database["Endpoint"]["Port"], database["PubliclyAccessible"]) == (
        "postgres",
        5432,
        False,
    )

    # The run task definition: the AWS mode's settings exactly as the stack exports them, the
    # database, the alert topic; the secret references stay unresolved on moto (skipped secret).
    definition = ecs.describe_task_definition(taskDefinition=outputs["DagsterRunTaskDefinition"])[
        "taskDefinition"
    ]
    (run,) = definition["containerDefinitions"]
    env = {e["name"]: e.get("value") for e in run["environment"]}
    exported = stack_environment(outputs, "unused")
    exported.pop("B3_PLATFORM_AWS_ENDPOINT_URL")
    assert {k: env[k] for k in exported} == exported
    assert env["DAGSTER_PG_HOST"] == outputs["DagsterDatabaseEndpoint"] and env["DAGSTER_PG_PORT"] == "5432"
    assert env["B3_PLATFORM_ALERT_SNS_TOPIC_ARN"] == outputs["AlertTopicArn"]
    assert env["DAGSTER_ECS_RUN_TASK_DEFINITION"] == f"{stack.name}-run"
    assert outputs["DagsterRunTaskDefinition"].rsplit("/", 1)[1] == f"{stack.name}-run:1"
    # moto's CloudFormation registers Family, ContainerDefinitions, Volumes and Memory only: the
    # task's Cpu, NetworkMode, RequiresCompatibilities and both roles are dropped (the template's
    # are checked structurally above).
    assert definition["memory"] == "4096"
    assert not {"cpu", "taskRoleArn", "executionRoleArn"} & set(definition)
    assert {s["name"]: s["valueFrom"] for s in run["secrets"]} == {
        "DAGSTER_PG_USERNAME": "${DagsterDbSecret}:username::",  # unresolved: moto skipped the secret
        "DAGSTER_PG_PASSWORD": "${DagsterDbSecret}:password::",
    }

    # deploy_stack's second half creates the secret from the template's own generator settings.
    apply_what_moto_cfn_skips(moto_server, stack)
    (applied,) = [line for line in stack.applied if line.startswith("DagsterDbSecret")]
    arn = applied.split(": ", 1)[1]
    value = json.loads(client(moto_server, "secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    assert value["username"] == "dagster" and re.fullmatch(r"[A-Za-z0-9]{32}", value["password"])


def test_the_aws_instance_launches_runs_from_the_stacks_task_definition_and_logs_to_its_bucket(
    moto_server, dagster_stack, postgres_server, tmp_path, monkeypatch
):
    """deploy/aws/dagster.yaml with the daemon task's environment as moto returns it (the database
    pointed at the test PostgreSQL instead of RDS): the EcsRunLauncher resolves the run task
    definition by its family on ECS, and step logs land in the lake bucket."""
    outputs = dagster_stack.outputs
    ecs = client(moto_server, "ecs")
    daemon = ecs.describe_task_definition(
        taskDefinition=dagster_stack.physical_ids["DagsterDaemonTaskDefinition"]
    )["taskDefinition"]["containerDefinitions"][0]
    env = {e["name"]: e["value"] for e in daemon["environment"] if "value" in e}
    database = postgres_server.create_database()
    env.update(postgres_server.env(database))
    env.pop("PGSSLMODE")  # the test server has no TLS
    home = tmp_path / "aws-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(AWS_INSTANCE.read_text())
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)  # every boto3 client, as on AWS
    with dg.DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "EcsRunLauncher"
        assert launcher.task_definition == outputs["DagsterRunTaskDefinition"]
        logs = instance.compute_log_manager
        assert type(logs).__name__ == "S3ComputeLogManager"
        from dagster._core.storage.compute_log_manager import ComputeIOType

        with logs.open_log_stream(["b3", "run-1", "silver"], ComputeIOType.STDOUT) as stream:
            stream.write("built silver for 2025-07-10\n")
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    s3 = client(moto_server, "s3")
    listed = s3.list_objects_v2(Bucket=outputs["BucketName"], Prefix="dagster-compute-logs/")["Contents"]
    keys = {o["Key"] for o in listed}
    assert "dagster-compute-logs/storage/b3/run-1/silver.out" in keys
    body = s3.get_object(Bucket=outputs["BucketName"], Key="dagster-compute-logs/storage/b3/run-1/silver.out")
    assert body["Body"].read() == b"built silver for 2025-07-10\n"


def test_each_task_is_fargate_with_its_own_role(template):
    roles = {
        "DagsterWebserverTaskDefinition": "DagsterWebserverRole",
        "DagsterDaemonTaskDefinition": "DagsterDaemonRole",
        "DagsterRunTaskDefinition": "DagsterRunRole",
    }
    for logical_id, role in roles.items():
        props = template["Resources"][logical_id]["Properties"]
        assert (props["RequiresCompatibilities"], props["NetworkMode"]) == (["FARGATE"], "awsvpc")
        assert props["TaskRoleArn"] == {"Fn::GetAtt": [role, "Arn"]}
        assert props["ExecutionRoleArn"] == {"Fn::GetAtt": ["DagsterExecutionRole", "Arn"]}
        assert container(template, logical_id)["Image"] == {"Ref": "DagsterImage"}
    assert container(template, "DagsterDaemonTaskDefinition")["Command"] == [
        "dagster-daemon",
        "run",
        "-w",
        "workspace.yaml",
    ]
    assert container(template, "DagsterWebserverTaskDefinition")["Command"][0] == "dagster-webserver"
    # The run task definition's family is what the launcher is told to use and what the daemon
    # may RunTask.
    assert template["Resources"]["DagsterRunTaskDefinition"]["Properties"]["Family"] == {
        "Fn::Sub": "${AWS::StackName}-run"
    }
