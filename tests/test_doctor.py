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
    assert out.count("ok  ") == 11 and "11 of 11 checks passed" in out
    assert "s3://sagemaker-eu-west-1-123456789012 is reachable, in eu-west-1, and writable under churn/dev/" in out
    assert "account 123456789012" in out and "assumable by glue.amazonaws.com" in out


def test_each_problem_is_its_own_failing_line(aws_env, monkeypatch, capsys):
    monkeypatch.delenv("lambda_role")
    monkeypatch.setenv("glue_role", "arn:aws:iam::123456789012:role/churn-dev-lambda-role")  # wrong trust
    boto3.client("dynamodb").delete_table(TableName="churn-dev-model-registry")
    checks = {c.name: c for c in run_checks(params())}
    assert not checks["role lambda_role"].ok and "lambda_role is not set" in checks["role lambda_role"].detail
    assert not checks["role glue_role"].ok and "glue.amazonaws.com cannot assume it" in checks["role glue_role"].detail
    assert not checks["registry table"].ok and "ResourceNotFoundException" in checks["registry table"].detail
    assert checks["bucket"].ok and "does not exist yet: the first run creates it" in checks["bucket"].detail
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


def test_a_bucket_the_run_would_create_is_not_a_failure_but_one_named_must_exist(aws_env):
    """S3-HEAD-BUCKET: the account's SageMaker default bucket is created by the first run; a bucket named
    in the parameters is the user's and must exist, in the run's region."""
    checks = {c.name: c for c in run_checks(params())}
    assert checks["bucket"].ok and "sagemaker-eu-west-1-123456789012 does not exist yet" in checks["bucket"].detail
    first_use = checks["resources the run creates"]
    assert first_use.ok and first_use.detail == (
        "the run creates churn-dev-etl, churn-dev-query-training-status, churn-dev-update-model-registry, "
        "churn-dev-training-pipeline"
    )
    named = next(c for c in run_checks({**params(), "bucket": "team-churn-data"}) if c.name == "bucket")
    assert not named.ok and "s3://team-churn-data, named by bucket in the parameters, does not exist" in named.detail
    boto3.client("s3", region_name="us-west-2").create_bucket(
        Bucket="team-churn-data", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    elsewhere = next(c for c in run_checks({**params(), "bucket": "team-churn-data"}) if c.name == "bucket")
    assert not elsewhere.ok and "is in us-west-2, the run's region is eu-west-1" in elsewhere.detail


def _bucket_check(parameters, session):
    return next(c for c in run_checks(parameters, session=session) if c.name == "bucket")


def test_a_bucket_this_role_may_not_read_or_write_fails_saying_which(aws_env, monkeypatch):
    """S3-HEAD-BUCKET: 403 is another account's bucket, or no s3:ListBucket; a refused write under the
    project is said as such."""
    from botocore.exceptions import ClientError

    session = boto3.Session(region_name="eu-west-1")
    s3 = session.client("s3")
    s3.create_bucket(Bucket="team-churn-data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    monkeypatch.setattr(session, "client", lambda service, **_: s3 if service == "s3" else boto3.client(service))
    forbidden = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")
    monkeypatch.setattr(s3, "head_bucket", lambda **_: (_ for _ in ()).throw(forbidden))
    check = next(
        c for c in run_checks({**params(), "bucket": "team-churn-data"}, session=session) if c.name == "bucket"
    )
    assert not check.ok and "exists but this role may not read it (403): it belongs to another account" in check.detail
    monkeypatch.setattr(s3, "head_bucket", lambda **_: {"ResponseMetadata": {"HTTPHeaders": {}}})
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")
    monkeypatch.setattr(s3, "put_object", lambda **_: (_ for _ in ()).throw(denied))
    check = next(
        c for c in run_checks({**params(), "bucket": "team-churn-data"}, session=session) if c.name == "bucket"
    )
    assert not check.ok and "may not write under churn/dev/ (AccessDenied)" in check.detail


def test_the_data_the_parameters_name_is_checked_as_the_build_will_read_it(aws_env, monkeypatch, tmp_path):
    """S3-HEAD-OBJECT: an s3:// input is looked at (its metadata, not its content) with the build's role;
    a 403 says how to grant the read (pipeline.yml's DataBucket), a missing object says so."""
    from botocore.exceptions import ClientError

    def data_check(data, session=None):
        return next(c for c in run_checks({**params(), "data": data}, session=session) if c.name == "data")

    assert data_check("").ok and data_check("").detail == "synthetic data, generated by the run"
    assert not data_check(str(tmp_path / "nope.csv")).ok
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="customer-data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="customer-data", Key="2026/churn.csv", Body=b"x" * 1234)
    assert (
        data_check("s3://customer-data/2026/churn.csv").detail
        == "s3://customer-data/2026/churn.csv is readable (1,234 bytes)"
    )
    missing = data_check("s3://customer-data/2026/other.csv")
    assert not missing.ok and missing.detail == "s3://customer-data/2026/other.csv does not exist"
    session = boto3.Session(region_name="eu-west-1")
    denied = boto3.client("s3")
    monkeypatch.setattr(session, "client", lambda service, **_: denied if service == "s3" else boto3.client(service))
    forbidden = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")
    monkeypatch.setattr(denied, "head_object", lambda **_: (_ for _ in ()).throw(forbidden))
    refused = data_check("s3://customer-data/2026/churn.csv", session)
    assert not refused.ok and "name customer-data as DataBucket in pipeline.yml" in refused.detail
