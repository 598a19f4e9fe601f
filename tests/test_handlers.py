"""The Lambda handlers in code/, called as the local backend calls them."""

import importlib.util

import pytest
from helpers import ROOT, make_record

from churn_pipeline.backends.local import LocalBackend
from churn_pipeline.errors import ConfigError, DuplicateRunError


def load_handler(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "code" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    backend = LocalBackend(None, tmp_path / "home")
    monkeypatch.setenv("CHURN_PIPELINE_BACKEND", "local")
    monkeypatch.setenv("CHURN_PIPELINE_HOME", str(backend.home))
    return backend


def test_query_training_status_reads_metrics_by_name(local_env):
    local_env.client("sagemaker").jobs.write(
        "job-1",
        {
            "TrainingJobName": "job-1",
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"},
            "FinalMetricDataList": [
                {"MetricName": "validation:error", "Value": 0.04},
                {"MetricName": "train:error", "Value": 0.01},
            ],
        },
    )
    result = load_handler("query_training_status")({"TrainingJobName": "job-1"}, None)
    assert result["metrics"]["validation:accuracy"] == pytest.approx(0.96)
    assert result["ModelDataUrl"] == "s3://b/m.tar.gz"


def test_query_training_status_without_error_metric_fails_clearly(local_env):
    local_env.client("sagemaker").jobs.write(
        "job-2",
        {
            "TrainingJobName": "job-2",
            "TrainingJobStatus": "Completed",
            "FinalMetricDataList": [{"MetricName": "validation:auc", "Value": 0.9}],
        },
    )
    with pytest.raises(ValueError, match="no validation:error"):
        load_handler("query_training_status")({"TrainingJobName": "job-2"}, None)


def test_update_model_registry_writes_once(local_env, monkeypatch):
    monkeypatch.setenv("MODEL_REGISTRY_URL", local_env.registry_url("churn-test-model-registry"))
    event = make_record("r-9").to_dict()
    event.pop("created_at")
    handler = load_handler("update_model_registry")
    assert handler(event, None) == {"run_id": "r-9", "model_name": "churn-test-r-9", "status": "approved"}
    with pytest.raises(DuplicateRunError):
        handler(event, None)


def test_update_model_registry_needs_a_table(monkeypatch):
    monkeypatch.delenv("MODEL_REGISTRY_URL", raising=False)
    monkeypatch.delenv("MODEL_REGISTRY_TABLE", raising=False)
    with pytest.raises(ConfigError, match="MODEL_REGISTRY_TABLE"):
        load_handler("update_model_registry")(make_record().to_dict(), None)
