import boto3
from helpers import ROOT, make_record

from churn_pipeline import cli, config
from churn_pipeline.doctor import run_checks


def params():
    return config.validate(config.read_parameters_file(ROOT / "parameters" / "dev.yaml"))


def test_every_check_passes_on_a_ready_account(aws_env, capsys):
    boto3.client("s3").create_bucket(
        Bucket="sagemaker-eu-west-1-123456789012", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    assert cli.main(["doctor", "--params", str(ROOT / "parameters" / "dev.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.count("ok  ") == 9 and "9 of 9 checks passed" in out
    assert "account 123456789012" in out and "assumable by glue.amazonaws.com" in out


def test_each_problem_is_its_own_failing_line(aws_env, monkeypatch, capsys):
    monkeypatch.delenv("lambda_role")
    monkeypatch.setenv("glue_role", "arn:aws:iam::123456789012:role/churn-dev-lambda-role")  # wrong trust
    boto3.client("dynamodb").delete_table(TableName="churn-dev-model-registry")
    checks = {c.name: c for c in run_checks(params())}
    assert not checks["role lambda_role"].ok and "lambda_role is not set" in checks["role lambda_role"].detail
    assert not checks["role glue_role"].ok and "glue.amazonaws.com cannot assume it" in checks["role glue_role"].detail
    assert not checks["registry table"].ok and "ResourceNotFoundException" in checks["registry table"].detail
    assert not checks["bucket"].ok
    assert checks["credentials and account"].ok and checks["role sagemaker_execution_role"].ok
    assert cli.main(["doctor", "--params", str(ROOT / "parameters" / "dev.yaml")]) == 1
    assert "FAIL  role lambda_role" in capsys.readouterr().out


def test_a_registry_table_with_the_wrong_key_fails(aws_env):
    dynamodb = boto3.client("dynamodb")
    dynamodb.delete_table(TableName="churn-dev-model-registry")
    dynamodb.create_table(
        TableName="churn-dev-model-registry",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    check = next(c for c in run_checks(params()) if c.name == "registry table")
    assert not check.ok and "needs the hash key run_id" in check.detail


def test_registry_cli_reads_the_dynamodb_registry_of_a_parameters_file(aws_env, capsys):

    from churn_pipeline.registry import DynamoDbRegistry

    DynamoDbRegistry("churn-dev-model-registry", boto3.client("dynamodb")).register(make_record("aws-run"))
    assert cli.main(["registry", "--params", str(ROOT / "parameters" / "dev.yaml"), "show", "aws-run", "--json"]) == 0
    assert '"run_id": "aws-run"' in capsys.readouterr().out
