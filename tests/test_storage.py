"""Storage by URI: local paths, and s3:// objects on S3 (moto)."""

import boto3
import pytest
from helpers import fake_aws_credentials
from moto import mock_aws

from churn_pipeline import config, profiling, storage, workflow
from churn_pipeline.errors import ConfigError, DataValidationError, StorageError
from churn_pipeline.s3 import S3Objects, s3_storage
from churn_pipeline.storage import LocalFiles, Storage


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


def test_the_mirror_keeps_s3s_layout_and_prefix_rules(tmp_path):
    store = storage.MirroredS3(tmp_path)
    assert store.path("s3://bucket/a/b.csv") == tmp_path / "bucket" / "a" / "b.csv"
    assert store.localize("not-a-uri") == "not-a-uri"
    for key in ("etl/train/part-0.csv", "etl/train_$folder$", "etl/train.csv", "etl/test/part-0.csv"):
        store.put(f"s3://bucket/{key}", b"1,2\n")
    assert sorted(store.objects_under("s3://bucket/etl/train")) == [
        "s3://bucket/etl/train.csv",
        "s3://bucket/etl/train/part-0.csv",
        "s3://bucket/etl/train_$folder$",
    ]
    assert list(store.objects_under("s3://bucket/etl/train/")) == ["s3://bucket/etl/train/part-0.csv"]


def test_one_storage_resolves_each_uri_by_its_scheme(tmp_path):
    """A path is this machine's file, ``s3://`` the store given for S3, whatever the caller."""
    local = Storage(storage.MirroredS3(tmp_path / "s3"))
    local.put("s3://bucket/a.csv", b"x\n")
    local.put(str(tmp_path / "b.csv"), b"y\n")
    assert (tmp_path / "s3" / "bucket" / "a.csv").read_bytes() == b"x\n" and (tmp_path / "b.csv").exists()
    digest = local.stage("s3://bucket/copy.csv", str(tmp_path / "b.csv"))
    assert digest == storage.sha256_of(tmp_path / "b.csv") and list(local.lines("s3://bucket/copy.csv")) == ["y"]


def test_s3_data_is_validated_and_staged(s3, synthetic_csv, tmp_path):
    s3.upload_file(str(synthetic_csv), "customers", "2026/churn.csv")
    summary = profiling.validate_file("s3://customers/2026/churn.csv", s3_storage(s3))
    assert summary.rows == 1500
    copied = LocalFiles().stage(str(tmp_path / "copy.csv"), "s3://customers/2026/churn.csv", s3_storage(s3))
    assert copied == storage.sha256_of(synthetic_csv) == storage.sha256_of(tmp_path / "copy.csv")


def test_missing_s3_object_names_the_uri(s3):
    with pytest.raises(DataValidationError, match="s3://customers/nope.csv: cannot read from S3"):
        profiling.validate_file("s3://customers/nope.csv", s3_storage(s3))


def test_an_s3_refusal_is_named_as_the_stores_not_as_bad_data(s3, monkeypatch):
    """Access denied, throttling or missing credentials are the store's problem: a StorageError naming the
    URI, never a data error that sends the user looking at their file."""
    from botocore.exceptions import ClientError, NoCredentialsError

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
    monkeypatch.setattr(s3, "get_object", lambda **_: (_ for _ in ()).throw(denied))
    with pytest.raises(StorageError, match="s3://customers/churn.csv: S3 refused to read from it: .*AccessDenied"):
        profiling.validate_file("s3://customers/churn.csv", s3_storage(s3))
    monkeypatch.setattr(s3, "get_object", lambda **_: (_ for _ in ()).throw(NoCredentialsError()))
    with pytest.raises(StorageError, match="cannot reach S3 to read from it"):
        profiling.validate_file("s3://customers/churn.csv", s3_storage(s3))


def test_a_run_stages_s3_input_on_the_local_backend(s3, synthetic_csv, isolated):
    s3.upload_file(str(synthetic_csv), "customers", "churn.csv")
    params = config.validate({"data": "s3://customers/churn.csv", "run_id": "s3-input"})
    run = workflow.start_run(params)
    summary = workflow.stage_data(run)
    assert summary.rows == 1500
    assert run.state["data_uri"] == "s3://churn-pipeline-local/churn/local/s3-input/raw/churn.csv"
    assert run.state["data_sha256"] == storage.sha256_of(synthetic_csv)
    assert run.backend.store.local_path(run.state["data_uri"]).read_bytes() == synthetic_csv.read_bytes()


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
    objects = S3Objects(s3)
    objects.move_prefix("s3://customers/etl/_staging/split=train", "s3://customers/etl/train")
    objects.remove_prefix("s3://customers/etl/_staging/split=test")
    left = {
        o["Key"]: s3.get_object(Bucket="customers", Key=o["Key"])["Body"].read()
        for o in s3.list_objects_v2(Bucket="customers")["Contents"]
    }
    assert left == {"etl/train/part-00000-a.csv": b"1,2\n", "etl/train/part-00001-a.csv": b"0,3\n"}
