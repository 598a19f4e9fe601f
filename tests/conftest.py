"""Shared fixtures: one Spark session per test session, small data, isolated local homes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churn_pipeline import data

ROOT = Path(__file__).resolve().parents[1]
CHURN_TXT = ROOT.parent / "shared" / "data" / "churn.txt"


#: modules that run whole pipelines or notebooks (kernels, Spark, the CLI)
PIPELINE_MODULES = {
    "test_pipeline.py",
    "test_notebooks_aws.py",
    "test_benchmarks.py",
    "test_benchmark_scaling.py",
    "test_nbval.py",
}


def pytest_collection_modifyitems(items):
    """Mark what `make test-fast` leaves out: tests that start Spark, and whole pipeline runs."""
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
        if item.path.name in PIPELINE_MODULES or item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.pipeline)


@pytest.fixture(scope="session")
def spark():
    from churn_pipeline import etl

    return etl.spark_session("local[2]")


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory) -> Path:
    return data.write_synthetic(tmp_path_factory.mktemp("data") / "synthetic.csv", rows=1500, seed=7)


@pytest.fixture(scope="session")
def small_model(spark, synthetic_csv, tmp_path_factory):
    """A model trained on the synthetic data (30 rounds): its ``model.tar.gz``, manifest and ETL folder
    (built once per test process; read only)."""
    from churn_pipeline import config, etl, training

    out = tmp_path_factory.mktemp("model")
    etl.transform(spark, str(synthetic_csv), str(out / "etl"))
    booster, _ = training.train(
        out / "etl" / "train",
        out / "etl" / "validation",
        training.hyperparameters_from(dict(config.DEFAULTS, num_round=30)),
    )
    archive = training.save_model_archive(booster, out / "model.tar.gz")
    return archive, out / "etl" / "manifest.json", out / "etl"


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


ROLE_NAMES = (
    "workflow_execution_role",
    "sagemaker_execution_role",
    "glue_role",
    "lambda_role",
    "model_registry_lambda_role",
)
ACCOUNT = "123456789012"


def fake_aws_credentials(monkeypatch, **extra: str) -> None:
    """Credentials and a region that only moto accepts (never a real account's)."""
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **extra,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def create_account_resources(monkeypatch) -> None:
    """What the CI/CD stack provides: the five roles (trusted by their services), their variables, the table."""
    import boto3

    from churn_pipeline.doctor import ROLE_SERVICES

    iam = boto3.client("iam")
    for name in ROLE_NAMES:
        role = f"churn-dev-{name.replace('_', '-')}"
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": ROLE_SERVICES[name]}}
            ],
        }
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
        monkeypatch.setenv(name, f"  arn:aws:iam::{ACCOUNT}:role/{role}\n")  # stray white space, as pasted
    boto3.client("dynamodb").create_table(
        TableName="churn-dev-model-registry",
        KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "run_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def aws_env(monkeypatch, isolated):
    """moto held to AWS's behaviours (``strict_aws``) for every AWS call, with the account's roles,
    role variables and registry table."""
    import strict_aws
    from moto import mock_aws

    from churn_pipeline.backends.aws import AwsBackend

    strict_aws.apply(monkeypatch)
    fake_aws_credentials(monkeypatch)
    # the strict layer's functions are ready once described: no need to wait seconds between looks
    monkeypatch.setattr(AwsBackend, "function_poll_seconds", lambda self: 0.01)
    with mock_aws():
        create_account_resources(monkeypatch)
        yield isolated
