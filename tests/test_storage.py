"""Storage by URI: local paths, and s3:// objects on S3 (moto)."""

import boto3
import pytest
from helpers import fake_aws_credentials
from moto import mock_aws

from churn_pipeline import config, profiling, storage, workflow
from churn_pipeline.errors import ConfigError, DataValidationError


@pytest.fixture
def s3(monkeypatch):
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="customers", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


def test_split_s3_uri():
    assert storage.split_s3_uri("s3://b/k/x.csv") == ("b", "k/x.csv")
    with pytest.raises(ConfigError):
        storage.split_s3_uri("/local/path")
    with pytest.raises(ConfigError):
        storage.split_s3_uri("s3:///key")


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = storage.write_atomic(tmp_path / "a" / "b.json", "{}")
    assert target.read_text() == "{}" and not list(tmp_path.rglob("*.partial"))


def test_local_store_mirrors_s3_layout(tmp_path):
    store = storage.LocalObjectStore(tmp_path)
    assert store.path("s3://bucket/a/b.csv") == tmp_path / "bucket" / "a" / "b.csv"
    assert store.localize("not-a-uri") == "not-a-uri"


def test_s3_data_is_validated_and_staged(s3, synthetic_csv, tmp_path):
    s3.upload_file(str(synthetic_csv), "customers", "2026/churn.csv")
    summary = profiling.validate_file("s3://customers/2026/churn.csv", s3)
    assert summary.rows == 1500
    copied = storage.copy_to_local("s3://customers/2026/churn.csv", tmp_path / "copy.csv", s3)
    assert storage.sha256_of(copied) == storage.sha256_of(synthetic_csv)


def test_missing_s3_object_names_the_uri(s3):
    with pytest.raises(DataValidationError, match="s3://customers/nope.csv: cannot read from S3"):
        profiling.validate_file("s3://customers/nope.csv", s3)


def test_a_run_stages_s3_input_on_the_local_backend(s3, synthetic_csv, isolated):
    s3.upload_file(str(synthetic_csv), "customers", "churn.csv")
    params = config.validate({"data": "s3://customers/churn.csv", "run_id": "s3-input"})
    run = workflow.start_run(params)
    summary = workflow.stage_data(run)
    assert summary.rows == 1500
    assert run.state["data_uri"] == "s3://churn-pipeline-local/churn/s3-input/raw/churn.csv"
    assert run.state["data_sha256"] == storage.sha256_of(synthetic_csv)
    assert run.backend.local_copy(run.state["data_uri"]).read_bytes() == synthetic_csv.read_bytes()


def test_a_folder_moves_on_s3_by_copy_then_delete(s3):
    """S3-NO-RENAME: S3 has no rename; the ETL's staged parts are copied to their split folder and deleted,
    and what the target held before is replaced."""
    for key, body in {
        "etl/_staging/split=train/part-00000-a.csv": b"1,2\n",
        "etl/_staging/split=train/part-00001-a.csv": b"0,3\n",
        "etl/_staging/split=test/part-00002-a.csv": b"1,4\n",
        "etl/train/part-old.csv": b"stale\n",
        "etl/train_$folder$": b"",
    }.items():
        s3.put_object(Bucket="customers", Key=key, Body=body)
    storage.move_folder("s3://customers/etl/_staging/split=train", "s3://customers/etl/train", s3)
    storage.remove_folder("s3://customers/etl/_staging/split=test", s3)
    left = {
        o["Key"]: s3.get_object(Bucket="customers", Key=o["Key"])["Body"].read()
        for o in s3.list_objects_v2(Bucket="customers")["Contents"]
    }
    assert left == {"etl/train/part-00000-a.csv": b"1,2\n", "etl/train/part-00001-a.csv": b"0,3\n"}
