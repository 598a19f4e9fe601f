"""One contract suite for every registry implementation."""

import multiprocessing
import sqlite3

import boto3
import pytest
from helpers import DECISION, fake_aws_credentials, make_record
from moto import mock_aws

from churn_pipeline.errors import ConfigError, DecisionExists, DuplicateRunError, RecordNotFound, RegistryError
from churn_pipeline.registry import RegistryRecord, SqliteRegistry, open_registry


@pytest.fixture(params=["sqlite", "dynamodb"])
def registry(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        yield open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
        return
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        create_registry_table("churn-test-model-registry")
        yield open_registry("dynamodb://churn-test-model-registry")


def create_registry_table(name):
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "run_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_records_with_a_git_commit_and_exact_floats_round_trip(registry):
    record = make_record(git_commit="a" * 40, metrics={"validation:accuracy": 0.1 + 0.2}, threshold=0.935)
    registry.register(record)
    assert registry.get("run-1") == record


def test_register_then_get_returns_the_same_record(registry):
    record = make_record()
    registry.register(record)
    assert registry.get("run-1") == record


def test_second_write_for_a_run_fails_and_changes_nothing(registry):
    """DDB-CONDITIONAL-PUT: on SQLite and on DynamoDB (moto)."""
    registry.register(make_record())
    with pytest.raises(DuplicateRunError, match="run-1"):
        registry.register(make_record(metrics={"validation:accuracy": 0.5}))
    assert registry.get("run-1").metrics == {"validation:accuracy": 0.95}
    assert len(registry.list()) == 1


def test_a_decision_is_added_once_and_never_replaced(registry):
    """DDB-CONDITIONAL-UPDATE: on SQLite and on DynamoDB (moto)."""
    registry.register(make_record())
    assert registry.get("run-1").cutoff is None
    assert registry.record_decision("run-1", DECISION).cutoff == 0.1834
    assert registry.record_decision("run-1", dict(DECISION)).decision == DECISION  # the same again: no change
    with pytest.raises(
        DecisionExists,
        match=r"run 'run-1' already decided at cutoff 0.1834 \(retention_offer_cost "
        r"100.0, churn_loss 500.0\)",
    ):
        registry.record_decision("run-1", {**DECISION, "cutoff": 0.5, "churn_loss": 900.0})
    stored = registry.get("run-1")
    assert stored.decision == DECISION
    assert stored == make_record(decision=DECISION)  # nothing else of the record moved
    with pytest.raises(RecordNotFound, match="nope"):
        registry.record_decision("nope", DECISION)
    assert [r.run_id for r in registry.list()] == ["run-1"]  # no record appears for an unknown run


def test_a_registry_written_before_decisions_gains_the_column(tmp_path):
    path = tmp_path / "registry.db"
    SqliteRegistry(path).register(make_record())
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE models DROP COLUMN decision")
    registry = SqliteRegistry(path)
    assert registry.get("run-1").decision is None
    assert registry.record_decision("run-1", DECISION).decision == DECISION


def test_unknown_run_is_not_found(registry):
    with pytest.raises(RecordNotFound, match="nope"):
        registry.get("nope")


def test_list_is_newest_first(registry):
    registry.register(make_record("old", created_at="2026-01-01T00:00:00+00:00"))
    registry.register(make_record("new", created_at="2026-02-01T00:00:00+00:00"))
    assert [r.run_id for r in registry.list()] == ["new", "old"]


def test_incomplete_record_is_refused_before_writing():
    with pytest.raises(RegistryError, match="missing"):
        RegistryRecord.from_mapping({"run_id": "x"})
    values = make_record().to_dict()
    values["surprise"] = 1
    with pytest.raises(RegistryError, match="unknown fields surprise"):
        RegistryRecord.from_mapping(values)


def _register_in_process(path, run_id, results):
    try:
        SqliteRegistry(path).register(make_record(run_id))
        results.put(("ok", run_id))
    except DuplicateRunError:
        results.put(("duplicate", run_id))


def test_two_concurrent_runs(tmp_path):
    """Two processes: different run ids both land; the same run id lands exactly once."""
    path = str(tmp_path / "registry.db")
    SqliteRegistry(path)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_register_in_process, args=(path, run_id, results))
        for run_id in ("a", "b", "same", "same")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes == [("duplicate", "same"), ("ok", "a"), ("ok", "b"), ("ok", "same")]
    assert sorted(r.run_id for r in SqliteRegistry(path).list()) == ["a", "b", "same"]


def test_dynamodb_errors_are_translated(monkeypatch):
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        with pytest.raises(RegistryError, match="ResourceNotFoundException"):
            open_registry("dynamodb://missing-table").get("x")


def test_unknown_registry_url_is_refused():
    with pytest.raises(ConfigError, match="sqlite://"):
        open_registry("mysql://x")


def test_sqlite_errors_are_translated(tmp_path):
    path = tmp_path / "registry.db"
    registry = SqliteRegistry(path)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE models")
    with pytest.raises(RegistryError, match="cannot"):
        registry.get("x")
