"""The CloudFormation templates: linted, and the CI/CD template defines every role the pipeline uses."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, policy_statements, template

from churn_pipeline import config
from churn_pipeline.doctor import ROLE_SERVICES


@pytest.mark.parametrize("name", ["deploy-model.yml", "pipeline.yml"])
def test_templates_pass_cfn_lint(name):
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(ROOT / "cloudformation" / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_role_the_pipeline_uses_is_defined_with_its_service():
    resources = template("pipeline.yml")["Resources"]
    variables = {
        v["Name"]: v["Value"] for v in resources["BuildProject"]["Properties"]["Environment"]["EnvironmentVariables"]
    }
    assert set(config.ROLE_VARIABLES) <= set(variables)
    for name in config.ROLE_VARIABLES:
        logical_id = variables[name]["!GetAtt"].split(".")[0]
        role = resources[logical_id]
        assert role["Type"] == "AWS::IAM::Role"
        principals = [s["Principal"]["Service"] for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
        assert principals == [ROLE_SERVICES[name]], name


def test_pass_role_is_always_scoped_to_its_service():
    resources = template("pipeline.yml")["Resources"]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in policy_statements(resource):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "iam:PassRole" in actions:
                assert actions == ["iam:PassRole"], logical_id
                assert "iam:PassedToService" in statement["Condition"]["StringEquals"], logical_id
                assert statement["Resource"] != "*", logical_id


def test_the_build_runs_the_parameters_file_of_its_environment():
    resources = template("pipeline.yml")["Resources"]
    variables = {
        v["Name"]: v["Value"] for v in resources["BuildProject"]["Properties"]["Environment"]["EnvironmentVariables"]
    }
    assert variables["RUN_PARAMS"] == {"!Sub": "parameters/${Environment}.yaml"}
    for environment in ("dev", "prod"):
        assert (ROOT / "parameters" / f"{environment}.yaml").exists()


def test_registry_table_is_on_demand_with_point_in_time_recovery():
    table = template("pipeline.yml")["Resources"]["ModelRegistryTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["KeySchema"] == [{"AttributeName": "run_id", "KeyType": "HASH"}]


def test_pipeline_stages_and_deploy_configuration():
    stages = template("pipeline.yml")["Resources"]["Pipeline"]["Properties"]["Stages"]
    names = [s["Name"] if "Name" in s else s["!If"][1]["Name"] for s in stages]
    assert names == ["Source", "Build", "Approval", "Deploy"]
    deploy = stages[-1]["Actions"][0]["Configuration"]
    assert deploy["ActionMode"] == "CREATE_UPDATE"
    assert deploy["TemplatePath"] == "SourceOutput::cloudformation/deploy-model.yml"
    assert deploy["TemplateConfiguration"] == "BuildOutput::cloudformation_parameters.json"
    assert (ROOT / deploy["TemplatePath"].split("::")[1]).exists()


def test_the_build_may_read_a_data_bucket_only_when_one_is_named():
    """The build role reads the customers' bucket named in DataBucket, read only; none when it is empty."""
    document = template("pipeline.yml")
    assert document["Parameters"]["DataBucket"]["Default"] == ""
    statements = document["Resources"]["CodeBuildRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (conditional,) = [s for s in statements if "!If" in s]
    condition, grant, otherwise = conditional["!If"]
    assert condition == "ReadsDataBucket" and otherwise == {"!Ref": "AWS::NoValue"}
    assert set(grant["Action"]) == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketLocation"}
    assert all("${DataBucket}" in r["!Sub"] for r in grant["Resource"])


def test_the_scheduled_monitor_has_its_own_least_privilege_roles():
    """EVENTS-SCHEDULE-CODEBUILD, CB-CONNECTION-SOURCE, CP-VARIABLES: with a MonitorWindow, an EventBridge
    rule starts the monitor project (its role may start that build alone); the monitor's role reads and
    writes the environment's folder, runs the ETL job, reads the registry and starts this pipeline, and
    nothing else; the pipeline is V2 and passes its TrainingData variable to the build."""
    document = template("pipeline.yml")
    resources = document["Resources"]
    monitor = ("MonitorBuildRole", "MonitorProject", "MonitorScheduleRole", "MonitorRule")
    assert all(resources[name]["Condition"] == "Monitors" for name in monitor)
    assert document["Parameters"]["MonitorWindow"]["Default"] == ""
    rule = resources["MonitorRule"]["Properties"]
    assert rule["ScheduleExpression"] == {"!Ref": "MonitorSchedule"}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"!GetAtt": "MonitorProject.Arn"} and target["RoleArn"] == {
        "!GetAtt": "MonitorScheduleRole.Arn"
    }
    (start,) = policy_statements(resources["MonitorScheduleRole"])
    assert start["Action"] == "codebuild:StartBuild" and start["Resource"] == {"!GetAtt": "MonitorProject.Arn"}

    granted = {}
    for statement in policy_statements(resources["MonitorBuildRole"]):
        statement = statement["!If"][1] if "!If" in statement else statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            granted.setdefault(action, []).append(json.dumps(statement["Resource"]))
    assert set(granted) == {
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
        "codeconnections:GetConnectionToken", "codeconnections:GetConnection",
        "codestar-connections:GetConnectionToken", "codestar-connections:GetConnection",
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketAcl",
        "glue:GetJob", "glue:CreateJob", "glue:UpdateJob", "glue:StartJobRun", "glue:GetJobRun",
        "iam:PassRole", "dynamodb:DescribeTable", "dynamodb:GetItem", "codepipeline:StartPipelineExecution",
    }  # fmt: skip
    assert all('"*"' not in resource for resources_of in granted.values() for resource in resources_of)
    assert granted["s3:DeleteObject"] == [
        json.dumps(resources["GlueRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"])
    ]
    assert "${ProjectName}-${Environment}-etl" in granted["glue:StartJobRun"][0]
    pipeline_arn = "arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:${ProjectName}-${Environment}"
    assert granted["codepipeline:StartPipelineExecution"] == [json.dumps({"!Sub": pipeline_arn})]

    project = resources["MonitorProject"]["Properties"]
    assert project["Source"]["BuildSpec"] == "buildspec-monitor.yml" and (ROOT / "buildspec-monitor.yml").exists()
    assert project["Source"]["Auth"] == {"Type": "CODECONNECTIONS", "Resource": {"!Ref": "ConnectionArn"}}
    variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    pipeline = resources["Pipeline"]["Properties"]
    assert set(config.ROLE_VARIABLES) <= set(variables)  # the aws backend's configuration names all five
    assert variables["PIPELINE_NAME"] == pipeline["Name"] and variables["RUN_PARAMS"] == {
        "!Sub": "parameters/${Environment}.yaml"
    }
    assert pipeline["PipelineType"] == "V2"
    (declared,) = pipeline["Variables"]
    assert declared["Name"] == "TrainingData" and 1 <= len(declared["DefaultValue"]) <= 1000
    build = pipeline["Stages"][1]["Actions"][0]["Configuration"]
    assert json.loads(build["EnvironmentVariables"]) == [
        {"name": "TRAINING_DATA", "value": "#{variables.TrainingData}", "type": "PLAINTEXT"}
    ]
