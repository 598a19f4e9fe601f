"""Shared fixtures: one Spark session per test session, small data, isolated local homes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churn_pipeline import data

ROOT = Path(__file__).resolve().parents[1]
CHURN_TXT = ROOT.parent / "shared" / "data" / "churn.txt"


@pytest.fixture(scope="session")
def spark():
    from churn_pipeline import etl

    return etl.spark_session("local[2]")


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory) -> Path:
    return data.write_synthetic(tmp_path_factory.mktemp("data") / "synthetic.csv", rows=1500, seed=7)


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """A fresh local-backend home and artifacts root for one test."""
    monkeypatch.setenv("CHURN_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURN_PIPELINE_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CHURN_PIPELINE_PROJECT", str(ROOT))
    return tmp_path


@pytest.fixture
def churn_txt() -> Path:
    if not CHURN_TXT.exists():
        pytest.skip("the public churn dataset is not present beside the project")
    return CHURN_TXT



ROLE_NAMES = ("workflow_execution_role", "sagemaker_execution_role", "glue_role", "lambda_role",
              "model_registry_lambda_role")
ACCOUNT = "123456789012"


def _moto_starts_executions_on_versions() -> None:
    """moto has versions but cannot start an execution on a version ARN (AWS can): let it, on the source."""
    from moto.stepfunctions import models

    if hasattr(models.StateMachineVersion, "start_execution"):
        return

    def start_execution(self, region_name, account_id, execution_name, execution_input):
        source = models.stepfunctions_backends[account_id][region_name].describe_state_machine(self.source_arn)
        return source.start_execution(region_name, account_id, execution_name, execution_input)

    models.StateMachineVersion.start_execution = start_execution


@pytest.fixture
def aws_env(monkeypatch, isolated):
    """moto for every AWS call, the five role variables set (with stray white space) and their roles created."""
    import boto3
    from moto import mock_aws

    _moto_starts_executions_on_versions()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        iam = boto3.client("iam")
        services = {"workflow_execution_role": "states", "sagemaker_execution_role": "sagemaker",
                    "glue_role": "glue", "lambda_role": "lambda", "model_registry_lambda_role": "lambda"}
        for name in ROLE_NAMES:
            role = f"churn-dev-{name.replace('_', '-')}"
            trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                             "Principal": {"Service": f"{services[name]}.amazonaws.com"}}]}
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
            monkeypatch.setenv(name, f"  arn:aws:iam::{ACCOUNT}:role/{role}\n")
        boto3.client("dynamodb").create_table(
            TableName="churn-dev-model-registry", KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "run_id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        yield isolated
