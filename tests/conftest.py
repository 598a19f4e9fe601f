"""Shared fixtures: one Spark session per test session, small data, isolated local homes."""

from __future__ import annotations

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

