"""Shared fixtures: one Spark session per test session, small data, isolated local homes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CHURN_TXT, ROOT, create_account_resources, fake_aws_credentials

from churn_pipeline import synthetic
from churn_pipeline.etl import job as etl_job
from churn_pipeline.etl.spark_worker import local_session

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

    return local_session("local[2]")


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory) -> Path:
    return synthetic.write_synthetic(tmp_path_factory.mktemp("data") / "synthetic.csv", rows=1500, seed=7)


@pytest.fixture(scope="session")
def small_model(spark, synthetic_csv, tmp_path_factory):
    """A model trained on the synthetic data (30 rounds): its ``model.tar.gz``, manifest and ETL folder
    (built once per test process; read only)."""
    from churn_pipeline import config, training

    out = tmp_path_factory.mktemp("model")
    etl_job.run_etl(spark, str(synthetic_csv), str(out / "etl"))
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
