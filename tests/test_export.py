import json

import pytest
from helpers import make_record, template

from churn_pipeline import config, export
from churn_pipeline.errors import PipelineError
from churn_pipeline.pipeline.run import Run


def template_parameters(name):
    return template(name)["Parameters"]


def test_exported_parameters_fit_the_deploy_template():
    exported = export.deploy_parameters(make_record(), config.DEFAULTS, "s3://b/churn/test")
    assert list(exported) == ["Parameters"]
    assert set(exported["Parameters"]) == set(export.PARAMETER_NAMES)
    template = template_parameters("deploy-model.yml")
    required = {name for name, spec in template.items() if "Default" not in spec}
    assert required <= set(exported["Parameters"]) <= set(template)
    assert all(isinstance(v, str) for v in exported["Parameters"].values())


def test_only_an_approved_model_is_exported():
    with pytest.raises(PipelineError, match="only an approved model"):
        export.deploy_parameters(make_record(status="rejected"), config.DEFAULTS, "s3://b/churn/test")


def test_an_existing_different_file_is_not_overwritten(tmp_path):
    run = Run(config.DEFAULTS, "run-1", backend=None, artifacts_dir=tmp_path)
    path = export.write_parameters(run, make_record())
    first = path.read_text()
    assert export.write_parameters(run, make_record()).read_text() == first  # same content: fine
    with pytest.raises(PipelineError, match="not overwritten"):
        export.write_parameters(run, make_record(model_name="other"))
    assert path.read_text() == first
    assert json.loads(first)["Parameters"]["ModelName"] == "churn-test-run-1"


def test_capture_is_exported_only_when_asked_for_and_configured_by_the_stack():
    """SM-DATA-CAPTURE: the export names the percentage (0 unless endpoint_capture_percent) and a destination
    in the environment's folder (where the SageMaker role writes); the stack sets DataCaptureConfig only
    above 0."""
    record = make_record(
        run_id="run-1", model_data_url="s3://bucket/churn/dev/run-1/models/churn-dev-run-1-0/output/model.tar.gz"
    )
    plain = export.deploy_parameters(record, config.DEFAULTS, "s3://b/churn/test")["Parameters"]
    assert plain["DataCapturePercentage"] == "0"
    asked = export.deploy_parameters(
        record, dict(config.DEFAULTS, endpoint_capture_percent=20), "s3://bucket/churn/dev"
    )["Parameters"]
    assert (asked["DataCapturePercentage"], asked["DataCaptureS3Uri"]) == ("20", "s3://bucket/churn/dev/capture")
    assert set(asked) <= set(template_parameters("deploy-model.yml"))
    resources = template("deploy-model.yml")["Resources"]
    capture = resources["EndpointConfig"]["Properties"]["DataCaptureConfig"]["!If"]
    assert capture[0] == "UseDataCapture" and capture[1]["InitialSamplingPercentage"] == {
        "!Ref": "DataCapturePercentage"
    }
    assert [o["CaptureMode"] for o in capture[1]["CaptureOptions"]] == ["Input", "Output"]
    with pytest.raises(PipelineError, match="endpoint_capture_percent"):
        config.validate(dict(config.DEFAULTS, endpoint_capture_percent=101), source="test")
